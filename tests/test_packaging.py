"""Dependencies by layer: ``pip install gru-jax`` brings JAX and nothing of Flax or the training
application; each optional part names the extra it needs.

* Every third-party import of a module (lazy ones inside functions included) is installed by
  the dependencies of that module's layer: the core by the plain install, ``linen``/``nnx`` by
  the ``flax`` extra, the application (``tasks``, ``train``, ``cli``) by the ``train`` extra.
* In a fresh virtual environment, ``pip install .`` installs neither flax nor optax;
  ``gru_jax.gru`` runs with ``resets``; importing ``gru_jax.linen`` or ``gru_jax.tasks``, and
  running ``gru-jax``, fail with one line naming the extra to install.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gru_jax"
# Peers that a converter imports when it is asked to convert to or from their objects, and the
# environments that the PPO tasks import when one is built (the 'rl' extra).
OPTIONAL = {
    "interop/_common.py": {"torch"},
    "interop/_torch.py": {"torch"},
    "interop/_equinox.py": {"equinox"},
    "interop/_flax_nnx.py": {"flax"},
    "tasks/ppo/_env.py": {"gymnax"},
}
APPLICATION = ("tasks/", "train/", "cli.py")
FLAX_LAYER = ("linen.py", "nnx.py", "_flax/")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(extra: str | None) -> set[str]:
    """The distributions the plain install (``extra=None``) or an extra names, extras of
    gru-jax itself expanded (``gru-jax[flax]``)."""
    names: set[str] = set()
    for requirement in metadata.requires("gru-jax") or []:
        spec, _, marker = requirement.partition(";")
        if (extra is None) != ("extra ==" not in marker) or (
            extra is not None and f'extra == "{extra}"' not in marker
        ):
            continue
        name = _canonical(re.split(r"[\s<>=!~\[(]", spec.strip(), maxsplit=1)[0])
        if name == "gru-jax":
            for inner in re.findall(r"\[([^\]]+)\]", spec)[0].split(","):
                names |= _requirements(inner.strip())
        else:
            names.add(name)
    return names if extra is None else names | _requirements(None)


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
        todo += [
            _canonical(re.split(r"[\s;<>=!~\[(]", r.strip(), maxsplit=1)[0])
            for r in requires
            if "extra ==" not in r
        ]
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


def test_every_import_is_installed_by_its_layers_dependencies():
    layers = {
        "core": _closure(_requirements(None)),
        "flax": _closure(_requirements("flax")),
        "train": _closure(_requirements("train")),
    }
    assert "flax" not in layers["core"] and "optax" not in layers["core"]
    assert "flax" in layers["flax"]  # (flax itself requires optax and orbax)
    assert {"optax", "matplotlib", "pyyaml", "rich"} <= layers["train"]
    distributions = metadata.packages_distributions()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        layer = (
            "train"
            if relative.startswith(APPLICATION)
            else "flax"
            if relative.startswith(FLAX_LAYER)
            else "core"
        )
        for name in sorted(_imports(path) - set(sys.stdlib_module_names) - {"gru_jax"}):
            if name in OPTIONAL.get(relative, ()):
                continue
            owners = {_canonical(d) for d in distributions.get(name, [])}
            assert owners & layers[layer], (
                f"gru_jax/{relative} imports {name!r} (from {sorted(owners)}), which the "
                f"dependencies of its layer ({layer}) do not install"
            )


FRESH_CHECK = """
import sys
import jax, jax.numpy as jnp
import gru_jax

params = gru_jax.init_gru(jax.random.key(0), 3, 4)
xs = jax.random.normal(jax.random.key(1), (2, 6, 3))
resets = jnp.zeros((2, 6), bool).at[:, 3].set(True)
ys, h = gru_jax.gru(params, xs, resets=resets)
alone, _ = gru_jax.gru(params, xs[:, 3:])
assert jnp.allclose(ys[:, 3:], alone, atol=1e-6)  # a segment runs as if alone
loaded = {"flax", "optax", "orbax", "yaml", "rich", "matplotlib"} & set(sys.modules)
assert not loaded, loaded
for module, extra in (("gru_jax.linen", "flax"), ("gru_jax.nnx", "flax"),
                      ("gru_jax.tasks", "train"), ("gru_jax.train", "train")):
    try:
        __import__(module)
    except ImportError as e:
        assert f"pip install 'gru-jax[{extra}]'" in str(e), str(e)
    else:
        raise AssertionError(f"{module} imported without the {extra} extra")
print("fresh install: ok")
"""


@pytest.mark.slow
def test_a_plain_install_needs_only_jax(tmp_path):
    source = tmp_path / "source"  # the package alone: no build files left in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "gru_jax", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, pip = venv / "bin" / "python", [str(venv / "bin" / "python"), "-m", "pip"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [*pip, "install", "--quiet", "--disable-pip-version-check", str(source)],
        check=True,
        timeout=600,
        env=env,
        capture_output=True,
    )
    listed = subprocess.run(
        [*pip, "list", "--format=freeze"], check=True, capture_output=True, text=True, env=env
    ).stdout
    installed = {_canonical(line.split("==")[0]) for line in listed.splitlines()}
    assert {"jax", "jaxlib", "numpy", "gru-jax"} <= installed
    assert not installed & {"flax", "optax", "orbax-checkpoint", "pyyaml", "rich", "matplotlib"}
    run = subprocess.run(
        [str(python), "-c", textwrap.dedent(FRESH_CHECK)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0 and "fresh install: ok" in run.stdout, run.stderr
    cli = subprocess.run(
        [str(venv / "bin" / "gru-jax"), "train", str(ROOT / "configs" / "adding.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert cli.returncode == 2
    assert cli.stderr.count("\n") == 1 and "pip install 'gru-jax[train]'" in cli.stderr
