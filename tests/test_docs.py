"""The docs site: every code example runs, and every public name has an API entry.

* Every ```` ```python ```` block of every page in ``docs/`` (and of the README) runs as written:
  a page's blocks run in order in one namespace, from the repository root, as a reader would paste
  them one after the other. Blocks that are not meant to run are fenced as ``bash``, ``text``,
  ``yaml`` or ``console``.
* The site is built with Sphinx (warnings are errors), and the Python domain of that build must
  hold an entry for every public module and every public name: a public module is one that
  ``pkgutil`` finds under ``gru_jax`` with no ``_``-prefixed part in its name, and its public
  names are its ``__all__``, which it must define. Each must also have a docstring of its own.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import gru_jax

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", flags=re.S | re.M)


def public_modules() -> list[str]:
    """``gru_jax`` and every module below it whose dotted name has no ``_``-prefixed part."""
    names = ["gru_jax"]
    for info in pkgutil.walk_packages(gru_jax.__path__, prefix="gru_jax."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def test_public_modules_are_the_known_ones():
    # Not the definition of public (public_modules is); a guard that the walk finds the package.
    assert {
        "gru_jax",
        "gru_jax.linen",
        "gru_jax.nnx",
        "gru_jax.interop",
        "gru_jax.train",
        "gru_jax.tasks",
        "gru_jax.cli",
    } <= set(public_modules())


def _own_doc(module_name: str, name: str, obj: object) -> str | None:
    """The docstring that belongs to ``obj`` itself, or None: classes and functions carry their
    own; data (constants, type aliases) need an attribute docstring in the module's source."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if dataclasses.is_dataclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
            return None  # the signature that @dataclass writes when there is no docstring
        return doc
    defined_here = getattr(obj, "__module__", "").startswith("gru_jax")
    if defined_here and callable(obj):  # functions, also wrapped ones (functools.cache)
        return obj.__doc__
    from sphinx.pycode import ModuleAnalyzer

    # A re-exported constant or alias is documented where it is defined: look there too.
    every_module = [info.name for info in pkgutil.walk_packages(gru_jax.__path__, "gru_jax.")]
    for candidate in [module_name, *every_module]:
        lines = ModuleAnalyzer.for_module(candidate).find_attr_docs().get(("", name))
        if lines and getattr(importlib.import_module(candidate), name, None) is obj:
            return "\n".join(lines)
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """Build the site (HTML, warnings are errors); its Python objects by full name, and the
    HTML directory."""
    from sphinx.application import Sphinx

    out = tmp_path_factory.mktemp("docs")
    app = Sphinx(
        srcdir=str(DOCS),
        confdir=str(DOCS),
        outdir=str(out / "html"),
        doctreedir=str(out / "doctrees"),
        buildername="html",
        warningiserror=True,
        keep_going=True,
        status=None,
        freshenv=True,
    )
    app.build()
    assert app.statuscode == 0, "the docs build failed; run `make docs` to see why"
    domain = app.env.domains["py"]
    objects = {name: entry.objtype for name, entry in domain.objects.items()}
    objects.update({name: "module" for name in domain.modules})
    return objects, out / "html"


@pytest.fixture(scope="module")
def sphinx_objects(site: tuple[dict[str, str], Path]) -> dict[str, str]:
    return site[0]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)
            if key in ("href", "src") and value:
                self.hrefs.append(value)


