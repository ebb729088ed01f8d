"""minGRU against the full GRU: training-step timings, and the minGRU modes across lengths.

    python benchmarks/bench_mingru.py                         # CPU: (8, 4096, 64, 128) + sweep
    python benchmarks/bench_mingru.py --quick                 # a smoke run on tiny shapes
    python benchmarks/bench_mingru.py --sweep 512,1024,2048,4096,8192,16384   # e.g. on a GPU
    python benchmarks/bench_mingru.py --resets --sweep ''     # + the cost of resets=, time_major=

What is timed, in one process: the jitted gradient of ``sum(ys)`` with respect to the
parameters and ``xs`` (a forward and a backward pass, what a training step costs) for

* ``mingru`` in each mode: ``"sequential"``, ``"parallel"``, ``"chunked"``;
* ``gru_jax.gru`` with ``reset_after=False`` and ``reset_after=True``.

Part 1, the headline comparison, at ``--shape`` (default ``B, T, I, H = 8, 4096, 64, 128``): every
repeat times every case once, in an order rotated from repeat to repeat so that background load
hits all of them alike. Each timed sample is the mean over enough back-to-back calls to last
``--min-time`` seconds. Reported: median and min–max wall time over ``--repeats`` repeats, the
median process CPU time per call (user + system, all threads; steadier than wall time on a busy
machine), and the ratios of each GRU's median to each minGRU mode's median.

Part 2, the sweep: the three minGRU modes at ``B, I, H`` of ``--shape`` and each ``T`` of
``--sweep``, interleaved the same way (this is the measurement behind ``mode="auto"``).

Part 3, with ``--resets``: each minGRU mode at ``--shape``, forward+backward, without and with a
``resets`` array (random, about one reset per ``--reset-every`` steps, a traced argument), each
batch-major and with ``time_major=True`` (inputs already time-major), all interleaved: the
medians and their ratios to the plain batch-major call.

Results go to ``--out`` (JSON, with the machine, versions and load averages before and after)
and a Markdown summary to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

import gru_jax
from gru_jax._base.linear_scan import resolve_mode

try:
    from benchmarks import harness
except ImportError:  # run as a script (its folder is on sys.path)
    import harness

MODES = ("sequential", "parallel", "chunked")


def make_case(
    kind: str,
    shape: tuple[int, int, int, int],
    key: jax.Array,
    *,
    reset_every: int | None = None,
    time_major: bool = False,
):
    """A jitted ``grad(sum(ys))`` w.r.t. (params, xs) and its arguments. For a minGRU with
    ``reset_every``, also a random ``resets`` array with that mean spacing (a traced argument);
    with ``time_major``, ``xs`` (and ``resets``) are made time-major."""
    b, t, i, h = shape
    k_p, k_x = jax.random.split(key)
    xs = jax.random.normal(k_x, (b, t, i), jnp.float32)
    if kind.startswith("mingru") and (reset_every is not None or time_major):
        mode = kind.removeprefix("mingru_")
        params = gru_jax.init_mingru(k_p, i, h)
        resets = None
        if reset_every is not None:
            k_r = jax.random.fold_in(key, 7)
            resets = jax.random.bernoulli(k_r, 1.0 / reset_every, (b, t))
        if time_major:
            xs = jnp.swapaxes(xs, 0, 1)
            resets = None if resets is None else resets.T

        def loss_resets(p, x, r):
            return jnp.sum(gru_jax.mingru(p, x, resets=r, time_major=time_major, mode=mode)[0])

        return jax.jit(jax.grad(loss_resets, argnums=(0, 1))), (params, xs, resets)
    if kind.startswith("gru"):
        params = gru_jax.init_gru(k_p, i, h, reset_after=kind == "gru_reset_after")

        def loss(p, x):
            return jnp.sum(gru_jax.gru(p, x)[0])
    else:
        mode = kind.removeprefix("mingru_")
        params = gru_jax.init_mingru(k_p, i, h)

        def loss(p, x):
            return jnp.sum(gru_jax.mingru(p, x, mode=mode)[0])

    return jax.jit(jax.grad(loss, argnums=(0, 1))), (params, xs)


def run_interleaved(cases: dict, repeats: int, min_time: float) -> dict[str, dict]:
    """Time every case ``(fn, args)`` once per repeat, rotating the order (``harness.py``'s
    loop); return per-case statistics (ms)."""
    fns = {name: harness.blocking(fn, *args) for name, (fn, args) in cases.items()}
    return {
        name: {
            **t.summary(digits=3),
            "cpu_median_ms": 1e3 * statistics.median(t.cpu),
            "first_call_s": t.first_call_s,
        }
        for name, t in harness.interleave(fns, repeats, min_time).items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape",
        type=lambda s: harness.parse_shapes(s)[0],
        default=(8, 4096, 64, 128),
        metavar="BxTxIxH",
    )
    parser.add_argument("--sweep", default="64,256,1024,4096,16384", help="T values, or ''")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sweep-repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per timed sample")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats")
    parser.add_argument(
        "--resets", action="store_true", help="part 3: each mode with resets= and time_major="
    )
    parser.add_argument("--reset-every", type=int, default=64, help="mean steps between resets")
    parser.add_argument("--out", default=None, help="JSON file (default: results/mingru_<backend>)")
    args = parser.parse_args(argv)
    if args.quick:
        args.shape, args.sweep, args.repeats, args.sweep_repeats = (2, 64, 4, 8), "16,64", 2, 2
        args.min_time = 0.0
    sweep = [int(v) for v in args.sweep.split(",") if v.strip()]
    machine = harness.machine_info(packages=("jax", "jaxlib"))
    backend = machine["jax_backend"]
    out = Path(args.out or harness.RESULTS / f"mingru_{backend}.json")

    info = {
        "jax": machine["versions"]["jax"],
        "backend": backend,
        "device": machine["device_kind"],
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": machine["python"],
        "git": harness.git_state(),
        "load_average_before": harness.load_average(),
        "command": harness.command_line("bench_mingru.py", argv),
    }
    print(f"jax {info['jax']} on {backend} ({info['device']}); load {harness.load_average()}")

    key = jax.random.key(0)
    names = [f"mingru_{m}" for m in MODES] + ["gru", "gru_reset_after"]
    cases = {name: make_case(name, args.shape, key) for name in names}
    headline = run_interleaved(cases, args.repeats, args.min_time)
    ratios = {
        f"{g}/{m}": headline[g]["median_ms"] / headline[m]["median_ms"]
        for g in ("gru", "gru_reset_after")
        for m in names[:3]
    }
    b, t, i, h = args.shape
    print(f"\nforward+backward, (B, T, I, H) = ({b}, {t}, {i}, {h}), {args.repeats} repeats")
    print("| case | median ms | min–max ms | CPU ms/call | vs gru | vs gru (reset_after) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        r = headline[name]
        vs = (
            (
                f"{ratios[f'gru/{name}']:.1f}x",
                f"{ratios[f'gru_reset_after/{name}']:.1f}x",
            )
            if name.startswith("mingru")
            else ("", "")
        )
        print(
            f"| {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f}–{r['max_ms']:.1f} | "
            f"{r['cpu_median_ms']:.1f} | {vs[0]} | {vs[1]} |"
        )

    sweep_results = {}
    for steps in sweep:
        shape = (b, steps, i, h)
        cases = {m: make_case(f"mingru_{m}", shape, key) for m in MODES}
        res = run_interleaved(cases, args.sweep_repeats, args.min_time)
        best = min(MODES, key=lambda m: res[m]["median_ms"])
        sweep_results[str(steps)] = {"best": best, **res}
    if sweep:
        print(f"\nminGRU modes, forward+backward, B={b} I={i} H={h}: median ms (min–max)")
        print("| T | " + " | ".join(MODES) + " | fastest | auto picks |")
        print("|---|" + "---|" * (len(MODES) + 2))
        for steps in sweep:
            res = sweep_results[str(steps)]
            cells = [
                f"{res[m]['median_ms']:.1f} ({res[m]['min_ms']:.1f}–{res[m]['max_ms']:.1f})"
                for m in MODES
            ]
            auto = resolve_mode("auto", steps)
            print(f"| {steps} | " + " | ".join(cells) + f" | {res['best']} | {auto} |")

    reset_results = {}
    if args.resets:
        variants = {
            "plain": {},
            "resets": {"reset_every": args.reset_every},
            "time_major": {"time_major": True},
            "time_major+resets": {"reset_every": args.reset_every, "time_major": True},
        }
        cases = {
            f"{m} {v}": make_case(f"mingru_{m}", args.shape, key, **kw)
            for m in MODES
            for v, kw in variants.items()
        }
        res = run_interleaved(cases, args.repeats, args.min_time)
        resets_drawn = int(cases[f"{MODES[0]} resets"][1][2].sum())
        print(
            f"\nminGRU with resets (random, {resets_drawn} in {b}x{t} steps, about 1 per "
            f"{args.reset_every}) and time_major, forward+backward, (B, T, I, H) = "
            f"({b}, {t}, {i}, {h}), {args.repeats} repeats: median ms (ratio to plain)"
        )
        print("| mode | " + " | ".join(variants) + " |")
        print("|---|" + "---|" * len(variants))
        for m in MODES:
            plain = res[f"{m} plain"]["median_ms"]
            cells = [
                f"{res[f'{m} {v}']['median_ms']:.1f} ({res[f'{m} {v}']['median_ms'] / plain:.3f}x)"
                for v in variants
            ]
            print(f"| {m} | " + " | ".join(cells) + " |")
        reset_results = {"reset_every": args.reset_every, "resets_drawn": resets_drawn, **res}

    info["load_average_after"] = harness.load_average()
    result = {
        "info": info,
        "shape": {"B": b, "T": t, "I": i, "H": h},
        "repeats": args.repeats,
        "min_time_s": args.min_time,
        "headline": headline,
        "ratios": ratios,
        "sweep": sweep_results,
        "resets": reset_results,
    }
    harness.write_report(out, result)
    print(f"\nload {info['load_average_before']} before, {info['load_average_after']} after")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
