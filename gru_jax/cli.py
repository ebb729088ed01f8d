"""The ``gru-jax`` command: train and evaluate the synthetic tasks from YAML configs.

::

    gru-jax train CONFIG [--set key=value ...] [--workdir DIR] [--resume] [--stop-after N]
                         [--coordinator HOST:PORT --num-processes N --process-id I]
                         [--init-timeout S] [--heartbeat-timeout S] [--distributed]
    gru-jax eval CONFIG --workdir DIR [--seed N] [--set key=value ...]
    gru-jax export CONFIG --workdir DIR --out FILE [--streaming] [--platforms cpu,cuda,...]
    gru-jax bench [--quick] [--shapes BxTxIxH,...] [--repeats N] [--out PATH] ...

Mistakes (an unknown, ill-typed or out-of-range config key, a missing file, a workdir that does
not exist or holds no checkpoints, a config that differs from the run it resumes, ``--set KEY
VALUE`` for ``--set KEY=VALUE``, inconsistent process flags) are one line on stderr and exit code
2; the line names the closest key to an unknown one and how a value of the expected type is
written. ``train --resume`` of a run that is already complete says so in one line on stdout,
exits with 0 and changes nothing. SIGTERM and SIGINT checkpoint the current step and exit with 143
and 130. A run over several processes runs each process under a supervisor
(:func:`gru_jax.train.supervise`) that reports the runtime's failures as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from gru_jax.train import Config

PROG = "gru-jax"

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2, no usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train and evaluate GRUs on synthetic sequence tasks.")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        parser_class=_Parser,
        help="what to do; gru-jax COMMAND --help describes each",
    )
    run_config = "the YAML config the run was trained with, e.g. configs/adding.yaml"
    run_workdir = "the run's directory, as gru-jax train wrote it (e.g. runs/adding)"
    run_set = (
        "repeat the run's config overrides, e.g. --set model.hidden_size=32 (its task, model "
        "and data keys must match the run's)"
    )

    train = sub.add_parser("train", help="train a task from a YAML config")
    train.add_argument("config", help="YAML config, e.g. configs/adding.yaml")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=100",
    )
    train.add_argument(
        "--workdir", metavar="DIR", help="output directory (default: runs/<config name>)"
    )
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="stop after N steps of this call (checkpointed; --resume continues)",
    )
    several = train.add_argument_group(
        "several processes",
        "one process per host (or several on one machine); each gets the same command with its "
        "own --process-id. The flags override JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
        "JAX_PROCESS_ID; under SLURM or Open MPI they are detected.",
    )
    several.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    several.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    several.add_argument("--process-id", type=int, metavar="I", help="this process, in [0, N)")
    several.add_argument(
        "--init-timeout",
        type=int,
        default=120,
        metavar="S",
        help="seconds for every process to join before the run fails (default 120)",
    )
    several.add_argument(
        "--heartbeat-timeout",
        type=int,
        default=100,
        metavar="S",
        help="seconds of silence after which a process counts as dead (default 100)",
    )
    several.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() to detect the cluster (automatic under "
        "SLURM or Open MPI with more than one task)",
    )

    evaluate = sub.add_parser("eval", help="evaluate a run's latest checkpoint on fresh data")
    evaluate.add_argument("config", help=run_config)
    evaluate.add_argument("--workdir", required=True, metavar="DIR", help=run_workdir)
    evaluate.add_argument("--seed", type=int, default=12345, help="seed of the fresh data")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=run_set)

    exporter = sub.add_parser(
        "export",
        help="write a run's trained model as a jax.export artifact (FILE) and its description "
        "(FILE.json), for any batch size and length",
    )
    exporter.add_argument("config", help=run_config)
    exporter.add_argument("--workdir", required=True, metavar="DIR", help=run_workdir)
    exporter.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="the artifact to write (its folder must exist); its description goes to FILE.json",
    )
    exporter.add_argument(
        "--platforms",
        default=None,
        help="comma-separated platforms to lower for (cpu, cuda, rocm, tpu); default: this "
        "machine's",
    )
    exporter.add_argument(
        "--streaming",
        action="store_true",
        help="export the step function (carry, inputs chunk, resets chunk) -> (carry, outputs) "
        "for a stream fed chunk by chunk",
    )
    exporter.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=run_set)

    sub.add_parser(
        "bench",
        add_help=False,
        help="time gru_jax against Flax, Equinox and torch GRUs (benchmarks/bench.py; "
        "gru-jax bench --help for its options)",
    )
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    """The arguments of a ``train``, ``eval`` or ``export`` command; argparse's own mistakes exit
    with code 2 (``SystemExit``), and ``--set KEY VALUE`` (a space for the ``=``) is a
    :class:`~gru_jax.train.ConfigError` that shows how to write it."""
    from gru_jax.train import ConfigError

    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    meant = _spaced_set(argv, args.config, extra)
    if meant is not None:
        raise ConfigError(f"--set takes KEY=VALUE; write --set {meant}")
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _spaced_set(argv: list[str], config: str, extra: list[str]) -> str | None:
    """The ``KEY=VALUE`` that ``--set KEY VALUE`` meant, when argparse left its ``VALUE`` over
    (in ``extra``, or taken for the ``config`` when that is no file); else ``None``."""
    for i, arg in enumerate(argv):
        if arg == "--set" and i + 2 < len(argv):
            key, value = argv[i + 1], argv[i + 2]
        elif arg.startswith("--set=") and i + 1 < len(argv):
            key, value = arg.removeprefix("--set="), argv[i + 1]
        else:
            continue
        stray = value in extra or (value == config and not Path(value).is_file())
        if stray and "=" not in key and not value.startswith("-"):
            return f"{key}={value}"
    return None


def _bench(argv: list[str]) -> int:
    """Run ``benchmarks/bench.py`` of this source checkout; it is not part of the wheel."""
    import importlib
    import importlib.util

    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    path = folder / "bench.py"
    if not path.is_file():
        print(f"{PROG}: error: bench needs a source checkout; {path} not found", file=sys.stderr)
        return 2
    if "benchmarks" not in sys.modules:  # register the package so that its imports resolve
        spec = importlib.util.spec_from_file_location(
            "benchmarks", folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None  # a .py file's path has both
        sys.modules["benchmarks"] = package = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(package)
    status: int = importlib.import_module("benchmarks.bench").main(argv)
    return status


def main(argv: list[str] | None = None) -> int:
    """Run the ``gru-jax`` command with the arguments ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code: 0 on success; a mistake in the arguments or the config prints one
    line on stderr and gives 2 (argparse's own errors exit with 2 through ``SystemExit``).

    Example:
      >>> from gru_jax.cli import main
      >>> main(["train", "configs/does-not-exist.yaml"])
      2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        from gru_jax.train._distributed import become_worker
    except ImportError as e:  # the 'train' extra is missing: one line, no traceback
        print(f"{PROG}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2

    worker = become_worker()
    if argv[:1] == ["bench"]:  # every later argument belongs to the benchmark's own parser
        return _bench(argv[1:])
    from gru_jax._base.extras import MissingExtra
    from gru_jax.train import ConfigError, Preempted, evaluate_checkpoint, load_config

    try:
        args = _parse(argv)
        config = load_config(args.config, args.set)
        if args.command == "eval":
            print(json.dumps(evaluate_checkpoint(config, args.workdir, seed=args.seed)))
            return 0
        if args.command == "export":
            from gru_jax.train import export_run

            platforms = tuple(args.platforms.split(",")) if args.platforms else None
            described = export_run(
                config, args.workdir, args.out, platforms=platforms, streaming=args.streaming
            )
            shapes = ", ".join(
                f"{i['name']} {tuple(i['shape'])} {i['dtype']}" for i in described["inputs"]
            )
            print(
                f"exported step {described['step']} to {args.out} ({shapes}); "
                f"described in {args.out}.json"
            )
            return 0
        return _train(args, argv, config, worker)
    except ConfigError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except MissingExtra as e:
        # a task's own extra is missing (the PPO tasks' 'rl'): one line, no traceback
        print(f"{PROG}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    except Preempted as e:
        import jax

        if jax.process_index() == 0:
            print(f"{PROG}: {e}; resume with: {_resume_command(argv)}", file=sys.stderr)
        return 128 + e.signum


def _train(args: argparse.Namespace, argv: list[str], config: Config, worker: bool) -> int:
    from gru_jax.train import ConfigError, Preempted, find_cluster, supervise, train_and_evaluate
    from gru_jax.train._distributed import initialize

    if args.stop_after is not None and args.stop_after <= 0:
        raise ConfigError(f"--stop-after must be positive; got {args.stop_after}")
    cluster = find_cluster(
        args.coordinator,
        args.num_processes,
        args.process_id,
        detect=args.distributed,
        init_timeout=args.init_timeout,
        heartbeat_timeout=args.heartbeat_timeout,
    )
    if cluster is not None and not worker:
        return supervise(argv, cluster, prog=PROG)
    if cluster is not None:
        initialize(cluster)
    import jax

    from gru_jax.train._run import completed_step

    workdir = Path(args.workdir or Path("runs") / Path(args.config).stem)
    complete = completed_step(workdir, config.train.steps) if args.resume else None
    began = time.time()
    try:
        summary = train_and_evaluate(
            config,
            workdir,
            resume=args.resume,
            stop_after=args.stop_after,
            handle_signals=True,
        )
    except (ConfigError, Preempted):
        raise
    except Exception as e:
        if cluster is None:
            raise
        # In a run over several processes, a failed collective means another process died.
        # Leave at once: the runtime's shutdown barrier would wait for the dead process, then
        # abort. Other errors keep their traceback.
        text = str(e).strip()
        if isinstance(e, jax.errors.JaxRuntimeError) or re.match(r"[A-Z_]+: ", text):
            print(
                f"{PROG}: error: {cluster.describe()} stopped: a collective with the other "
                f"processes failed ({text.splitlines()[0][:160]}); another process of the run "
                "died or stopped answering: see that process's output",
                file=sys.stderr,
                flush=True,
            )
        else:
            traceback.print_exc()
        sys.stdout.flush()
        os._exit(1)
    if jax.process_index() != 0:
        return 0
    if summary is None:
        print(f"stopped early; continue with: {_resume_command(argv)}")
    elif complete is not None:  # its config and checkpoint were checked; nothing was written
        print(
            f"the run in {str(workdir)!r} is already complete (step {complete} of "
            f"{config.train.steps}): nothing trained, nothing changed; its results are in "
            f"{str(workdir / 'summary.json')!r}"
        )
    else:
        print(json.dumps(summary))
        print(f"results in {workdir}/: {', '.join(_written(workdir, began))}")
    return 0


def _resume_command(argv: list[str]) -> str:
    """The command that continues a run: its arguments, with ``--resume``, without
    ``--stop-after``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--stop-after":
            skip = True
        elif not arg.startswith("--stop-after="):
            kept.append(arg)
    if "--resume" not in kept:
        kept.append("--resume")
    return shlex.join([PROG, *kept])


def _written(workdir: Path, since: float) -> list[str]:
    """What this run wrote in ``workdir``: its files changed since ``since`` (seconds since the
    epoch), with ``checkpoints/`` and ``processes/`` as one entry each."""
    names: set[str] = set()
    for path in workdir.rglob("*"):
        if path.is_file() and path.stat().st_mtime >= since - 1e-3:
            parts = path.relative_to(workdir).parts
            names.add(
                f"{parts[0]}/" if parts[0] in ("checkpoints", "processes") else "/".join(parts)
            )
    return sorted(names)


if __name__ == "__main__":
    sys.exit(main())
