"""What the benchmark scripts share: the timing loop, the machine description and the reports.

A case is a callable that runs one call to completion (:func:`blocking`: a JAX function, then
``jax.block_until_ready``). :func:`interleave` runs each case once (compilation), times a second
call and takes as calls per sample the fewest that last ``min_time`` seconds; then each repeat
times every case once, in an order rotated from repeat to repeat so that background load hits
all of them alike. A sample is the mean over that many back-to-back calls, after a pause that
lets the previous case's thread pools go idle. Reports: ``<out>.json`` and a Markdown table in
``<out>.md`` (also printed). JAX is imported only where it is needed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

K = TypeVar("K", bound=Hashable)
Shape = tuple[int, int, int, int]
Case = Callable[[], Any]
Report = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("jax", "jaxlib", "flax", "equinox", "torch", "numpy")


def parse_shapes(text: str) -> list[Shape]:
    """Shapes ``(B, T, I, H)`` from ``"BxTxIxH,..."``.

    Raises:
      argparse.ArgumentTypeError: an item is not four positive integers joined by ``x``.
    """
    shapes = []
    for item in text.split(","):
        parts = item.lower().split("x")
        if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(
                f"a shape is BxTxIxH, e.g. 64x128x128x256; got {item!r}"
            )
        b, t, i, h = (int(p) for p in parts)
        shapes.append((b, t, i, h))
    return shapes


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr and exit code 2, without the usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


@dataclass
class Timing:
    """A case's calls per sample, first call (s) and samples (s per call: wall, process CPU)."""

    calls: int
    first_call_s: float
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median wall time per call, in seconds."""
        return statistics.median(self.wall)

    def summary(self, digits: int | None = None) -> Report:
        """``median_ms``, ``min_ms``, ``max_ms``; with ``digits``, the rounded ``samples_ms``."""
        ms = [1e3 * s for s in self.wall]
        out: Report = {"median_ms": 1e3 * self.median, "min_ms": min(ms), "max_ms": max(ms)}
        return out if digits is None else out | {"samples_ms": [round(v, digits) for v in ms]}


def blocking(fn: Callable[..., Any], *args: Any) -> Case:
    """``fn(*args)`` as a case: a call that returns once its results are computed."""
    import jax

    def call() -> Any:
        return jax.block_until_ready(fn(*args))

    return call


def calibrate(fn: Case, min_time: float) -> tuple[int, float]:
    """Calls per sample (enough to last ``min_time`` s after a warm-up) and the first call's s."""
    spans = []
    for _ in range(2):
        t0 = time.perf_counter()
        fn()
        spans.append(time.perf_counter() - t0)
    return max(1, math.ceil(min_time / max(spans[1], 1e-6))), spans[0]


def sample(fn: Case, calls: int) -> tuple[float, float]:
    """Wall and process CPU seconds per call, the mean over ``calls`` back-to-back calls."""
    time.sleep(0.02)  # let the previous case's thread pools go idle first
    u0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    wall = time.perf_counter() - t0
    u1 = resource.getrusage(resource.RUSAGE_SELF)
    return wall / calls, (u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime) / calls


def interleave(
    cases: Mapping[K, Case], repeats: int, min_time: float, *, after: Mapping[K, Case] | None = None
) -> dict[K, Timing]:
    """Time every case once per repeat, in an order rotated from repeat to repeat.

    Args:
      cases: the cases by name, each a callable that completes one call.
      repeats: how many samples each case gets.
      min_time: the least seconds one sample lasts.
      after: cases (other names) timed at the end of every repeat, in this order, not rotated.

    Returns:
      Each case's :class:`Timing`: those of ``cases`` first, then those of ``after``.
    """
    fns = {**cases, **(after or {})}
    timings = {key: Timing(*calibrate(fn, min_time)) for key, fn in fns.items()}
    keys = list(cases)
    for rep in range(repeats):
        shift = rep % len(keys) if keys else 0
        for key in keys[shift:] + keys[:shift] + list(after or {}):
            wall, cpu = sample(fns[key], timings[key].calls)
            timings[key].wall.append(wall)
            timings[key].cpu.append(cpu)
    return timings


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded; ``None`` where the OS gives none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _proc_field(path: str, name: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), None)


def machine_info(packages: Sequence[str] = PACKAGES) -> Report:
    """The machine and software a report was measured on.

    Returns:
      ``cpu`` (the model), ``cores``, ``memory_gib``, ``platform``, ``python``, ``jax_backend``,
      ``jax_devices``, ``device_kind`` (of the first device) and ``versions``: the version of
      each of ``packages``, ``None`` where it is not installed.
    """
    import jax

    versions = {}
    for name in packages:
        try:
            versions[name] = getattr(__import__(name), "__version__", "?")
        except ImportError:
            versions[name] = None
    mem_kib = (_proc_field("/proc/meminfo", "MemTotal") or "").split()[:1]
    return {
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem_kib[0]) / 2**20, 1) if mem_kib else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "versions": versions,
    }


