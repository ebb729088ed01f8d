"""How long a memory recurrent PPO learns: ``ppo_memory`` over MemoryChain's ``memory_length``.

    python benchmarks/ppo_sweep.py                  # 50, 100, 200, 400, 800; seeds 0 and 1
    python benchmarks/ppo_sweep.py --keep --memory-lengths 100,200 --set train.steps=600
    python benchmarks/ppo_sweep.py --replot         # redraw the figure and table from the JSON

For each memory length ``M`` (ascending) and seed ``S``, one run of the command

    gru-jax train configs/ppo_memory.yaml --workdir RUNS/mM_sS \\
        --set data.memory_length=M --set data.rollout_length=M+1 --set seed=S

(every other setting is the config's: 300 training steps of 32 environments, one whole episode
of each per rollout; ``--set KEY=VALUE`` adds overrides to every run of the call), then
``gru-jax export --streaming`` of it and ``examples/rl_policy.py``'s ``play``: the greedy
success rate of the exported policy on ``--episodes`` new episodes of ``--eval-seed``, played
with jax and gymnax alone. The runs go one after the other, never two at once. The call stops
after a length where no seed reaches ``--threshold``, or before a length whose runs would take
the training time of the whole report past ``--budget-s`` (estimated from the last length's
runs, scaled by ``M``).

Reports: ``<out>.json`` (every command, its wall time, the success rates, the machine) and
``<out>.md`` (one table per set of overrides); the figure (``--plot``): success against ``M``,
one marker per seed. ``--keep`` adds to an existing report instead of replacing it (runs with
the same length, seed and overrides are reused, not run again).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks import harness
except ImportError:  # run as a script (its folder is on sys.path)
    import harness  # type: ignore[no-redef]

ROOT = harness.ROOT
CONFIG = "configs/ppo_memory.yaml"
OUT = harness.RESULTS / "ppo_memory_sweep"
PLOT = ROOT / "docs" / "images" / "ppo_memory_sweep.png"
Run = dict[str, Any]


def parse_ints(text: str) -> list[int]:
    """``"50,100"`` -> ``[50, 100]``, positive integers."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a list of integers, e.g. 50,100; got {text!r}") from None
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"non-negative integers expected; got {text!r}")
    return values


def gru_jax_command() -> list[str]:
    """The ``gru-jax`` beside this interpreter, or ``python -m gru_jax.cli``."""
    exe = Path(sys.executable).with_name("gru-jax")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gru_jax.cli"]


def shown(args: list[str]) -> str:
    """A command as a user types it (``gru-jax`` for the executable's path)."""
    exe = gru_jax_command()
    return " ".join(["gru-jax", *args[len(exe) :]] if args[: len(exe)] == exe else args)


