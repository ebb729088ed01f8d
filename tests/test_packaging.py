"""A plain ``pip install`` gives everything the ``gru-jax`` command imports (plots included)."""

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gru_jax"
OPTIONAL = {
    # gru_jax.interop converts to and from these peers' objects: whoever converts has them.
    "interop/_common.py": {"torch"},
    "interop/_torch.py": {"torch"},
    "interop/_equinox.py": {"equinox"},
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _canonical(re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0])


def _closure(names: set[str]) -> set[str]:
    """The distributions ``names`` install: themselves and their non-optional requirements."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def _imports(path: Path) -> set[str]:
    """The top-level modules a file imports, lazily inside functions too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_import_of_the_package_is_a_core_dependency():
    requires = metadata.requires("gru-jax") or []
    core = {_requirement_name(r) for r in requires if "extra ==" not in r}
    assert "matplotlib" in core  # the CLI's plots
    installed = _closure(core)
    distributions = metadata.packages_distributions()
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in sorted(_imports(path) - set(sys.stdlib_module_names) - {"gru_jax"}):
            if name in OPTIONAL.get(path.relative_to(PACKAGE).as_posix(), ()):
                continue
            owners = {_canonical(d) for d in distributions.get(name, [])}
            assert owners & installed, (
                f"{path.relative_to(PACKAGE.parent)} imports {name!r} (from {sorted(owners)}), "
                "which a plain `pip install gru-jax` does not install"
            )
