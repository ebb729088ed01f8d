"""Test-session settings.

float64 is enabled so that references and gradient checks are exact. Every test builds its
arrays with explicit dtypes, so enabling x64 changes no tested default.

XLA:CPU compiles the suite's programs with LLVM's optimisations off
(``--xla_backend_optimization_level=0``, set before JAX is imported, so that the xdist workers
and the ``gru-jax`` processes the tests start inherit it). The suite compiles thousands of small
programs and runs each a few times, so compiling dominates its time; the flag cuts it by about a
fifth and changes no result that a test checks. The programs users run, the benchmarks and
``make demo`` are compiled with XLA's defaults.
"""

import os

_FAST_COMPILE = "--xla_backend_optimization_level=0"
if _FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()

import jax  # noqa: E402 (after the flags above)
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def registry():
    """Restore the registry of user tasks (``gru_jax.tasks.register_task``) after a test."""
    from gru_jax import tasks

    saved = dict(tasks._REGISTERED)
    yield
    tasks._REGISTERED.clear()
    tasks._REGISTERED.update(saved)
