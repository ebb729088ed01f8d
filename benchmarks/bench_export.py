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
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # the benchmark's own helpers
    DEFAULT_SHAPES,
    QUICK_SHAPES,
    RESULTS,
    calibrate,
    load_average,
    machine_info,
    parse_shapes,
    sample,
)

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
    return {name: (lambda fn=fn: jax.block_until_ready(fn(params, xs))) for name, fn in fns.items()}


def run(args: argparse.Namespace) -> dict:
    shapes = parse_shapes(QUICK_SHAPES if args.quick else args.shapes)
    report: dict = {
        "command": " ".join(["python", "benchmarks/bench_export.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "load_before": load_average(),
        "repeats": args.repeats,
        "results": {},
    }
    try:
        report["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        report["commit"] = None
    for shape in shapes:
        key = "x".join(map(str, shape))
        for reset_after in (True, False):
            fns = make_cases(shape, reset_after)
            calls = {name: calibrate(fn, args.min_time) for name, fn in fns.items()}
            times: dict[str, list[float]] = {name: [] for name in fns}
            names = list(fns)
            for r in range(args.repeats):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    times[name].append(sample(fns[name], calls[name]) * 1e3)
            base = statistics.median(times["jit"])
            out = {
                name: {
                    "median_ms": statistics.median(ts),
                    "min_ms": min(ts),
                    "max_ms": max(ts),
                    "ratio_to_jit": statistics.median(ts) / base,
                }
                for name, ts in times.items()
            }
            print(
                f"{key} reset_after={reset_after}: "
                + ", ".join(
                    f"{n} {v['median_ms']:.2f} ms ({v['ratio_to_jit']:.3f}x)"
                    for n, v in out.items()
                ),
                flush=True,
            )
            report["results"][f"{key} reset_after={reset_after}"] = out
    report["load_after"] = load_average()
    return report


def markdown(report: dict) -> str:
    lines = [
        f"`{report['command']}` (commit {report.get('commit')}, load "
        f"{report['load_before']} before, {report['load_after']} after); forward pass, median "
        "ms (min–max), ratio to jit",
        "",
        "| shape, variant | " + " | ".join(CASES) + " |",
        "|---|" + "---|" * len(CASES),
    ]
    for key, cases in report["results"].items():
        cells = [
            f"{cases[c]['median_ms']:.2f} ({cases[c]['min_ms']:.2f}–{cases[c]['max_ms']:.2f}), "
            f"{cases[c]['ratio_to_jit']:.3f}×"
            for c in CASES
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, a smoke run")
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help="BxTxIxH,... (default: bench.py's)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per timed sample")
    p.add_argument("--out", type=Path, default=RESULTS / "cpu_float32_export.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.repeats < 1:
        print("bench_export: error: --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        parse_shapes(args.shapes)
    except argparse.ArgumentTypeError as e:
        print(f"bench_export: error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report = run(args)
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"results: {args.out}, {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
