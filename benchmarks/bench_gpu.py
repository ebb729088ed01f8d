"""The GRU on one GPU: ``gru_jax`` (``impl="xla"`` and the fused Pallas kernel) against Flax and
cuDNN, with and without resets, in one process.

On a GPU machine (jax with CUDA, flax, torch with cuDNN), from the repository root; meant to end
within 6 minutes on one H100, compiles included::

    PYTHONPATH=. python benchmarks/bench_gpu.py --out benchmarks/results/gpu_h100

The dry run: every column at tiny shapes on CPU (torch on CPU, the Pallas kernel interpreted),
into a fresh temporary folder; it exits non-zero if a ``gru_jax`` column fails (CI runs it)::

    python benchmarks/bench_gpu.py --dry-run

What is timed, for inputs ``xs (B, T, I)`` and hidden size ``H``, at the shapes ``SHAPES``, in
float32 and bfloat16 (parameters and inputs in that dtype): forward (``xs -> ys``) and
forward+backward (the gradient of ``mean(ys²)`` with respect to the parameters and ``xs``) of

* ``xla``: ``gru_jax.gru(params, xs, impl="xla")`` (reset-after GRU, as cuDNN and Flax);
* ``pallas``: ``gru_jax.gru(params, xs, impl="pallas")``, the fused Pallas kernel;
* ``flax``: ``flax.linen.RNN(flax.linen.GRUCell(features=H))``, jitted apply and its gradient;
* ``torch``: ``torch.nn.GRU(I, H, batch_first=True)`` on cuda (cuDNN) where
  ``torch.cuda.is_available()``, else on CPU;
* ``pallas_resets``: ``pallas`` with ``resets (B, T)``, random at rate 0.05 (fixed seed);
* ``torch_resets``: torch's way to reset with cuDNN (TorchRL's): ``nn.GRU`` over the pieces
  between the steps where any row resets, a Python loop, the state of the rows that reset
  zeroed before each piece (``h = h * (1 - reset_rows)``); its backward for forward+backward.

JAX functions are compiled once before timing (``lower().compile()``, reported separately, as is
every column's first call). Each row's columns are then timed interleaved by ``harness.py``
(``--repeats`` samples of at least ``--cell-time / --repeats`` s each); a cell reports the
median and the min-max in ms. Ratios are times divided (``pallas/xla`` is pallas's median over
xla's, so below 1 means pallas is faster), from medians of the same process. A column that fails
(a kernel that does not compile, say) records its error in its cell and the run goes on; after
``--budget-s`` seconds the remaining cells are skipped so that the run ends in time. Reports:
``DIR/gpu_results.json`` (written after every row) and ``DIR/gpu_results.md``, with the GPU's
name, the jax, jaxlib, flax, torch and cuDNN versions and the aims below, each met or missed.

The aims (issue 24), for ``impl="pallas"``:

* forward+backward float32 at (64, 128, 128, 256) and (8, 4096, 128, 128): at least 3x as fast as
  ``impl="xla"`` and 5x as fast as Flax ``nn.RNN``;
* within 1.5x of cuDNN ``nn.GRU`` without resets (checked at every row);
* with 5% resets at most 1.1x its own time without resets (checked at every row).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from benchmarks import harness
except ImportError:  # run as a script: python benchmarks/bench_gpu.py (its folder is on sys.path)
    import harness

SHAPES: tuple[harness.Shape, ...] = (
    (1, 512, 32, 128),
    (64, 128, 128, 256),
    (32, 256, 64, 512),
    (8, 4096, 128, 128),
    (256, 64, 256, 256),
)
DRY_SHAPES: tuple[harness.Shape, ...] = ((2, 8, 3, 4), (3, 5, 4, 8))
DTYPES = ("float32", "bfloat16")
MODES = ("fwd", "fwdbwd")
MODE_NAMES = {"fwd": "forward", "fwdbwd": "forward+backward"}
COLUMNS = ("xla", "pallas", "flax", "torch", "pallas_resets", "torch_resets")
OURS = ("xla", "pallas", "pallas_resets")
LABELS = {
    "xla": 'gru_jax "xla"',
    "pallas": 'gru_jax "pallas"',
    "flax": "Flax RNN(GRUCell)",
    "torch": "torch nn.GRU",
    "pallas_resets": '"pallas" + resets',
    "torch_resets": "nn.GRU + resets",
}
RATIOS = {  # name: (numerator, denominator), both medians
    "pallas/xla": ("pallas", "xla"),
    "pallas/flax": ("pallas", "flax"),
    "pallas/torch": ("pallas", "torch"),
    "pallas_resets/pallas": ("pallas_resets", "pallas"),
    "pallas_resets/torch_resets": ("pallas_resets", "torch_resets"),
}
CHECKS = ("pallas_vs_xla", "pallas_resets_vs_xla_resets")
RESET_RATE = 0.05
SEED = 0
AIM_SHAPES: tuple[harness.Shape, ...] = ((64, 128, 128, 256), (8, 4096, 128, 128))
FILE = "gpu_results.json"


@dataclass(frozen=True)
class Aim:
    """An aim of the issue: ``ratio`` (or its inverse, a speed-up) against ``bound``."""

    text: str
    ratio: str
    speedup: bool  # compare 1 / ratio >= bound instead of ratio <= bound
    bound: float
    everywhere: bool  # every row, or only float32 forward+backward at AIM_SHAPES

    def covers(self, row: dict) -> bool:
        narrow = row["dtype"] == "float32" and row["mode"] == "fwdbwd"
        return self.everywhere or (narrow and tuple(row["shape"]) in AIM_SHAPES)

    def met(self, value: float) -> bool:
        return value >= self.bound if self.speedup else value <= self.bound


AIMS = (
    Aim('fwd+bwd float32: "pallas" at least 3x as fast as "xla"', "pallas/xla", True, 3.0, False),
    Aim('fwd+bwd float32: "pallas" at least 5x as fast as Flax', "pallas/flax", True, 5.0, False),
    Aim('"pallas" within 1.5x of cuDNN nn.GRU (no resets)', "pallas/torch", False, 1.5, True),
    Aim(
        '"pallas" with 5% resets at most 1.1x its own time',
        "pallas_resets/pallas",
        False,
        1.1,
        True,
    ),
)


@dataclass(frozen=True)
class Data:
    """One shape and dtype's inputs (NumPy float32) and resets, and torch's device."""

    shape: harness.Shape
    dtype: str
    xs: Any
    resets: Any
    device: str


def make_data(shape: harness.Shape, dtype: str, device: str, dry_run: bool) -> Data:
    """Inputs ~ N(0, 1) and resets at ``RESET_RATE`` (seeded); a dry run's tiny sequences also
    get one reset in the middle of the first row, so that the torch loop has two pieces."""
    import numpy as np

    b, t, i, _ = shape
    rng = np.random.default_rng(SEED)
    xs = rng.standard_normal((b, t, i), dtype=np.float32)
    resets = rng.random((b, t)) < RESET_RATE
    if dry_run:
        resets[0, t // 2] = True
    return Data(shape, dtype, xs, resets, device)


def error_text(e: BaseException, limit: int = 2000) -> str:
    """``Type: message``, cut to ``limit`` characters (Triton's errors run to pages)."""
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= limit else text[:limit] + " ..."


def first_call(case: harness.Case, info: dict[str, Any]) -> tuple[harness.Case, dict, Any]:
    """Call ``case`` once (its first call is reported, not timed); the case, info and output."""
    t0 = time.perf_counter()
    out = case()
    info["first_call_s"] = round(time.perf_counter() - t0, 4)
    return case, info, out


# ----------------------------------------------------------------------------- the columns


def jax_cell(apply: Callable[..., Any], args: tuple, mode: str) -> tuple[harness.Case, dict, Any]:
    """``apply(params, xs, *rest) -> ys`` compiled for ``mode`` (its gradient with respect to
    ``params`` and ``xs`` for ``fwdbwd``); ``compile_s`` covers trace, lowering and compile."""
    import jax
    import jax.numpy as jnp

    fn = apply
    if mode == "fwdbwd":

        def loss(*a: Any) -> Any:
            return jnp.mean(jnp.square(apply(*a).astype(jnp.float32)))

        fn = jax.grad(loss, argnums=(0, 1))
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    info = {"compile_s": round(time.perf_counter() - t0, 3)}
    return first_call(harness.blocking(compiled, *args), info)


def gru_jax_args(d: Data, resets: bool) -> tuple:
    """``gru_jax`` parameters (reset-after, seeded), the inputs and, with ``resets``, the resets."""
    import jax
    import jax.numpy as jnp

    import gru_jax

    _, _, i, h = d.shape
    dtype = jnp.dtype(d.dtype)
    params = gru_jax.init_gru(jax.random.key(SEED), i, h, reset_after=True, dtype=dtype)
    args = (params, jnp.asarray(d.xs, dtype))
    return (*args, jnp.asarray(d.resets)) if resets else args


def gru_jax_apply(impl: str, resets: bool) -> Callable[..., Any]:
    import gru_jax

    if resets:
        return lambda p, x, r: gru_jax.gru(p, x, resets=r, impl=impl)[0]
    return lambda p, x: gru_jax.gru(p, x, impl=impl)[0]


def flax_cell(mode: str, d: Data) -> tuple[harness.Case, dict, Any]:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    dtype, h = jnp.dtype(d.dtype), d.shape[3]
    model = nn.RNN(nn.GRUCell(features=h, dtype=dtype, param_dtype=dtype))
    xs = jnp.asarray(d.xs, dtype)
    # Initialised in float32 and cast: the orthogonal initializer has no bfloat16 QR on CPU.
    params = nn.RNN(nn.GRUCell(features=h)).init(jax.random.key(SEED), d.xs)["params"]
    params = jax.tree.map(lambda a: a.astype(dtype), params)
    return jax_cell(lambda p, x: model.apply({"params": p}, x), (params, xs), mode)


def reset_runner(model: Any, resets: Any) -> Callable[[Any], Any]:
    """``x (B, T, I) -> ys (B, T, H)``: ``model`` (an ``nn.GRU``, ``batch_first``) over the pieces
    between the steps where any row of ``resets (B, T)`` resets, zeroing the state of the rows
    that reset before each piece (as TorchRL runs cuDNN with resets)."""
    import torch

    p = next(model.parameters())
    b, t = resets.shape
    starts = [s for s in range(1, t) if resets[:, s].any()]
    keep = {
        s: torch.tensor(1.0 - resets[:, s], device=p.device, dtype=p.dtype).view(1, b, 1)
        for s in starts
    }
    bounds = [0, *starts, t]

    def run(x: Any) -> Any:
        h, outs = None, []
        for start, end in itertools.pairwise(bounds):
            if start:
                h = h * keep[start]
            y, h = model(x[:, start:end], h)
            outs.append(y)
        return torch.cat(outs, dim=1)

    return run


def torch_cell(column: str, mode: str, d: Data) -> tuple[harness.Case, dict, Any]:
    import torch

    _, _, i, h = d.shape
    dtype = getattr(torch, d.dtype)
    torch.backends.cudnn.enabled = True
    torch.manual_seed(SEED)
    model = torch.nn.GRU(i, h, batch_first=True).to(device=d.device, dtype=dtype)
    xs = torch.from_numpy(d.xs).to(device=d.device, dtype=dtype)
    run = (lambda x: model(x)[0]) if column == "torch" else reset_runner(model, d.resets)
    sync = torch.cuda.synchronize if d.device == "cuda" else (lambda: None)
    xg = xs.detach().clone().requires_grad_(True)
    wrt = [*model.parameters(), xg]

    def case() -> Any:
        if mode == "fwd":
            with torch.no_grad():
                out = run(xs)
        else:  # the gradient of the loss with respect to the parameters and the inputs
            out = torch.autograd.grad(run(xg).float().square().mean(), wrt)
        sync()
        return out

    try:
        return first_call(case, {"device": d.device})
    except Exception as e:
        if d.device == "cpu" and d.dtype == "bfloat16":
            raise RuntimeError(f"unsupported on cpu: {error_text(e, 300)}") from e
        raise


def build(column: str, mode: str, d: Data) -> tuple[harness.Case, dict, Any]:
    """The case of one cell, its info (``compile_s``, ``first_call_s``) and first output."""
    if column in OURS:
        resets = column == "pallas_resets"
        impl = "xla" if column == "xla" else "pallas"
        return jax_cell(gru_jax_apply(impl, resets), gru_jax_args(d, resets), mode)
    if column == "flax":
        return flax_cell(mode, d)
    return torch_cell(column, mode, d)


def checks(d: Data, outs: dict[str, Any]) -> dict[str, float | str]:
    """Forward outputs of ``pallas`` against ``xla`` (same parameters): max abs differences."""
    import jax
    import numpy as np

    def max_abs_diff(a: Any, b: Any) -> float:
        return float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))

    found: dict[str, float | str] = {}
    if "xla" in outs and "pallas" in outs:
        found["pallas_vs_xla"] = max_abs_diff(outs["pallas"], outs["xla"])
    if "pallas_resets" in outs:
        try:
            ref = jax.jit(gru_jax_apply("xla", True))(*gru_jax_args(d, True))
            found["pallas_resets_vs_xla_resets"] = max_abs_diff(outs["pallas_resets"], ref)
        except Exception as e:
            found["pallas_resets_vs_xla_resets"] = error_text(e, 300)
    return found


