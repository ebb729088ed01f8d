"""The ``gru-jax`` command: train and evaluate the synthetic tasks from YAML configs.

    gru-jax train CONFIG [--set key=value ...] [--workdir DIR] [--resume] [--stop-after N]
    gru-jax eval CONFIG --workdir DIR [--seed N] [--set key=value ...]
    gru-jax bench [--quick] [--shapes BxTxIxH,...] [--repeats N] [--out PATH] ...

Mistakes (an unknown or ill-typed config key, a missing file, a workdir without checkpoints) are
one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

PROG = "gru-jax"

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2, no usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train and evaluate GRUs on synthetic sequence tasks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a task from a YAML config")
    train.add_argument("config", help="YAML config, e.g. configs/adding.yaml")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=100",
    )
    train.add_argument("--workdir", help="output directory (default: runs/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="stop after N steps of this call (checkpointed; --resume continues)",
    )
    train.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() (automatic under SLURM/MPI or "
        "with JAX_COORDINATOR_ADDRESS set)",
    )

    evaluate = sub.add_parser("eval", help="evaluate a run's latest checkpoint on fresh data")
    evaluate.add_argument("config")
    evaluate.add_argument("--workdir", required=True)
    evaluate.add_argument("--seed", type=int, default=12345, help="seed of the fresh data")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    sub.add_parser(
        "bench",
        add_help=False,
        help="time gru_jax against Flax, Equinox and torch GRUs (benchmarks/bench.py; "
        "gru-jax bench --help for its options)",
    )
    return parser


def _bench(argv: list[str]) -> int:
    """Run ``benchmarks/bench.py`` of this source checkout; it is not part of the wheel."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
    if not path.is_file():
        print(f"{PROG}: error: bench needs a source checkout; {path} not found", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("gru_jax_benchmarks_bench", path)
    assert spec is not None and spec.loader is not None  # a .py file's path has both
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    status: int = module.main(argv)
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
    if argv[:1] == ["bench"]:  # every later argument belongs to the benchmark's own parser
        return _bench(argv[1:])
    args = _parser().parse_args(argv)
    from gru_jax.train import (
        ConfigError,
        evaluate_checkpoint,
        load_config,
        maybe_initialize_distributed,
        train_and_evaluate,
    )

    try:
        config = load_config(args.config, args.set)
        if args.command == "train":
            if args.stop_after is not None and args.stop_after <= 0:
                raise ConfigError(f"--stop-after must be positive; got {args.stop_after}")
            maybe_initialize_distributed(force=args.distributed)
            workdir = Path(args.workdir or Path("runs") / Path(args.config).stem)
            summary = train_and_evaluate(
                config, workdir, resume=args.resume, stop_after=args.stop_after
            )
            if summary is None:
                print(
                    f"stopped early; continue with: {PROG} train {args.config} "
                    f"--workdir {workdir} --resume"
                )
            else:
                print(json.dumps(summary))
                print(f"results in {workdir}/ (summary.json, metrics.jsonl, plots/, checkpoints/)")
        else:
            print(json.dumps(evaluate_checkpoint(config, args.workdir, seed=args.seed)))
    except ConfigError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
