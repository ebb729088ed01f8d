"""Side-by-side GRU timings: ``gru_jax.gru`` against Flax linen, Flax NNX, Equinox and torch.

    python benchmarks/bench.py                      # the default suite, CPU, float32
    python benchmarks/bench.py --quick              # a smoke run on tiny shapes
    python -m benchmarks.bench --quick              # the same, as a module
    gru-jax bench --repeats 9 --out benchmarks/results/cpu

Every implementation runs in this one process. Each repeat times every implementation once
(forward, then forward+backward), in an order rotated from repeat to repeat, so that background
load hits all of them alike; the report gives the median and the min-max over repeats. One timed
sample is the mean over enough back-to-back calls to last ``--min-time`` seconds (the loop of
``harness.py``, which every benchmark script shares).

What is timed, for inputs ``xs (B, T, I)`` and hidden size ``H``:

* forward: the jitted layer, ``xs -> ys (B, T, H)``;
* forward+backward: the gradient of ``mean(ys ** 2)`` with respect to all parameters and ``xs``.

Peers: ``flax.linen.RNN(GRUCell)``, ``flax.nnx.RNN(GRUCell)``, ``equinox.nn.GRUCell`` vmapped
over the batch inside ``jax.lax.scan``, and ``torch.nn.GRU(batch_first=True)`` (CPU: with
``torch.get_num_threads()`` threads; GPU: cuDNN). All of them are the reset-after GRU, the
variant ``gru_jax`` runs with ``reset_after=True``; ``gru_jax`` with ``reset_after=False`` (two
dependent recurrent matmuls per step) is timed as well.

Reported alongside the times:

* GFLOP/s = ``2·B·T·(I+H)·3H`` per forward (the six matmuls of a step, gates ignored) and three
  times that for forward+backward, divided by the median time;
* the machine's matmul peak, measured in the same interleaved loop: the median GFLOP/s of a
  ``2048 × 2048`` float32 ``jnp.dot`` (on GPU: ``4096`` and the benchmark dtype);
* peak memory: for JAX implementations the compiled executable's ``memory_analysis()``,
  ``temp + argument + output − alias`` bytes (what XLA allocates for one call, inputs and
  outputs included); for torch on CPU, the growth of the process's peak RSS over one call
  measured in a fresh subprocess (``VmHWM`` after minus ``VmRSS`` before, so it counts memory
  the call allocates beyond the inputs already held); for torch on GPU,
  ``torch.cuda.max_memory_allocated`` over one call minus the memory held before;
* ``remat``: compiled peak memory and time of one training step (gradient of the loss) at
  ``T = 16384`` with ``remat=False`` and ``remat=True``.

Results go to ``<out>.json`` (everything, with machine, versions and load averages) and
``<out>.png`` (a chart), and a Markdown table to stdout and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

try:
    from benchmarks import harness
except ImportError:  # run as a script: python benchmarks/bench.py (its folder is on sys.path)
    import harness

DEFAULT_SHAPES = "1x512x32x128,64x128x128x256,32x256x64x512,8x4096x128x128"
QUICK_SHAPES = "2x16x4x8,3x32x8x16"
PEERS = ("flax_linen", "flax_nnx", "equinox", "torch")
OURS = ("gru_jax", "gru_jax_rb")
LABELS = {
    "gru_jax": "gru_jax (reset_after=True)",
    "gru_jax_rb": "gru_jax (reset_after=False)",
    "flax_linen": "Flax linen RNN(GRUCell)",
    "flax_nnx": "Flax NNX RNN(GRUCell)",
    "equinox": "Equinox GRUCell + scan",
    "torch": "torch.nn.GRU",
}


def forward_flops(b: int, t: int, i: int, h: int) -> float:
    return 2.0 * b * t * (i + h) * 3 * h


# ----------------------------------------------------------------------------- JAX impls


def _compiled_bytes(fn, *args) -> int | None:
    try:
        m = fn.lower(*args).compile().memory_analysis()
        return int(
            m.temp_size_in_bytes
            + m.argument_size_in_bytes
            + m.output_size_in_bytes
            - m.alias_size_in_bytes
        )
    except Exception:
        return None


def _jax_case(apply, params, xs):
    """``apply(params, xs) -> ys``; returns the timed callables and compiled memory."""
    import jax
    import jax.numpy as jnp

    def loss(p, x):
        ys = apply(p, x)
        return jnp.mean(jnp.square(ys.astype(jnp.float32)))

    fwd = jax.jit(apply)
    bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return {
        "fwd": harness.blocking(fwd, params, xs),
        "fwdbwd": harness.blocking(bwd, params, xs),
        "mem_fwd": _compiled_bytes(fwd, params, xs),
        "mem_fwdbwd": _compiled_bytes(bwd, params, xs),
        "mem_method": "XLA compiled memory_analysis: temp + argument + output - alias",
    }


def make_gru_jax(shape, dtype, reset_after):
    import jax

    import gru_jax

    b, t, i, h = shape
    kp, kx = jax.random.split(jax.random.key(0))
    params = gru_jax.init_gru(kp, i, h, reset_after=reset_after, dtype=dtype)
    xs = jax.random.normal(kx, (b, t, i), dtype)
    return _jax_case(lambda p, x: gru_jax.gru(p, x)[0], params, xs)


def make_flax_linen(shape, dtype):
    import flax.linen as nn
    import jax

    b, t, i, h = shape
    kp, kx = jax.random.split(jax.random.key(0))
    model = nn.RNN(nn.GRUCell(features=h, dtype=dtype, param_dtype=dtype))
    xs = jax.random.normal(kx, (b, t, i), dtype)
    params = model.init(kp, xs)["params"]
    return _jax_case(lambda p, x: model.apply({"params": p}, x), params, xs)


def make_flax_nnx(shape, dtype):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    b, t, i, h = shape
    model = nnx.RNN(nnx.GRUCell(i, h, dtype=dtype, param_dtype=dtype, rngs=nnx.Rngs(0)))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    xs = jax.random.normal(jax.random.key(1), (b, t, i), dtype)

    def apply(p, x):
        carry = jnp.zeros((x.shape[0], h), x.dtype)
        return nnx.merge(graphdef, p, rest)(x, initial_carry=carry)

    return _jax_case(apply, params, xs)


def make_equinox(shape, dtype):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    b, t, i, h = shape
    kp, kx = jax.random.split(jax.random.key(0))
    cell = eqx.nn.GRUCell(i, h, dtype=dtype, key=kp)
    params, static = eqx.partition(cell, eqx.is_array)
    xs = jax.random.normal(kx, (b, t, i), dtype)

    def apply(p, x):
        c = eqx.combine(p, static)
        step = jax.vmap(c)  # (x (B, I), h (B, H)) -> (B, H)

        def body(hc, x_t):
            hc = step(x_t, hc)
            return hc, hc

        _, ys = jax.lax.scan(body, jnp.zeros((x.shape[0], h), x.dtype), jnp.swapaxes(x, 0, 1))
        return jnp.swapaxes(ys, 0, 1)

    return _jax_case(apply, params, xs)


# ----------------------------------------------------------------------------- torch


def _torch_dtype(torch, dtype_name):
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]


def _torch_setup(shape, dtype_name, device):
    import torch

    b, t, i, h = shape
    torch.manual_seed(0)
    model = torch.nn.GRU(i, h, batch_first=True).to(
        device=device, dtype=_torch_dtype(torch, dtype_name)
    )
    xs = torch.randn(b, t, i, device=device, dtype=_torch_dtype(torch, dtype_name))
    return torch, model, xs


def _torch_step_fns(torch, model, xs, device):
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    xg = xs.detach().clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            model(xs)
        sync()

    def fwdbwd():
        ys, _ = model(xg)
        loss = ys.float().square().mean()
        grads = torch.autograd.grad(loss, [*model.parameters(), xg])
        sync()
        return grads

    return fwd, fwdbwd


def make_torch(shape, dtype_name, device):
    torch, model, xs = _torch_setup(shape, dtype_name, device)
    fwd, fwdbwd = _torch_step_fns(torch, model, xs, device)
    if device == "cuda":
        mem = {}
        for mode, fn in (("fwd", fwd), ("fwdbwd", fwdbwd)):
            fn()
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            mem[mode] = int(torch.cuda.max_memory_allocated() - base)
        method = "torch.cuda.max_memory_allocated over one call minus memory held before"
    else:
        mem = {mode: _torch_cpu_peak_rss(shape, dtype_name, mode) for mode in ("fwd", "fwdbwd")}
        method = "growth of peak RSS (VmHWM) over one call, in a fresh subprocess"
    return {
        "fwd": fwd,
        "fwdbwd": fwdbwd,
        "mem_fwd": mem["fwd"],
        "mem_fwdbwd": mem["fwdbwd"],
        "mem_method": method,
    }


def _torch_cpu_peak_rss(shape, dtype_name, mode) -> int | None:
    """Run one torch call in a fresh process and return its peak-RSS growth in bytes."""
    cmd = [sys.executable, __file__, "--torch-rss", "x".join(map(str, shape)), dtype_name, mode]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
        return int(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def torch_rss_child(shape_text: str, dtype_name: str, mode: str) -> None:
    shape = harness.parse_shapes(shape_text)[0]
    torch, model, xs = _torch_setup(shape, dtype_name, "cpu")
    # Warm the allocator and kernels on a tiny problem of the same layer, then measure.
    tiny_torch, tiny_model, tiny_xs = _torch_setup((1, 2, shape[2], shape[3]), dtype_name, "cpu")
    for fn in _torch_step_fns(tiny_torch, tiny_model, tiny_xs, "cpu"):
        fn()
    fwd, fwdbwd = _torch_step_fns(torch, model, xs, "cpu")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    result = (fwd if mode == "fwd" else fwdbwd)()
    peak = _status_kib("VmHWM")
    del result
    print((peak - before) * 1024)


# ----------------------------------------------------------------------------- timing


def matmul_case(dtype, n: int):
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(2), (n, n), dtype)
    b = jax.random.normal(jax.random.key(3), (n, n), dtype)
    return harness.blocking(jax.jit(jnp.dot), a, b), 2.0 * n**3


def build(name, shape, dtype, dtype_name, device):
    if name == "gru_jax":
        return make_gru_jax(shape, dtype, True)
    if name == "gru_jax_rb":
        return make_gru_jax(shape, dtype, False)
    if name == "flax_linen":
        return make_flax_linen(shape, dtype)
    if name == "flax_nnx":
        return make_flax_nnx(shape, dtype)
    if name == "equinox":
        return make_equinox(shape, dtype)
    if name == "torch":
        return make_torch(shape, dtype_name, device)
    raise ValueError(name)


def run_shape(shape, impls, args, dtype, device, peak_fn, peak_flops, log):
    cases = {}
    for name in impls:
        try:
            cases[name] = build(name, shape, dtype, args.dtype, device)
        except ImportError as e:
            log(f"  skip {name}: {e}")
    fns = {(name, mode): case[mode] for name, case in cases.items() for mode in ("fwd", "fwdbwd")}
    times = harness.interleave(fns, args.repeats, args.min_time, after={"peak": peak_fn})
    peak_samples = [peak_flops / t / 1e9 for t in times.pop("peak").wall]
    flops = forward_flops(*shape)
    results = {}
    for (name, mode), timing in times.items():
        work = flops * (1 if mode == "fwd" else 3)
        results.setdefault(name, {})[mode] = {
            **timing.summary(digits=4),
            "calls_per_sample": timing.calls,
            "gflops": work / timing.median / 1e9,
            "peak_memory_bytes": cases[name][f"mem_{mode}"],
        }
    for name in results:
        results[name]["memory_method"] = cases[name]["mem_method"]
    peak = statistics.median(peak_samples)
    for mode in ("fwd", "fwdbwd"):
        peers = [results[p][mode]["median_ms"] for p in PEERS if p in results]
        fastest = min(peers) if peers else None
        for name in results:
            entry = results[name][mode]
            entry["pct_of_peak"] = 100.0 * entry["gflops"] / peak
            entry["speedup_vs_fastest_peer"] = (
                fastest / entry["median_ms"] if fastest is not None else None
            )
    return results, peak_samples


def measure_remat(args, dtype, log):
    """Compiled peak memory (and time) of one training step at long T, remat off and on."""
    import jax
    import jax.numpy as jnp

    import gru_jax

    b, t, i, h = args.remat_shape
    out = {"shape": {"B": b, "T": t, "I": i, "H": h}, "reset_after": True}
    kp, kx = jax.random.split(jax.random.key(0))
    params = gru_jax.init_gru(kp, i, h, reset_after=True, dtype=dtype)
    xs = jax.random.normal(kx, (b, t, i), dtype)
    for remat in (False, True):

        def loss(p, x, remat=remat):
            ys, _ = gru_jax.gru(p, x, remat=remat)
            return jnp.mean(jnp.square(ys.astype(jnp.float32)))

        step = jax.jit(jax.grad(loss))
        compiled = step.lower(params, xs).compile()
        m = compiled.memory_analysis()
        entry = {
            "temp_bytes": int(m.temp_size_in_bytes),
            "argument_bytes": int(m.argument_size_in_bytes),
            "output_bytes": int(m.output_size_in_bytes),
            "alias_bytes": int(m.alias_size_in_bytes),
        }
        entry["peak_bytes"] = (
            entry["temp_bytes"] + entry["argument_bytes"] + entry["output_bytes"]
        ) - entry["alias_bytes"]
        fn = harness.blocking(step, params, xs)
        fn()
        times = [harness.sample(fn, 1)[0] for _ in range(args.remat_repeats)]
        entry["time_ms"] = statistics.median(times) * 1e3
        out["remat" if remat else "no_remat"] = entry
        mib = entry["peak_bytes"] / 2**20
        log(f"  remat={remat}: peak {mib:.1f} MiB, {entry['time_ms']:.0f} ms")
    out["memory_ratio"] = out["remat"]["peak_bytes"] / out["no_remat"]["peak_bytes"]
    out["grad"] = "gradient of mean(ys**2) with respect to the parameters"
    return out


# ----------------------------------------------------------------------------- report


def gru_plan(shape, reset_after: bool) -> dict:
    """The internal strategy ``gru_jax.gru`` picks for this shape (recorded for the report)."""
    from gru_jax._gru.plan import plan

    b, t, i, h = shape
    return plan(t, b, i, h, reset_after=reset_after)._asdict()


def fmt_bytes(n):
    if n is None:
        return "n/a"
    return f"{n / 2**20:.1f}"


def markdown(report) -> str:
    lines = []
    peak = report["matmul_peak_gflops"]
    for mode, title in (("fwd", "forward"), ("fwdbwd", "forward+backward")):
        lines.append(
            f"**{title}** (ms: median [min-max]; speed-up = fastest peer's median / this "
            f"median; GFLOP/s and % of the {peak:.0f} GFLOP/s matmul peak; peak MiB)\n"
        )
        lines.append("| B, T, I, H | implementation | ms | speed-up | GFLOP/s | % peak | MiB |")
        lines.append("|---|---|---|---|---|---|---|")
        for shape_key, res in report["results"].items():
            for name in res:
                e = res[name][mode]
                sp = e["speedup_vs_fastest_peer"]
                bold = "**" if name in OURS else ""
                lines.append(
                    f"| {shape_key} | {bold}{LABELS[name]}{bold} | {e['median_ms']:.2f} "
                    f"[{e['min_ms']:.2f}-{e['max_ms']:.2f}] | "
                    f"{'' if sp is None else f'{sp:.2f}×'} | {e['gflops']:.1f} | "
                    f"{e['pct_of_peak']:.0f}% | {fmt_bytes(e['peak_memory_bytes'])} |"
                )
        lines.append("")
    if report.get("remat"):
        r = report["remat"]
        s = r["shape"]
        lines.append(
            f"**remat** (training step, B={s['B']}, T={s['T']}, I={s['I']}, H={s['H']}): "
            f"peak {fmt_bytes(r['no_remat']['peak_bytes'])} MiB without, "
            f"{fmt_bytes(r['remat']['peak_bytes'])} MiB with remat "
            f"(ratio {r['memory_ratio']:.3f}); {r['no_remat']['time_ms']:.0f} ms vs "
            f"{r['remat']['time_ms']:.0f} ms.\n"
        )
    return "\n".join(lines)


def plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(report["results"])
    names = [n for n in (*OURS, *PEERS) if any(n in report["results"][s] for s in shapes)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=False)
    width = 0.8 / len(names)
    for ax, (mode, title) in zip(
        axes, (("fwd", "forward"), ("fwdbwd", "forward+backward")), strict=True
    ):
        for k, name in enumerate(names):
            vals = [
                report["results"][s][name][mode]["speedup_vs_fastest_peer"]
                if name in report["results"][s]
                else 0.0
                for s in shapes
            ]
            ax.bar([j + k * width for j in range(len(shapes))], vals, width, label=LABELS[name])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(1.25, color="k", lw=0.8, ls="--")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))])
        ax.set_xticklabels(shapes, fontsize=8)
        ax.set_title(f"{title}: speed-up over the fastest peer (higher is better)", fontsize=9)
        ax.set_xlabel("B, T, I, H")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=7)
    m = report["machine"]
    fig.suptitle(
        f"{m['cpu']}, {m['cores']} cores, {report['dtype']}, load {report['load_before']} -> "
        f"{report['load_after']}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = harness.OneLineParser(
        prog="gru-jax bench", description="Time gru_jax against Flax, Equinox and torch GRUs."
    )
    p.add_argument(
        "--shapes", type=harness.parse_shapes, default=None, help=f"default {DEFAULT_SHAPES}"
    )
    p.add_argument("--quick", action="store_true", help=f"tiny shapes ({QUICK_SHAPES}), 3 repeats")
    p.add_argument("--repeats", type=int, default=7, help="interleaved repeats (default 7)")
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per timed sample")
    p.add_argument("--impls", default=",".join((*OURS, *PEERS)), help="comma-separated subset")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--out", default=None, help="output path without suffix (.json/.png/.md)")
    p.add_argument("--no-remat", action="store_true", help="skip the T=16384 remat measurement")
    p.add_argument(
        "--remat-shape",
        type=lambda s: harness.parse_shapes(s)[0],
        default=(16, 16384, 64, 256),
        help="BxTxIxH of the remat memory measurement (default 16x16384x64x256)",
    )
    p.add_argument("--remat-repeats", type=int, default=3)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--torch-rss"]:
        torch_rss_child(*argv[1:4])
        return 0
    args = parser().parse_args(argv)
    if args.repeats < 1 or args.min_time <= 0 or args.remat_repeats < 1:
        print(
            "gru-jax bench: error: --repeats and --remat-repeats must be >= 1 and --min-time > 0; "
            f"got {args.repeats}, {args.remat_repeats}, {args.min_time}",
            file=sys.stderr,
        )
        return 2
    import jax
    import jax.numpy as jnp

    if args.quick:
        args.shapes = args.shapes or harness.parse_shapes(QUICK_SHAPES)
        args.repeats = min(args.repeats, 3)
        args.min_time = min(args.min_time, 0.02)
        args.remat_shape = (2, 256, 4, 8)
        args.remat_repeats = 1
    shapes = args.shapes or harness.parse_shapes(DEFAULT_SHAPES)
    impls = [n for n in args.impls.split(",") if n]
    unknown = sorted(set(impls) - set(LABELS))
    if unknown:
        print(f"gru-jax bench: error: unknown implementations {unknown}", file=sys.stderr)
        return 2
    dtype = jnp.dtype(args.dtype)
    backend = jax.default_backend()
    device = "cuda" if backend == "gpu" else "cpu"
    out = Path(args.out) if args.out else harness.RESULTS / f"{backend}_{args.dtype}"

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    report = {
        **harness.report_header("bench.py", argv),
        "dtype": args.dtype,
        "repeats": args.repeats,
        "min_time_s": args.min_time,
        "flops_formula": "forward 2*B*T*(I+H)*3H; forward+backward 3x that",
        "loss": "mean(ys**2); gradient w.r.t. all parameters and xs",
        "results": {},
        "matmul_peak_samples_gflops": [],
    }
    log(
        f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"backend {backend}, load {report['load_before']}"
    )
    peak_n = 4096 if device == "cuda" else 2048
    peak_fn, peak_flops = matmul_case(dtype if device == "cuda" else jnp.float32, peak_n)
    report["matmul_peak_definition"] = (
        f"median GFLOP/s of a {peak_n}x{peak_n} "
        f"{args.dtype if device == 'cuda' else 'float32'} jnp.dot, timed interleaved with the GRUs"
    )
    for shape in shapes:
        key = "{}, {}, {}, {}".format(*shape)
        log(f"shape (B, T, I, H) = ({key})")
        results, peaks = run_shape(shape, impls, args, dtype, device, peak_fn, peak_flops, log)
        report["results"][key] = results
        report.setdefault("gru_jax_plans", {})[key] = {
            variant: gru_plan(shape, variant == "gru_jax") for variant in OURS
        }
        report["matmul_peak_samples_gflops"] += [round(p, 2) for p in peaks]
        for name, r in results.items():
            f, fb = r["fwd"], r["fwdbwd"]
            log(
                f"  {name:11s} fwd {f['median_ms']:9.2f} ms  fwd+bwd {fb['median_ms']:9.2f} ms  "
                f"({f['speedup_vs_fastest_peer'] or 0:.2f}×, "
                f"{fb['speedup_vs_fastest_peer'] or 0:.2f}×)"
            )
    peak = statistics.median(report["matmul_peak_samples_gflops"])
    report["matmul_peak_gflops"] = peak
    for res in report["results"].values():  # percentages against the run's overall peak
        for entry in res.values():
            for mode in ("fwd", "fwdbwd"):
                entry[mode]["pct_of_peak"] = 100.0 * entry[mode]["gflops"] / peak
    if not args.no_remat:
        log(f"remat: shape (B, T, I, H) = {args.remat_shape}")
        report["remat"] = measure_remat(args, dtype, log)
    report["load_after"] = harness.load_average()
    harness.write_report(out.with_suffix(".json"), report, markdown(report))
    try:
        plot(report, out.with_suffix(".png"))
    except ImportError:
        log("matplotlib missing: no chart")
    log(
        f"wrote {out.with_suffix('.json')}, .md, .png; load {report['load_before']} -> "
        f"{report['load_after']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
