"""The house, drawn from the imports: layers that import only downwards, and short files.

Parsing every module of ``gru_jax/`` (imports inside functions included):

* each module belongs to a layer; an import of a module of a higher layer fails the test. From
  the bottom: ``_base`` (what every cell uses); ``_gru`` and ``_mingru``, side by side, neither
  importing the other; the public core (``gru_jax``, ``_serialization``, ``serving``);
  ``interop`` and the Flax layer (``_flax``, ``linen``, ``nnx``), side by side; then the
  application: ``tasks``, ``train``, ``cli``. So the library imports nothing of the
  application, and nothing in ``tasks`` imports ``gru_jax.train``;
* imports are absolute (no ``from . import``);
* no file has more than 600 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gru_jax"
MAX_LINES = 600

# (rank, group): a module may import a module of a lower rank, or of its own group.
LAYERS = [
    (0, "base", ("gru_jax._base",)),
    (1, "gru", ("gru_jax._gru",)),
    (1, "mingru", ("gru_jax._mingru",)),
    (2, "core", ("gru_jax._serialization", "gru_jax.serving")),
    (3, "interop", ("gru_jax.interop",)),
    (3, "flax", ("gru_jax._flax", "gru_jax.linen", "gru_jax.nnx")),
    (4, "tasks", ("gru_jax.tasks",)),
    (5, "train", ("gru_jax.train",)),
    (6, "cli", ("gru_jax.cli",)),
]


def layer_of(module: str) -> tuple[int, str]:
    """The ``(rank, group)`` of a module of the package, by its dotted name."""
    if module == "gru_jax":
        return 2, "core"
    for rank, group, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank, group
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str | None, int]]:
    """``(line, module, level)`` of every import statement; ``module`` None for ``from . import``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module, node.level))
            if node.level == 0 and node.module == "gru_jax":  # from gru_jax import _x
                found += [(node.lineno, f"gru_jax.{a.name}", 0) for a in node.names]
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    for path in FILES:
        layer_of(module_name(path))


def test_imports_go_only_downwards_and_are_absolute():
    problems = []
    for path in FILES:
        name = module_name(path)
        rank, group = layer_of(name)
        for line, module, level in imports_of(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if level:
                problems.append(f"{where}: a relative import (imports are absolute)")
                continue
            if module is None or not (module == "gru_jax" or module.startswith("gru_jax.")):
                continue
            their_rank, their_group = layer_of(module)
            if their_group != group and their_rank >= rank:
                problems.append(f"{where}: {name} ({group}) imports {module} ({their_group})")
    assert not problems, "\n".join(problems)


def test_the_rules_catch_what_they_promise():
    # the checks above would fail on these (so that they cannot pass vacuously)
    assert layer_of("gru_jax._gru.cell")[1] != layer_of("gru_jax._mingru.cell")[1]
    assert layer_of("gru_jax.tasks.adding")[0] < layer_of("gru_jax.train._run")[0]
    assert layer_of("gru_jax.linen")[0] > layer_of("gru_jax")[0] > layer_of("gru_jax._base.x")[0]
    assert layer_of("gru_jax.interop._torch")[0] == layer_of("gru_jax.nnx")[0]
    assert len(FILES) > 40 and any(p.name == "jvp.py" for p in FILES)


def test_no_file_is_over_600_lines():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in FILES
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"
