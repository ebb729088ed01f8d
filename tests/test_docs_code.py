"""Every ```python block of every page in ``docs/`` and of the README runs as written: a page's
blocks in order, in one real module, from the repository root (a separate file from the site's
own tests in ``test_docs.py``, so that the two run on different workers)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", flags=re.S | re.M)


def _python_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


@pytest.mark.parametrize(
    "page",
    [*PAGES, ROOT / "README.md"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_python_blocks_run(page: Path, monkeypatch: pytest.MonkeyPatch):
    blocks = _python_blocks(page)
    if not blocks:
        pytest.skip("no python blocks")
    monkeypatch.chdir(ROOT)
    module = types.ModuleType("__docs__")  # a real module, so that dataclasses can find it
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for i, block in enumerate(blocks):
        code = compile(block, f"{page.relative_to(ROOT)}[block {i}]", "exec", dont_inherit=True)
        exec(code, namespace)
