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


# The files that take longest, first: ``--dist loadfile`` hands whole files to the two workers in
# collection order, so a long file collected last would leave one worker idle while the other
# finishes it (longest first is the classic fix for that). The order is from `--durations`.
LONGEST_FIRST = (
    "test_docs_code.py",
    "test_train.py",
    "test_multihost.py",
    "test_mingru.py",
    "test_packaging.py",
    "test_resets.py",
    "test_tasks_charlm_seq2seq.py",
    "test_fast_paths.py",
    "test_linen.py",
    "test_serving.py",
    "test_reference_values.py",
    "test_interop.py",
    "test_charlm_packing.py",
    "test_chrono.py",
    "test_export.py",
    "test_stability.py",
    "test_scan.py",
    "test_bench.py",
    "linen.py",  # gru_jax/linen.py's doctests
    "test_nnx.py",
    "test_properties.py",
    "test_linear_scan.py",
    "test_conventions.py",
    "test_mingru_stack.py",
    "test_docs.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file