@pytest.mark.slow
def test_every_internal_link_resolves(site: tuple[dict[str, str], Path]):
    """Every relative link of the built HTML reaches a file, and its #anchor an element there."""
    html = site[1]
    pages = {path: _Links() for path in html.rglob("*.html") if "_static" not in path.parts}
    for path, links in pages.items():
        links.feed(path.read_text())
    broken = []
    for path, links in pages.items():
        for href in links.hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.exists():
                broken.append(f"{path.relative_to(html)}: {href} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                if parts.fragment not in pages[target].ids:
                    broken.append(f"{path.relative_to(html)}: {href} (no such anchor)")
    assert len(pages) > 20
    assert not broken, "\n".join(broken)


@pytest.mark.slow
@pytest.mark.parametrize("module_name", public_modules())
def test_every_public_name_has_an_entry_and_a_docstring(
    module_name: str, sphinx_objects: dict[str, str]
):
    module = importlib.import_module(module_name)
    assert module.__doc__ and module.__doc__.strip(), f"{module_name} has no docstring"
    assert sphinx_objects.get(module_name) == "module", f"no API page for {module_name}"
    assert hasattr(module, "__all__"), f"{module_name} must list its public names in __all__"
    missing_entry, missing_doc = [], []
    for name in module.__all__:
        obj = getattr(module, name)
        if f"{module_name}.{name}" not in sphinx_objects:
            missing_entry.append(name)
        doc = _own_doc(module_name, name, obj)
        if not (doc and doc.strip()):
            missing_doc.append(name)
    assert not missing_entry, f"{module_name}: no API entry for {missing_entry}"
    assert not missing_doc, f"{module_name}: no docstring for {missing_doc}"


@pytest.mark.slow
def test_the_site_names_jax_array_not_its_private_path(site: tuple[dict[str, str], Path]):
    """``jax.Array.__qualname__`` is the path of its implementation, ``jaxlib._jax.Array``: every
    annotation that autodoc or napoleon spells from it must read ``jax.Array`` on the site."""
    html = site[1]
    offenders = [
        f"{path.relative_to(html)}: {path.read_text().count('jaxlib._jax')}×"
        for path in sorted(html.rglob("*.html"))
        if "jaxlib._jax" in path.read_text()
    ]
    assert not offenders, "\n".join(offenders)


def _own_children(tag, name: str, classes: tuple[str, ...] = ()) -> list:
    return [
        child
        for child in tag.find_all(name, recursive=False)
        if all(c in (child.get("class") or []) for c in classes)
    ]


@pytest.mark.slow
def test_every_attribute_entry_has_its_description_and_comes_once(
    site: tuple[dict[str, str], Path],
):
    """In the API reference, every attribute, property and module constant has text of its own
    beyond its type, and a class does not list its attributes again, bare, as "Parameters" (a
    dataclass's fields are its constructor's parameters; the docstring describes them once, under
    ``Attributes:``)."""
    from bs4 import BeautifulSoup  # a dependency of the docs theme (pydata-sphinx-theme)

    html = site[1]
    bare, repeated = [], []
    for page in sorted((html / "api").glob("*.html")):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        for entry in soup.select("dl.py.attribute, dl.py.property, dl.py.data"):
            name = entry.dt.get("id", entry.dt.get_text(strip=True))
            body = entry.find("dd", recursive=False)
            text = [
                child.get_text(strip=True)
                for child in body.find_all(recursive=False)
                if "field-list" not in (child.get("class") or [])  # the "Type" field
            ]
            if not "".join(text):
                bare.append(f"{page.name}: {name}")
        for cls in soup.select("dl.py.class"):
            body = cls.find("dd", recursive=False)
            attributes = {
                member.dt["id"].rsplit(".", 1)[-1]
                for kind in ("attribute", "property")
                for member in _own_children(body, "dl", ("py", kind))
                if member.dt.get("id")
            }
            for fields in _own_children(body, "dl", ("field-list",)):
                for label in fields.find_all("dt", recursive=False):
                    if not label.get_text(strip=True).startswith("Parameters"):
                        continue
                    items = label.find_next_sibling("dd").find_all("p")
                    for item in items:
                        param = item.strong.get_text(strip=True) if item.strong else ""
                        described = "–" in item.get_text()  # "name (type) – text"
                        if param in attributes and not described:
                            repeated.append(f"{page.name}: {cls.dt.get('id')}: {param}")
    assert not bare, "attribute entries without a description:\n" + "\n".join(bare)
    assert not repeated, "attributes listed again as bare parameters:\n" + "\n".join(repeated)