def git_state() -> Report:
    """The ``commit`` (short; ``None`` without git) and the ``uncommitted`` ``gru_jax`` files."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout
        except OSError:
            return None

    commit, changed = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "gru_jax")
    return {"commit": commit and commit.strip(), "uncommitted": (changed or "").splitlines()}


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """``python benchmarks/<script> <argv>`` (``argv`` defaults to this process's arguments)."""
    return " ".join(["python", f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])


def report_header(script: str, argv: Sequence[str] | None = None) -> Report:
    """A report's first keys: ``command``, ``machine`` and ``load_before``."""
    header = {"command": command_line(script, argv), "machine": machine_info()}
    return header | {"load_before": load_average()}


def write_report(path: Path, report: Mapping[str, Any], table: str | None = None) -> None:
    """Write ``report`` to ``path`` (JSON), and ``table`` beside it (``.md``) and to stdout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    if table is not None:
        path.with_suffix(".md").write_text(table)
        print(table)


def suite_parser(description: str, shapes: str, out: Path) -> argparse.ArgumentParser:
    """A suite's options: ``--quick``, ``--shapes``, ``--repeats``, ``--min-time``, ``--out``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny shapes, a smoke run")
    p.add_argument("--shapes", default=shapes, help="BxTxIxH,... (default: bench.py's)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per timed sample")
    p.add_argument("--out", type=Path, default=out)
    return p


def run_suite(
    prog: str,
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace, Shape, bool], Report],
    markdown: Callable[[Report], str],
    *,
    quick_shapes: str,
    **extra: Any,
) -> int:
    """Run script ``prog`` (no ``.py``): ``measure(args, shape, reset_after)`` at each shape
    (``quick_shapes`` with ``--quick``) and both variants; write the report (with the keys
    ``extra``) and its ``markdown``. Returns the exit status: 0, or 2 after one line
    ``<prog>: error: ...`` for a bad ``--repeats`` or ``--shapes``."""
    try:
        if args.repeats < 1:
            raise argparse.ArgumentTypeError("--repeats must be >= 1")
        shapes = parse_shapes(args.shapes)
    except argparse.ArgumentTypeError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report = report_header(f"{prog}.py") | {"repeats": args.repeats, **extra, "results": {}}
    report["commit"] = git_state()["commit"]
    for shape in parse_shapes(quick_shapes) if args.quick else shapes:
        for reset_after in (True, False):
            key = f"{'x'.join(map(str, shape))} reset_after={reset_after}"
            report["results"][key] = measure(args, shape, reset_after)
    report["load_after"] = load_average()
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    write_report(args.out, report, markdown(report))
    print(f"results: {args.out}, {args.out.with_suffix('.md')}")
    return 0


def compare(cases: Mapping[str, Case], args: argparse.Namespace, base: str, title: str) -> Report:
    """Time ``cases`` interleaved (``args.repeats``, ``args.min_time``): each one's summary and
    its median over case ``base``'s (``ratio_to_<base>``), also printed on a line ``title: ...``.
    """
    times = interleave(cases, args.repeats, args.min_time)
    label, ref = f"ratio_to_{base}", times[base].median
    out = {name: {**t.summary(), label: t.median / ref} for name, t in times.items()}
    cells = (f"{n} {v['median_ms']:.2f} ms ({v[label]:.3f}x)" for n, v in out.items())
    print(f"{title}: " + ", ".join(cells), flush=True)
    return out


def suite_table(
    report: Report,
    what: str,
    heads: Sequence[str],
    cases: Sequence[str],
    rows: Iterable[tuple[Sequence[str], Report]],
    cell: Callable[[Report], str],
) -> str:
    """A suite's Markdown: a caption (command, commit, load, ``what``), then a table with the
    columns ``heads`` (a row's ``labels``) and ``cases`` (``cell(stats[case])``)."""
    lines = [
        f"`{report['command']}` (commit {report.get('commit')}, load "
        f"{report['load_before']} before, {report['load_after']} after); {what}",
        "",
        "| " + " | ".join([*heads, *cases]) + " |",
        "|" + "---|" * (len(heads) + len(cases)),
    ]
    for labels, stats in rows:
        lines.append("| " + " | ".join([*labels, *(cell(stats[c]) for c in cases)]) + " |")
    return "\n".join(lines) + "\n"
