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
            "fwd": lambda fwd=fwd, x=x: jax.block_until_ready(fwd(params, x)),
            "fwdbwd": lambda bwd=bwd, x=x: jax.block_until_ready(bwd(params, x)),
        }
    return cases


def run(args: argparse.Namespace) -> dict:
    import jax.numpy as jnp

    shapes = parse_shapes(QUICK_SHAPES if args.quick else args.shapes)
    report: dict = {
        "command": " ".join(["python", "benchmarks/bench_resets.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "load_before": load_average(),
        "repeats": args.repeats,
        "reset_every": RESET_EVERY,
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
            cases = make_cases(shape, reset_after, jnp.float32)
            out = {}
            for mode in ("fwd", "fwdbwd"):
                fns = {name: case[mode] for name, case in cases.items()}
                calls = {name: calibrate(fn, args.min_time) for name, fn in fns.items()}
                times: dict[str, list[float]] = {name: [] for name in fns}
                names = list(fns)
                for r in range(args.repeats):
                    for name in names[r % len(names) :] + names[: r % len(names)]:
                        times[name].append(sample(fns[name], calls[name]) * 1e3)
                plain = statistics.median(times["plain"])
                out[mode] = {
                    name: {
                        "median_ms": statistics.median(ts),
                        "min_ms": min(ts),
                        "max_ms": max(ts),
                        "ratio_to_plain": statistics.median(ts) / plain,
                    }
                    for name, ts in times.items()
                }
                print(
                    f"{key} reset_after={reset_after} {mode}: "
                    + ", ".join(
                        f"{n} {v['median_ms']:.2f} ms ({v['ratio_to_plain']:.3f}x)"
                        for n, v in out[mode].items()
                    ),
                    flush=True,
                )
            report["results"][f"{key} reset_after={reset_after}"] = out
    report["load_after"] = load_average()
    return report


def markdown(report: dict) -> str:
    lines = [
        f"`{report['command']}` (commit {report.get('commit')}, load "
        f"{report['load_before']} before, {report['load_after']} after); median ms (ratio to "
        "plain)",
        "",
        "| shape, variant | mode | " + " | ".join(CASES) + " |",
        "|---|---|" + "---|" * len(CASES),
    ]
    for key, modes in report["results"].items():
        for mode, cases in modes.items():
            cells = [
                f"{cases[c]['median_ms']:.2f} ({cases[c]['ratio_to_plain']:.3f}×)" for c in CASES
            ]
            lines.append(f"| {key} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, a smoke run")
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help="BxTxIxH,... (default: bench.py's)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per timed sample")
    p.add_argument("--out", type=Path, default=RESULTS / "cpu_float32_resets.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.repeats < 1:
        print("bench_resets: error: --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        parse_shapes(args.shapes)
    except argparse.ArgumentTypeError as e:
        print(f"bench_resets: error: {e}", file=sys.stderr)
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