def load_play() -> Any:
    """``play(policy_file, episodes, seed, memory_length)`` of ``examples/rl_policy.py``."""
    spec = importlib.util.spec_from_file_location("rl_policy", ROOT / "examples/rl_policy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.play


def label(sets: list[str]) -> str:
    """What a group of runs changed besides the memory length and the seed."""
    return " ".join(f"--set {s}" for s in sets) if sets else "the config's settings"


def one_run(m: int, seed: int, a: argparse.Namespace, play: Any) -> Run:
    """Train, export and play one ``(memory_length, seed)`` with the call's overrides."""
    slug = "".join(f"_{s.replace('=', '-')}" for s in a.set)
    workdir = a.runs / f"m{m}_s{seed}{slug}"
    sets = [f"data.memory_length={m}", f"data.rollout_length={m + 1}", f"seed={seed}", *a.set]
    flags = [w for s in sets for w in ("--set", s)]
    exe = gru_jax_command()
    train = [*exe, "train", CONFIG, "--workdir", str(workdir), *flags]
    policy = workdir / "policy.jax"
    export = [*exe, "export", CONFIG, "--workdir", str(workdir), "--streaming"]
    export += ["--out", str(policy), *flags]
    shutil.rmtree(workdir, ignore_errors=True)
    run: Run = {"memory_length": m, "seed": seed, "sets": list(a.set)}
    run["load_before"] = harness.load_average()
    t0 = time.perf_counter()
    done = subprocess.run(train, cwd=ROOT, capture_output=True, text=True)
    run["train_wall_s"] = round(time.perf_counter() - t0, 1)
    run["load_after"] = harness.load_average()
    run["train_command"] = shown(train)
    if done.returncode != 0:
        raise SystemExit(f"ppo_sweep.py: error: {shown(train)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads((workdir / "summary.json").read_text())
    run["train_loop_s"] = round(summary["wall_seconds"], 1)
    run["train_eval_success"] = summary["value"]
    subprocess.run(export, cwd=ROOT, check=True, capture_output=True, text=True)
    run["export_command"] = shown(export)
    t0 = time.perf_counter()
    rate, _ = play(str(policy), a.episodes, a.eval_seed, m)
    run["play_s"] = round(time.perf_counter() - t0, 1)
    run["play_command"] = (
        f"python examples/rl_policy.py {policy} --episodes {a.episodes} "
        f"--seed {a.eval_seed} --memory-length {m}"
    )
    run["success"] = rate
    print(
        f"memory_length {m} seed {seed} ({label(a.set)}): success {rate:.3f} "
        f"(training's own evaluation {summary['value']:.3f}), {run['train_wall_s']} s "
        f"(loop {run['train_loop_s']} s), load {run['load_before']}",
        flush=True,
    )
    return run


def sweep(a: argparse.Namespace, report: dict[str, Any], call: dict[str, Any]) -> None:
    """Run the lengths in order into ``report["runs"]``, the JSON written after every run."""
    play = load_play()
    done = {(r["memory_length"], r["seed"], tuple(r["sets"])): r for r in report["runs"]}
    spent = sum(r["train_wall_s"] for r in report["runs"])
    last: tuple[int, float] | None = None
    for m in sorted(a.memory_lengths):
        todo = [s for s in a.seeds if (m, s, tuple(a.set)) not in done]
        if last is not None and todo:
            estimate = last[1] * m / last[0] * len(todo)
            if spent + estimate > a.budget_s:
                call["stopped"] = (
                    f"before memory_length {m}: {spent:.0f} s of training in the report, "
                    f"its runs estimated at {estimate:.0f} s, budget {a.budget_s:.0f} s"
                )
                return
        rows = []
        for seed in a.seeds:
            run = done.get((m, seed, tuple(a.set)))
            if run is None:
                run = one_run(m, seed, a, play)
                spent += run["train_wall_s"]
                report["runs"].append(run)
                harness.write_report(a.out.with_suffix(".json"), report)
            rows.append(run)
        last = (m, statistics.fmean(r["train_wall_s"] for r in rows))
        if not any(r["success"] >= a.threshold for r in rows):
            call["stopped"] = f"after memory_length {m}: no seed reached {a.threshold}"
            return
    call["stopped"] = "after the last memory length"


def groups(report: dict[str, Any]) -> dict[tuple[str, ...], list[Run]]:
    """The runs by their overrides, in the order they were first made."""
    out: dict[tuple[str, ...], list[Run]] = {}
    for r in report["runs"]:
        out.setdefault(tuple(r["sets"]), []).append(r)
    return out


def largest_solved(runs: list[Run], seeds: list[int], threshold: float) -> int | None:
    """The largest memory length at which every seed reached ``threshold``."""
    by_m: dict[int, dict[int, float]] = {}
    for r in runs:
        by_m.setdefault(r["memory_length"], {})[r["seed"]] = r["success"]
    ok = [m for m, v in by_m.items() if all(v.get(s, 0.0) >= threshold for s in seeds)]
    return max(ok) if ok else None


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: how it was made, then one table per group of overrides."""
    seeds, threshold, machine = report["seeds"], report["threshold"], report["machine"]
    lines = [
        "# ppo_memory: greedy success against MemoryChain's memory_length",
        "",
        f"{machine['cpu']}, {machine['cores']} cores, {machine['jax_backend']}, "
        f"jax {machine['versions']['jax']}, flax {machine['versions']['flax']}, "
        f"gymnax {report['gymnax']}. Made by:",
        "",
    ]
    for call in report["calls"]:
        lines.append(
            f"- `{call['command']}` at commit {call['commit']}, {call['date']}, load average "
            f"{call['load_before']} before and {call['load_after']} after; stopped "
            f"{call.get('stopped')}."
        )
    lines += [
        "",
        f"Each run: `gru-jax train {CONFIG} --workdir DIR --set data.memory_length=M "
        "--set data.rollout_length=M+1 --set seed=S`, plus the overrides named above its table, "
        "every other setting the config's (300 steps of 32 environments); then "
        "`gru-jax export ... --streaming` and `examples/rl_policy.py`'s `play` on "
        f"{report['episodes']} new episodes of seed {report['eval_seed']}. Success: the fraction "
        "of those greedy episodes answered right (chance 0.5). Time: the `gru-jax train` "
        "process (start-up, compilation, training, its evaluations); in brackets the training "
        "loop alone (`wall_seconds` of `summary.json`).",
    ]
    for sets, runs in groups(report).items():
        by_key = {(r["memory_length"], r["seed"]): r for r in runs}
        lines += [
            "",
            f"## With `{label(list(sets))}`" if sets else "## The config's settings",
            "",
            "| memory_length | "
            + " | ".join(f"seed {s}: success | seed {s}: time" for s in seeds)
            + f" | ≥ {threshold} on |",
            "|---|" + "---|---|" * len(seeds) + "---|",
        ]
        for m in sorted({r["memory_length"] for r in runs}):
            cells, hits = [], 0
            for s in seeds:
                r = by_key.get((m, s))
                if r is None:
                    cells += ["–", "–"]
                    continue
                hits += r["success"] >= threshold
                time_s = f"{r['train_wall_s']:.0f} s ({r['train_loop_s']:.0f} s)"
                cells += [f"{r['success']:.3f}", time_s]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {hits} of {len(seeds)} |")
        best = largest_solved(runs, seeds, threshold)
        lines += [
            "",
            f"Largest memory_length with success ≥ {threshold} on every seed: **{best}**.",
        ]
    total = sum(r["train_wall_s"] for r in report["runs"])
    lines += [
        "",
        f"Training time of all {len(report['runs'])} runs: {total / 60:.1f} min.",
        "",
        "## Every command",
        "",
        "```bash",
    ]
    for r in report["runs"]:
        lines += [r["train_command"], r["export_command"], r["play_command"]]
    lines += ["```", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Success against memory length (log x), one marker per seed and group; time below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(7.0, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    markers = ("o", "s", "^", "D", "v")
    seeds = report["seeds"]
    grouped = groups(report)
    slots = len(seeds) * len(grouped)
    for g, (sets, runs) in enumerate(grouped.items()):
        steps = next((s.split("=")[1] for s in sets if s.startswith("train.steps=")), "300")
        for i, seed in enumerate(seeds):
            mine = sorted((r for r in runs if r["seed"] == seed), key=lambda r: r["memory_length"])
            slot = g * len(seeds) + i
            shift = 1.0 + 0.035 * (slot - (slots - 1) / 2)  # side by side on the log axis
            xs = [r["memory_length"] * shift for r in mine]
            style = {
                "marker": markers[i % len(markers)],
                "ms": 7,
                "ls": "none",
                "color": f"C{g}",
                "mfc": f"C{g}" if g == 0 else "white",
                "label": f"seed {seed}, {steps} steps",
            }
            top.plot(xs, [r["success"] for r in mine], **style)
            bottom.plot(xs, [r["train_wall_s"] for r in mine], **style)
    threshold = report["threshold"]
    top.axhline(threshold, color="k", ls="--", lw=1, label=f"success {threshold}")
    top.axhline(0.5, color="grey", ls=":", lw=1, label="chance, 0.5")
    top.set(
        ylabel=f"greedy success, {report['episodes']} new episodes",
        ylim=(0.0, 1.05),
        title="ppo_memory: recurrent PPO on MemoryChain",
    )
    top.legend(loc="lower left", fontsize=8, ncol=2)
    top.grid(alpha=0.3)
    lengths = sorted({r["memory_length"] for r in report["runs"]})
    bottom.set(
        xscale="log",
        xlabel="memory_length (steps from the bit to the answer)",
        ylabel="seconds per run (gru-jax train)",
        ylim=(0, None),
    )
    bottom.set_xticks(lengths, [str(m) for m in lengths])
    bottom.minorticks_off()
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = harness.OneLineParser(prog="ppo_sweep.py", description=__doc__.splitlines()[0])
    p.add_argument("--memory-lengths", type=parse_ints, default=[50, 100, 200, 400, 800])
    p.add_argument("--seeds", type=parse_ints, default=[0, 1])
    p.add_argument("--episodes", type=int, default=256, help="evaluation episodes per run")
    p.add_argument("--eval-seed", type=int, default=7, help="the evaluation episodes' seed")
    p.add_argument("--threshold", type=float, default=0.95, help="success that counts as solved")
    p.add_argument("--budget-s", type=float, default=900.0, help="training seconds, all runs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--runs", type=Path, default=Path("/tmp/ppo_sweep"), help="run directories")
    p.add_argument("--out", type=Path, default=OUT, help="the report, without suffix")
    p.add_argument("--plot", type=Path, default=PLOT)
    p.add_argument("--keep", action="store_true", help="add to the report, if any, not replace it")
    p.add_argument("--replot", action="store_true", help="only redraw the figure and table")
    a = p.parse_args(argv)
    a.out = a.out.with_suffix("")
    path = a.out.with_suffix(".json")
    if a.replot and not path.exists():
        p.error(f"--replot: no report {path}")
    if a.replot or (a.keep and path.exists()):
        report = json.loads(path.read_text())
    else:
        report = {
            "machine": harness.machine_info(),
            "gymnax": importlib.metadata.version("gymnax"),
            "config": CONFIG,
            "seeds": a.seeds,
            "episodes": a.episodes,
            "eval_seed": a.eval_seed,
            "threshold": a.threshold,
            "calls": [],
            "runs": [],
        }
    if not a.replot:
        for name in ("seeds", "episodes", "eval_seed", "threshold"):
            if report[name] != getattr(a, name):
                p.error(f"--keep: the report has {name} {report[name]}, not {getattr(a, name)}")
        call = {
            "command": harness.command_line("ppo_sweep.py", argv),
            "commit": harness.git_state()["commit"],
            "date": time.strftime("%Y-%m-%d"),
            "sets": a.set,
            "budget_s": a.budget_s,
            "load_before": harness.load_average(),
        }
        report["calls"].append(call)
        sweep(a, report, call)
        call["load_after"] = harness.load_average()
    report["runs"].sort(key=lambda r: (len(r["sets"]), r["sets"], r["memory_length"], r["seed"]))
    report["largest_solved"] = {
        label(list(sets)): largest_solved(runs, report["seeds"], report["threshold"])
        for sets, runs in groups(report).items()
    }
    harness.write_report(path, report, markdown(report))
    plot(report, a.plot)
    print(f"results: {path}, {a.out.with_suffix('.md')}, {a.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
