"""What resets and time-major inputs cost: ``gru`` with and without them, in one process.

    python benchmarks/bench_resets.py                 # the four benchmark shapes, ~6 minutes
    python benchmarks/bench_resets.py --quick         # a smoke run on tiny shapes

For each shape of ``bench.py`` and both variants, times the jitted forward pass and the jitted
gradient of ``mean(ys²)`` with respect to the parameters and ``xs`` (forward + backward) of:

* ``plain``: ``gru(params, xs)``, batch-major, no resets (the fast path as it was);
* ``resets``: the same call with a ``(B, T)`` ``resets`` array, about one segment start per 64
  steps at random (fixed seed);
* ``time_major``: ``gru(params, xs_t, time_major=True)`` on the same data laid out ``(T, B, I)``;
* ``time_major+resets``: both.

The cases are interleaved, in an order rotated between repeats; the report gives each median
(min–max) and its ratio to ``plain``. Results go to ``benchmarks/results/cpu_float32_resets.*``.
"""

from __future__ import annotations

import argparse
import sys

try:
    from benchmarks import harness
    from benchmarks.bench import DEFAULT_SHAPES, QUICK_SHAPES
except ImportError:  # run as a script (its folder is on sys.path)
    import harness
    from bench import DEFAULT_SHAPES, QUICK_SHAPES

CASES = ("plain", "resets", "time_major", "time_major+resets")
RESET_EVERY = 64  # steps per segment start, on average


def make_cases(shape, reset_after: bool, dtype) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import gru_jax

    b, t, i, h = shape
    kp, kx = jax.random.split(jax.random.key(0))
    params = gru_jax.init_gru(kp, i, h, reset_after=reset_after, dtype=dtype)
    xs = jax.random.normal(kx, (b, t, i), dtype)
    resets = np.random.default_rng(0).random((b, t)) < 1.0 / RESET_EVERY
    xs_t, resets_t = jnp.swapaxes(xs, 0, 1), resets.T
    calls = {
        "plain": (lambda p, x: gru_jax.gru(p, x)[0], xs),
        "resets": (lambda p, x: gru_jax.gru(p, x, resets=resets)[0], xs),
        "time_major": (lambda p, x: gru_jax.gru(p, x, time_major=True)[0], xs_t),
        "time_major+resets": (
            lambda p, x: gru_jax.gru(p, x, resets=resets_t, time_major=True)[0],
            xs_t,
        ),
    }
    cases = {}
    for name, (apply, x) in calls.items():

        def loss(p, x, apply=apply):
            return jnp.mean(jnp.square(apply(p, x).astype(jnp.float32)))

        fwd = jax.jit(apply)
        bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))
        cases[name] = {
            "fwd": harness.blocking(fwd, params, x),
            "fwdbwd": harness.blocking(bwd, params, x),
        }
    return cases


def measure(args: argparse.Namespace, shape: harness.Shape, reset_after: bool) -> dict:
    """Per mode, each case's median, min and max ms and its ratio to ``plain``."""
    import jax.numpy as jnp

    cases = make_cases(shape, reset_after, jnp.float32)
    title = f"{'x'.join(map(str, shape))} reset_after={reset_after}"
    return {
        mode: harness.compare(
            {name: case[mode] for name, case in cases.items()}, args, "plain", f"{title} {mode}"
        )
        for mode in ("fwd", "fwdbwd")
    }


def markdown(report: dict) -> str:
    def cell(c: dict) -> str:
        return f"{c['median_ms']:.2f} ({c['ratio_to_plain']:.3f}×)"

    rows = [
        ([key, mode], cases)
        for key, modes in report["results"].items()
        for mode, cases in modes.items()
    ]
    heads = ["shape, variant", "mode"]
    return harness.suite_table(report, "median ms (ratio to plain)", heads, CASES, rows, cell)


def parser() -> argparse.ArgumentParser:
    out = harness.RESULTS / "cpu_float32_resets.json"
    return harness.suite_parser(__doc__.split("\n\n")[0], DEFAULT_SHAPES, out)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return harness.run_suite(
        "bench_resets", args, measure, markdown, quick_shapes=QUICK_SHAPES, reset_every=RESET_EVERY
    )


if __name__ == "__main__":
    sys.exit(main())
