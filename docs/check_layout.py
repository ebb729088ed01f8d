"""Look at the built site as a 1280 px browser window shows it, with headless Chromium.

For every page: what overflows the text column (a table that needs its scroll bar, a code block
that scrolls), how many code lines wrap, and which figures are shrunk below 55% of their drawn
width; with ``--shots DIR``, a screenshot of the whole page, to look at.

    make docs
    python docs/check_layout.py docs/_build/html --shots /tmp/shots

Needs Chromium (Debian: ``apt-get install chromium``); nothing else beyond the standard library.
The built site is copied to a temporary folder and a script that measures the page is added to
each copy, so the site itself is not touched.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

WIDTH = 1280
_CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--virtual-time-budget=4000",
]

# Runs after the page (and MathJax) has settled; writes its findings into a <pre id=...>.
_MEASURE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const found = {overflow: [], wrapped: [], shrunk: [], height: document.body.scrollHeight};
  const text = (el) => el.textContent.replace(/\\s+/g, " ").trim().slice(0, 60);
  for (const el of document.querySelectorAll(".bd-article pre, .bd-article table, "
      + ".bd-article .pst-scrollable-table-container, .bd-article mjx-container")) {
    if (el.scrollWidth > el.clientWidth + 1)
      found.overflow.push(
        `${el.tagName.toLowerCase()} ${el.scrollWidth} > ${el.clientWidth}: ${text(el)}`);
    if (el.tagName === "PRE") {
      const style = getComputedStyle(el);
      const lines = el.textContent.replace(/\\n$/, "").split("\\n").length;
      const height = el.clientHeight - parseFloat(style.paddingTop)
        - parseFloat(style.paddingBottom);
      const extra = Math.round(height / parseFloat(style.lineHeight) - lines);
      if (extra > 0) found.wrapped.push(`${extra} lines: ${text(el)}`);
    }
  }
  for (const img of document.querySelectorAll(".bd-article img"))
    if (img.naturalWidth && img.clientWidth < 0.55 * img.naturalWidth)
      found.shrunk.push(`${img.getAttribute("src")} ${img.clientWidth} of ${img.naturalWidth} px`);
  const out = document.createElement("pre");
  out.id = "gru-jax-layout";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
}, 1500));
</script>"""


def pages(html: Path) -> list[Path]:
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(
        p
        for p in html.rglob("*.html")
        if p.name not in skip and not {"_static", "_sources", "_images"} & set(p.parts)
    )


def measure(page: Path) -> dict:
    dom = subprocess.run(
        [*_CHROMIUM, f"--window-size={WIDTH},1000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = re.search(r'<pre id="gru-jax-layout">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError(f"{page}: the measuring script did not run")
    return json.loads(
        found.group(1).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    )


def screenshot(page: Path, height: int, out: Path) -> None:
    subprocess.run(
        [*_CHROMIUM, f"--window-size={WIDTH},{height}", f"--screenshot={out}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the built site, e.g. docs/_build/html")
    parser.add_argument("--shots", type=Path, help="a folder for full-page screenshots")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "html"
        shutil.copytree(args.html, site)
        for page in pages(site):
            page.write_text(page.read_text().replace("</head>", _MEASURE + "</head>", 1))
            found = measure(page)
            name = page.relative_to(site)
            print(f"{name}: {len(found['wrapped'])} code blocks wrap, {found['height']} px high")
            for kind in ("overflow", "shrunk", "wrapped"):
                for item in found[kind]:
                    print(f"  {kind}: {item}")
            if args.shots:
                args.shots.mkdir(parents=True, exist_ok=True)
                out = args.shots / f"{str(name.with_suffix('')).replace('/', '_')}.png"
                # The measuring <pre> sits below the footer; the page itself is not changed.
                screenshot(page, found["height"], out.resolve())


if __name__ == "__main__":
    main()
