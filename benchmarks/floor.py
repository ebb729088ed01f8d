"""A lower bound on any GRU forward pass on this backend, from its two unavoidable matmuls.

    python benchmarks/floor.py                        # reads benchmarks/results/cpu_float32.json
    python benchmarks/floor.py --report other.json

A GRU forward at ``(B, T, I, H)`` must run ``T`` dependent ``(B, H) x (H, 3H)`` recurrent matmuls
and project ``T·B`` inputs through ``(I, 3H)``. This script times, in one jitted function each:

* ``recurrent``: a ``lax.scan`` of ``T`` steps whose body is that matmul and one fused
  elementwise update (``h = tanh(g_z + g_r * g_n)``, so that XLA cannot drop the matmul). A GRU
  step does at least this, plus its gates;
* ``projection``: the input projection as one ``(T·B, I) x (I, 3H)`` matmul; for the floor it
  counts as its FLOPs at the report's measured matmul peak, which no arrangement beats.

``floor = recurrent + projection at peak`` is then a time no GRU implementation on this backend
beats (up to timing noise). For each shape it prints the floor next to the fastest peer's forward
median from a ``bench.py`` report, and the time that 1.25x the fastest peer would need. Where
that time is below the floor, the 1.25x forward target cannot be met on this machine by any
arrangement of the computation that keeps XLA's matmuls.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

try:
    from benchmarks import harness
    from benchmarks.bench import PEERS
except ImportError:  # run as a script (its folder is on sys.path)
    import harness
    from bench import PEERS


def floor_ms(shape: tuple[int, int, int, int], peak_gflops: float, repeats: int) -> dict:
    """Median ms of the recurrent-matmul scan and of the input projection at ``shape``, and
    the floor: the scan plus the projection's FLOPs at ``peak_gflops``. The two are timed
    interleaved, ``repeats`` samples of at least 0.2 s each (``harness.py``'s loop)."""
    import jax
    import jax.numpy as jnp

    b, t, i, h = shape
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    w_h = jax.random.normal(k1, (h, 3 * h)) / jnp.sqrt(h)
    w_x = jax.random.normal(k2, (i, 3 * h)) / jnp.sqrt(i)
    xs = jax.random.normal(k3, (t * b, i))
    h0 = jnp.ones((b, h)) * 0.1

    @jax.jit
    def recurrent(w_h, h0):
        def step(state, _):
            g = state @ w_h
            state = jnp.tanh(g[:, :h] + g[:, h : 2 * h] * g[:, 2 * h :])
            return state, state

        return jax.lax.scan(step, h0, None, length=t)[1]

    projection = jax.jit(lambda xs, w_x: xs @ w_x)
    cases = {
        "recurrent": harness.blocking(recurrent, w_h, h0),
        "projection": harness.blocking(projection, xs, w_x),
    }
    times = harness.interleave(cases, repeats, min_time=0.2)
    rec, proj = (1e3 * times[name].median for name in cases)
    at_peak = 2.0 * t * b * i * 3 * h / (peak_gflops * 1e6)
    return {
        "recurrent_ms": rec,
        "projection_ms": proj,
        "projection_at_peak_ms": at_peak,
        "floor_ms": rec + at_peak,
    }


def main(argv: list[str] | None = None) -> int:
    p = harness.OneLineParser(prog="floor.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--report", default=str(harness.RESULTS / "cpu_float32.json"), help="bench.py JSON"
    )
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1; got {args.repeats}")
    try:
        report = json.loads(Path(args.report).read_text())
        report["results"], report["matmul_peak_gflops"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        p.error(f"--report {args.report} is not a bench.py report: {type(e).__name__}: {e}")
    import jax

    rows = []
    print("all times in ms, medians")
    print(
        "| B, T, I, H | recurrent matmuls | input projection: measured, at peak | floor "
        "| fastest peer fwd | 1.25x needs | gru_jax fwd |"
    )
    print("|---|---|---|---|---|---|---|")
    peak = report["matmul_peak_gflops"]
    for key, res in report["results"].items():
        shape = tuple(int(v) for v in key.split(","))
        peers = {n: res[n]["fwd"]["median_ms"] for n in PEERS if n in res}
        best = min(peers, key=peers.get)
        row = {
            "shape": key,
            **floor_ms(shape, peak, args.repeats),
            "fastest_peer": best,
            "fastest_peer_ms": peers[best],
            "needed_for_1.25x_ms": peers[best] / 1.25,
            "gru_jax_ms": res["gru_jax"]["fwd"]["median_ms"],
        }
        rows.append(row)
        print(
            f"| {key} | {row['recurrent_ms']:.2f} | {row['projection_ms']:.2f}, "
            f"{row['projection_at_peak_ms']:.2f} | {row['floor_ms']:.2f} "
            f"| {row['fastest_peer_ms']:.2f} ({best}) | {row['needed_for_1.25x_ms']:.2f} "
            f"| {row['gru_jax_ms']:.2f} |",
            flush=True,
        )
    if args.out:
        meta = {
            "command": harness.command_line("floor.py", argv),
            "backend": jax.default_backend(),
            "report": args.report,
            "matmul_peak_gflops": peak,
            "rows": rows,
        }
        harness.write_report(Path(args.out), meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
