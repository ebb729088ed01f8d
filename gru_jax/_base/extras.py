"""The optional parts of the package and the extra that installs each.

``pip install gru-jax`` installs jax, jaxlib, numpy and flatbuffers: the core, the minGRU, resets,
``jax.export`` and :mod:`gru_jax.serving`. :mod:`gru_jax.linen` and :mod:`gru_jax.nnx` need the
``flax`` extra; the ``gru-jax`` command and :mod:`gru_jax.tasks` / :mod:`gru_jax.train` need the
``train`` extra. Importing one of them without its extra raises the one error below.
"""

from __future__ import annotations

import importlib.util

TRAIN = ("flax", "optax", "orbax.checkpoint", "yaml", "rich", "matplotlib")
"""What the ``train`` extra installs, as the modules the application imports."""


class MissingExtra(ImportError):
    """An optional part of the package was used without the extra that installs it (the
    command line prints it as one line)."""


def missing_extra(module: str, extra: str, error: ImportError) -> MissingExtra:
    """The ``ImportError`` to raise when ``module`` cannot import what its ``extra`` installs.

    Example:
      >>> from gru_jax._base.extras import missing_extra
      >>> error = ModuleNotFoundError("No module named 'flax'")
      >>> print(missing_extra("gru_jax.linen", "flax", error))
      gru_jax.linen needs the 'flax' extra: pip install 'gru-jax[flax]' (No module named 'flax')
    """
    return MissingExtra(
        f"{module} needs the '{extra}' extra: pip install 'gru-jax[{extra}]' ({error})"
    )


def require_extra(module: str, extra: str, imports: tuple[str, ...]) -> None:
    """Raise one ``ImportError`` naming ``extra`` unless every module of ``imports`` can be
    imported (checked with ``importlib.util.find_spec``, without importing it)."""
    missing = [name for name in imports if not _importable(name)]
    if missing:
        raise missing_extra(module, extra, ModuleNotFoundError(f"missing: {', '.join(missing)}"))


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package of a dotted name is missing
        return False
