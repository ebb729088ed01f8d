"""What serving through ``jax.export`` costs: the exported GRU against the jitted one.

    python benchmarks/bench_export.py                 # the four benchmark shapes
    python benchmarks/bench_export.py --quick         # a smoke run on tiny shapes

For each shape of ``bench.py`` and both variants, times the forward pass ``gru(params, xs)`` as

* ``jit``: ``jax.jit`` at the concrete shape (the plan picks its chunks from ``B`` and ``T``);
* ``export b``: exported with a symbolic batch (``"b, T, I"``), serialized, deserialized, and
  called (under ``jax.jit``) at the concrete shape;
* ``export b,t``: the same with a symbolic batch and length (``"b, t, I"``): the plan cannot
  see ``B`` or ``T`` and runs chunks of ``SYMBOLIC_CHUNK`` steps.

The parameters are arguments, as a server that loads them would pass them. The cases are
interleaved, in an order rotated between repeats; the report gives each median (min–max) and
its ratio to ``jit``. Results go to ``benchmarks/results/cpu_float32_export.*``.
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

CASES = ("jit", "export b", "export b,t")


def make_cases(shape: tuple[int, int, int, int], reset_after: bool) -> dict:
    import jax
    import jax.numpy as jnp
    from jax import export

    import gru_jax

    b, t, i, h = shape
    kp, kx = jax.random.split(jax.random.key(0))
    params = gru_jax.init_gru(kp, i, h, reset_after=reset_after)
    xs = jax.random.normal(kx, (b, t, i), jnp.float32)

    def forward(p: gru_jax.GRUParams, x: jax.Array) -> jax.Array:
        return gru_jax.gru(p, x)[0]

    p_spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
    fns = {"jit": jax.jit(forward)}
    for name, dims in (("export b", f"b, {t}, {i}"), ("export b,t", f"b, t, {i}")):
        x_spec = jax.ShapeDtypeStruct(export.symbolic_shape(dims), jnp.float32)
        exported = export.export(jax.jit(forward))(p_spec, x_spec)
        fns[name] = jax.jit(export.deserialize(exported.serialize()).call)
    return {name: harness.blocking(fn, params, xs) for name, fn in fns.items()}


def measure(args: argparse.Namespace, shape: harness.Shape, reset_after: bool) -> dict:
    """Each case's median, min and max ms and its ratio to ``jit``, at one shape and variant."""
    title = f"{'x'.join(map(str, shape))} reset_after={reset_after}"
    return harness.compare(make_cases(shape, reset_after), args, "jit", title)


def markdown(report: dict) -> str:
    def cell(c: dict) -> str:
        return (
            f"{c['median_ms']:.2f} ({c['min_ms']:.2f}–{c['max_ms']:.2f}), {c['ratio_to_jit']:.3f}×"
        )

    what = "forward pass, median ms (min–max), ratio to jit"
    rows = [([key], cases) for key, cases in report["results"].items()]
    return harness.suite_table(report, what, ["shape, variant"], CASES, rows, cell)


def parser() -> argparse.ArgumentParser:
    out = harness.RESULTS / "cpu_float32_export.json"
    return harness.suite_parser(__doc__.split("\n\n")[0], DEFAULT_SHAPES, out)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return harness.run_suite("bench_export", args, measure, markdown, quick_shapes=QUICK_SHAPES)


if __name__ == "__main__":
    sys.exit(main())