# ----------------------------------------------------------------------------- a row


def time_cells(cases: dict[str, harness.Case], cells: dict, args: argparse.Namespace) -> None:
    """Time ``cases`` interleaved; if that fails, each alone, so one failure loses only its own."""
    min_time = args.cell_time / args.repeats
    try:
        timings = harness.interleave(cases, args.repeats, min_time)
    except Exception:
        timings = {}
        for name, case in cases.items():
            try:
                timings |= harness.interleave({name: case}, args.repeats, min_time)
            except Exception as e:
                cells[name]["error"] = error_text(e)
    for name, timing in timings.items():
        cells[name] |= timing.summary(digits=4) | {"calls_per_sample": timing.calls}


def ratios(cells: dict[str, dict]) -> dict[str, float | None]:
    med = {c: cells[c].get("median_ms") for c in COLUMNS}
    return {n: med[a] / med[b] if med[a] and med[b] else None for n, (a, b) in RATIOS.items()}


def run_row(d: Data, mode: str, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """Build, check and time every column at one shape, dtype and mode."""
    b, t, i, h = d.shape
    label = f"{b}x{t}x{i}x{h} {d.dtype} {mode}"
    cells: dict[str, dict] = {}
    cases, outs = {}, {}
    for column in COLUMNS:
        if time.perf_counter() > deadline:
            cells[column] = {"error": f"skipped: over the time budget (--budget-s {args.budget_s})"}
            continue
        try:
            cases[column], cells[column], outs[column] = build(column, mode, d)
            info = cells[column]
            took = f"compile {info['compile_s']:.2f} s, " if "compile_s" in info else ""
            log(f"  {label}: {column} ready ({took}first call {info['first_call_s']:.3f} s)")
        except Exception as e:
            cells[column] = {"error": error_text(e)}
            log(f"  {label}: {column} FAILED: {error_text(e, 200)}")
    row: dict[str, Any] = {"shape": list(d.shape), "dtype": d.dtype, "mode": mode}
    row["check"] = checks(d, outs) if mode == "fwd" else {}
    time_cells(cases, cells, args)
    row |= {"cells": cells, "ratios": ratios(cells)}
    row["reset_fraction"] = float(d.resets.mean())
    row["torch_reset_pieces"] = 1 + sum(bool(d.resets[:, s].any()) for s in range(1, t))
    times = ", ".join(f"{c} {fmt_ms(cells[c])}" for c in COLUMNS)
    log(f"{label}: {times}")
    return row


# ----------------------------------------------------------------------------- the report


def fmt_ms(cell: dict) -> str:
    if "median_ms" in cell:
        return f"{cell['median_ms']:.3f} [{cell['min_ms']:.3f}-{cell['max_ms']:.3f}]"
    return "error: " + cell.get("error", "?").splitlines()[0][:60].replace("|", "/")


def fmt_x(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if value < 0.01 else f"{value:.2f}"
    return "n/a" if value is None else str(value).splitlines()[0][:40].replace("|", "/")


def row_label(row: dict) -> str:
    return f"({', '.join(map(str, row['shape']))}) {row['dtype']} {MODE_NAMES[row['mode']]}"


def evaluate_aims(rows: list[dict]) -> list[dict[str, Any]]:
    """Per aim, its value at each row it covers, met or missed, and a verdict."""
    out = []
    for aim in AIMS:
        found = []
        for row in filter(aim.covers, rows):
            ratio = row["ratios"].get(aim.ratio)
            value = None if ratio is None else (1 / ratio if aim.speedup else ratio)
            met = None if value is None else aim.met(value)
            found.append({"row": row_label(row), "value": value, "met": met})
        mets = [f["met"] for f in found]
        verdict = "missed" if False in mets else "unknown" if None in mets else "met"
        verdict = verdict if mets else "not measured (no such row in this run)"
        out.append(vars(aim) | {"verdict": verdict, "rows": found})
    return out


def aims_markdown(aims: list[dict[str, Any]], dry_run: bool) -> list[str]:
    lines = ["## Aims", ""]
    if dry_run:
        lines += ["(A dry run on CPU at tiny shapes: these verdicts mean nothing.)", ""]
    for aim in aims:
        num, den = RATIOS[aim["ratio"]]
        what = (
            f"{den}/{num} >= {aim['bound']}"
            if aim["speedup"]
            else f"{aim['ratio']} <= {aim['bound']}"
        )
        measured = [r for r in aim["rows"] if r["met"] is not None]
        missed = [r for r in measured if not r["met"]]
        lines.append(
            f"- **{aim['verdict']}**: {aim['text']} ({what}; met at "
            f"{len(measured) - len(missed)} of {len(aim['rows'])} rows)"
        )
        rows = aim["rows"] if len(aim["rows"]) <= 4 else [r for r in aim["rows"] if not r["met"]]
        for r in rows:  # every row of a narrow aim; of a wide one, those not met
            state = {True: "met", False: "missed", None: "not measured"}[r["met"]]
            value = "n/a" if r["value"] is None else f"{r['value']:.2f}"
            lines.append(f"  - {r['row']}: {value} ({state})")
    return lines


def table(report: dict, cases: list[str], rows: list, cell: Callable, what: str = "") -> str:
    """``harness.suite_table`` over the rows' shape, dtype and mode; its caption only with
    ``what``."""
    text = harness.suite_table(report, what, ["B, T, I, H", "dtype", "mode"], cases, rows, cell)
    return text if what else text.split("\n\n", 1)[1]


def compile_cell(cell: dict) -> str:
    if "first_call_s" not in cell:
        return "-"
    first = f"{cell['first_call_s']:.2f}"
    return f"{cell['compile_s']:.2f} + {first}" if "compile_s" in cell else first


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: versions, times, ratios and checks, compile times, aims, errors."""
    v, rows, heads = report["versions"], report["rows"], [LABELS[c] for c in COLUMNS]
    keys = [[", ".join(map(str, r["shape"])), r["dtype"], r["mode"]] for r in rows]
    cells = [
        (k, {LABELS[c]: r["cells"][c] for c in COLUMNS}) for k, r in zip(keys, rows, strict=True)
    ]
    what = f"ms, median [min-max] of {report['settings']['repeats']} samples"
    checks = [
        (k, r["ratios"] | {c: r["check"].get(c) for c in CHECKS})
        for k, r in zip(keys, rows, strict=True)
    ]
    lines = [
        "# GRU on GPU: gru_jax against Flax and cuDNN"
        + (" (dry run, CPU)" if report["dry_run"] else ""),
        "",
        f"Device: {report['device']}; torch on {report['torch_device']}. Versions: jax "
        f"{v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, torch {v['torch']}, cuDNN "
        f"{v['cudnn_torch']} (torch), {v['cudnn_jax']} (jax). Resets: rate {RESET_RATE}, seed "
        f"{SEED}. Run took {report.get('wall_seconds')} s.",
        "",
        "## Times",
        "",
        table(report, heads, cells, fmt_ms, what),
        "## Ratios and checks",
        "",
        "Times divided, medians of this process (below 1: the first is faster); the checks are "
        "the max abs difference of the forward outputs (same parameters).",
        "",
        table(report, [*RATIOS, *CHECKS], checks, fmt_x),
        "## Compile and first call (s)",
        "",
        "JAX: trace+lower+compile + first call; torch: first call.",
        "",
        table(report, heads, cells, compile_cell),
        *aims_markdown(report["aims"], report["dry_run"]),
    ]
    errors = [
        f"- {row_label(r)}, {c}: {r['cells'][c]['error'].splitlines()[0][:300]}"
        for r in rows
        for c in COLUMNS
        if "error" in r["cells"][c]
    ]
    if errors:
        lines += ["", "## Errors", "", *errors]
    return "\n".join(lines) + "\n"


def versions(torch_device: str) -> dict[str, Any]:
    """jax, jaxlib, flax, torch (``harness.machine_info``'s), both cuDNN versions and, on cuda,
    torch's name of the GPU."""
    found: dict[str, Any] = harness.machine_info(("jax", "jaxlib", "flax", "torch"))["versions"]
    found["cudnn_torch"] = found["cudnn_jax"] = None
    if torch_device == "cuda":
        import torch

        found["cudnn_torch"] = torch.backends.cudnn.version()
        found["torch_gpu"] = torch.cuda.get_device_name(0)
    try:
        from jax._src.lib import cuda_versions

        found["cudnn_jax"] = cuda_versions.cudnn_get_version() if cuda_versions else None
    except Exception:
        pass
    return found


def torch_device(dry_run: bool) -> str:
    try:
        import torch
    except ImportError:  # the torch columns will say so
        return "cpu"
    return "cuda" if not dry_run and torch.cuda.is_available() else "cpu"


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = harness.OneLineParser(prog="bench_gpu.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="folder (default: a fresh temporary)")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes on CPU, every column")
    p.add_argument("--shapes", type=harness.parse_shapes, default=None, help="BxTxIxH,...")
    p.add_argument("--repeats", type=int, default=5, help="samples per cell (default 5)")
    p.add_argument("--cell-time", type=float, default=0.5, help="seconds of timing per cell")
    p.add_argument("--budget-s", type=float, default=320.0, help="skip cells after this long")
    return p


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.repeats < 1 or args.cell_time <= 0 or args.budget_s <= 0:
        print(
            "bench_gpu.py: error: --repeats, --cell-time, --budget-s must be > 0", file=sys.stderr
        )
        return 2
    if str(harness.ROOT) not in sys.path:  # gru_jax from this checkout, installed or not
        sys.path.insert(0, str(harness.ROOT))
    import jax

    if args.dry_run:
        jax.config.update("jax_platforms", "cpu")
        args.repeats, args.cell_time = min(args.repeats, 2), min(args.cell_time, 0.01)
    elif jax.default_backend() != "gpu":
        backend = jax.default_backend()
        print(f"bench_gpu.py: error: JAX has no GPU ({backend}); try --dry-run", file=sys.stderr)
        return 2
    shapes = args.shapes or (DRY_SHAPES if args.dry_run else SHAPES)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    path = out / FILE
    log(f"bench_gpu: writing {path} and {path.with_suffix('.md')}")
    device = torch_device(args.dry_run)
    report: dict[str, Any] = harness.report_header("bench_gpu.py", argv)
    report |= {
        "commit": harness.git_state()["commit"],
        "dry_run": args.dry_run,
        "device": report["machine"]["device_kind"],
        "torch_device": device,
        "versions": versions(device),
        "settings": {"repeats": args.repeats, "cell_time_s": args.cell_time}
        | {"min_time_s": args.cell_time / args.repeats, "budget_s": args.budget_s}
        | {"reset_rate": RESET_RATE, "seed": SEED, "loss": "mean(ys**2) in float32"},
        "rows": [],
    }
    log(f"device {report['device']}, torch on {device}, versions {report['versions']}")
    deadline = t_start + args.budget_s
    for dtype in DTYPES:
        for shape in shapes:
            data = make_data(shape, dtype, device, args.dry_run)
            for mode in MODES:
                report["rows"].append(run_row(data, mode, args, deadline))
                report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
                harness.write_report(path, report)
    report["aims"] = evaluate_aims(report["rows"])
    report["load_after"] = harness.load_average()
    report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    harness.write_report(path, report, markdown(report))
    failed = [
        f"{row_label(r)} {c}" for r in report["rows"] for c in OURS if "error" in r["cells"][c]
    ]
    log(f"bench_gpu: {report['wall_seconds']} s; wrote {path} and {path.with_suffix('.md')}")
    if failed:
        print(f"bench_gpu.py: {len(failed)} gru_jax cells failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
