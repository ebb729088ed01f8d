"""The catalogue of bad inputs: one case per (entry point, mistake), each raising a clear
``ValueError`` or ``TypeError`` (the CLI turns them into one line and exit code 2).

``tests/test_error_catalogue.py`` runs every case, and checks that ``docs/errors.md`` is this
catalogue rendered with the messages the code really raises. To regenerate the document::

    .venv/bin/python tests/error_catalogue.py > docs/errors.md
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import yaml

import gru_jax
from gru_jax import interop
from gru_jax.cli import _parse
from gru_jax.train import (
    config_to_dict,
    evaluate_checkpoint,
    export_run,
    find_cluster,
    load_config,
    train_and_evaluate,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
KEY = jax.random.key(0)


# Built on first use, not on import (every pytest worker imports this module to collect).
@functools.cache
def P() -> gru_jax.GRUParams:
    return gru_jax.init_gru(KEY, 3, 4)  # I = 3, H = 4


@functools.cache
def STACK() -> tuple:
    return gru_jax.init_gru_stack(KEY, 3, 4, 2, bidirectional=True)


@functools.cache
def XS() -> jax.Array:
    return jnp.zeros((2, 5, 3), jnp.float32)  # B = 2, T = 5, I = 3 (explicit dtypes: x64 may be on)


@dataclasses.dataclass(frozen=True)
class Case:
    entry: str
    mistake: str
    call: Callable[[Path], Any]


def _flax_linen_wrong_features(tmp: Path) -> Any:
    layer = gru_jax.linen.GRU(4)
    variables = layer.init(KEY, XS())
    return layer.apply(variables, jnp.zeros((2, 5, 7)))


def _nnx_load_wrong_stack(tmp: Path) -> Any:
    from flax import nnx

    layer = gru_jax.nnx.GRU(3, 4, rngs=nnx.Rngs(0))
    return layer.load_gru_params(gru_jax.init_gru_stack(KEY, 3, 4, 2))


def _truncated_weights(tmp: Path) -> Any:
    path = tmp / "params.npz"
    interop.save_params(path, P())
    path.write_bytes(path.read_bytes()[:100])
    return interop.load_params(path)


def _foreign_weights(tmp: Path) -> Any:
    path = tmp / "other.npz"
    np.savez(path, weights=np.zeros(3))
    return interop.load_params(path)


def _export_parallel_mingru() -> Any:
    from jax import export

    params = gru_jax.init_mingru(KEY, 3, 4)
    spec = jax.ShapeDtypeStruct(export.symbolic_shape("b, t, 3"), jnp.float32)
    return export.export(jax.jit(lambda xs: gru_jax.mingru(params, xs, mode="parallel")))(spec)


def _config(tmp: Path, *overrides: str, name: str = "adding.yaml") -> Any:
    return load_config(CONFIGS / name, list(overrides))


def _not_yaml(tmp: Path) -> Any:
    (tmp / "bad.yaml").write_text("task: adding\ntrain: {steps: 10\n")
    return load_config(tmp / "bad.yaml")


def _quoted_int(tmp: Path) -> Any:
    (tmp / "quoted.yaml").write_text('task: adding\ntrain:\n  steps: "3000"\n')
    return load_config(tmp / "quoted.yaml")


def _run_dir(tmp: Path) -> Path:
    """A workdir as ``configs/adding.yaml`` left it: its ``config.yaml`` and checkpoints/."""
    (tmp / "checkpoints").mkdir()
    (tmp / "config.yaml").write_text(yaml.safe_dump(config_to_dict(_config(tmp))))
    return tmp


def _resume_with(tmp: Path, *overrides: str) -> Any:
    return train_and_evaluate(_config(tmp, *overrides), _run_dir(tmp), resume=True)


def _eval_other_task(tmp: Path) -> Any:
    return evaluate_checkpoint(_config(tmp, name="copy.yaml"), _run_dir(tmp), seed=1)


def _charlm_rows_too_short(tmp: Path) -> Any:
    from gru_jax.tasks import get_task

    config = _config(tmp, "data.seq_len=5", "data.corpus_chars=3000", name="charlm_packed.yaml")
    return get_task("charlm").make_source(config.data, config.seed)


import gru_jax.linen  # noqa: E402  (after the helpers that use them, for the doc's order)
import gru_jax.nnx  # noqa: E402

CASES = [
    Case("init_gru", "size ≤ 0", lambda t: gru_jax.init_gru(KEY, 3, 0)),
    Case("init_gru", "non-float dtype", lambda t: gru_jax.init_gru(KEY, 3, 4, dtype=jnp.int32)),
    Case("init_gru", "chrono as a bool", lambda t: gru_jax.init_gru(KEY, 3, 4, chrono=True)),
    Case("init_gru", "chrono below 3", lambda t: gru_jax.init_gru(KEY, 3, 4, chrono=2)),
    Case("init_gru_stack", "num_layers ≤ 0", lambda t: gru_jax.init_gru_stack(KEY, 3, 4, 0)),
    Case("gru", "xs of rank 1", lambda t: gru_jax.gru(P(), jnp.zeros(3))),
    Case("gru", "xs with the wrong feature size", lambda t: gru_jax.gru(P(), jnp.zeros((2, 5, 7)))),
    Case("gru", "integer xs", lambda t: gru_jax.gru(P(), jnp.zeros((2, 5, 3), jnp.int32))),
    Case("gru", "h0 of the wrong shape", lambda t: gru_jax.gru(P(), XS(), jnp.zeros((3, 4)))),
    Case(
        "gru",
        "seq_lengths of the wrong batch shape",
        lambda t: gru_jax.gru(P(), XS(), seq_lengths=jnp.array([1, 2, 3])),
    ),
    Case(
        "gru",
        "non-integer seq_lengths",
        lambda t: gru_jax.gru(P(), XS(), seq_lengths=jnp.array([1.0, 2.0], jnp.float32)),
    ),
    Case(
        "gru",
        "concrete seq_lengths outside [0, T]",
        lambda t: gru_jax.gru(P(), XS(), seq_lengths=np.array([1, 6])),
    ),
    Case("gru", "params that are not GRUParams", lambda t: gru_jax.gru({"w_x": 0}, XS())),
    Case(
        "gru",
        "params with inconsistent shapes",
        lambda t: gru_jax.gru(P().replace(b_h=jnp.zeros(5)), XS()),
    ),
    Case("gru", "unroll < 1", lambda t: gru_jax.gru(P(), XS(), unroll=0)),
    Case(
        "gru",
        "resets that are not bool",
        lambda t: gru_jax.gru(P(), XS(), resets=np.zeros((2, 5), np.int32)),
    ),
    Case(
        "gru",
        "resets of the wrong shape",
        lambda t: gru_jax.gru(P(), XS(), resets=np.zeros((5, 2), bool)),
    ),
    Case(
        "gru",
        "time-major resets laid out batch-major",
        lambda t: gru_jax.gru(
            P(), jnp.zeros((5, 2, 3)), resets=np.zeros((2, 5), bool), time_major=True
        ),
    ),
    Case(
        "gru_stack_cell",
        "a bidirectional stack",
        lambda t: gru_jax.gru_stack_cell(STACK(), jnp.zeros((4, 2, 4)), jnp.zeros((2, 3))),
    ),
    Case(
        "segment_ends",
        "resets that are not bool",
        lambda t: gru_jax.segment_ends(np.zeros((2, 5), np.int32)),
    ),
    Case(
        "gru_cell",
        "h and x with different batch dims",
        lambda t: gru_jax.gru_cell(P(), jnp.zeros((3, 4)), jnp.zeros((2, 3))),
    ),
    Case(
        "gru_stack",
        "h0 with the wrong number of layers",
        lambda t: gru_jax.gru_stack(STACK(), XS(), jnp.zeros((2, 2, 4))),
    ),
    Case(
        "gru_stack",
        "dropout without a key",
        lambda t: gru_jax.gru_stack(STACK(), XS(), dropout_rate=0.5, deterministic=False),
    ),
    Case(
        "gru_stack",
        "dropout_rate outside [0, 1)",
        lambda t: gru_jax.gru_stack(STACK(), XS(), dropout_rate=1.5),
    ),
    Case(
        "gru_stack",
        "mismatched layers",
        lambda t: gru_jax.gru_stack((STACK()[0], (P(), P())), XS()),
    ),
    Case(
        "mingru",
        "xs with the wrong feature size",
        lambda t: gru_jax.mingru(gru_jax.init_mingru(KEY, 3, 4), jnp.zeros((2, 5, 7))),
    ),
    Case(
        "mingru",
        "resets of the wrong shape",
        lambda t: gru_jax.mingru(
            gru_jax.init_mingru(KEY, 3, 4), XS(), resets=np.zeros((2, 4), bool)
        ),
    ),
    Case(
        "mingru",
        "unknown mode",
        lambda t: gru_jax.mingru(gru_jax.init_mingru(KEY, 3, 4), XS(), mode="fast"),
    ),
    Case(
        "mingru",
        "mode='parallel' under jax.export with a symbolic length",
        lambda t: _export_parallel_mingru(),
    ),
    Case(
        "mingru_stack",
        "h0 of the wrong shape",
        lambda t: gru_jax.mingru_stack(
            gru_jax.init_mingru_stack(KEY, 3, 4, 2), XS(), jnp.zeros((1, 2, 4))
        ),
    ),
    Case(
        "mingru_stack_cell",
        "a bidirectional stack",
        lambda t: gru_jax.mingru_stack_cell(
            gru_jax.init_mingru_stack(KEY, 3, 4, bidirectional=True),
            jnp.zeros((1, 2, 4)),
            XS()[:, 0],
        ),
    ),
    Case("linen.GRU", "inputs with another feature size than at init", _flax_linen_wrong_features),
    Case(
        "nnx.GRU",
        "hidden_features ≤ 0",
        lambda t: gru_jax.nnx.GRU(3, 0, rngs=__import__("flax").nnx.Rngs(0)),
    ),
    Case("nnx.GRU.load_gru_params", "a stack of another depth", _nnx_load_wrong_stack),
    Case(
        "linen/nnx tree_to_params",
        "a tree with unknown keys",
        lambda t: gru_jax.linen.tree_to_params({"kernel": 0}, reset_after=False),
    ),
    Case(
        "interop.from_torch",
        "a missing key",
        lambda t: interop.from_torch({"weight_ih_l0": np.zeros((12, 3))}),
    ),
    Case(
        "interop.from_torch",
        "a value that is not a tensor or array",
        lambda t: interop.from_torch(
            {k: "x" for k in interop.to_torch(((P().replace(reset_after=True),),))}
        ),
    ),
    Case(
        "interop.to_torch",
        "reset-before params (torch is reset-after)",
        lambda t: interop.to_torch(((P(),),)),
    ),
    Case(
        "interop.to_flax_nnx",
        "a non-zero b_hn (NNX has no slot for it)",
        lambda t: interop.to_flax_nnx(P().replace(reset_after=True, b_h=jnp.ones(12))),
    ),
    Case(
        "interop.from_keras",
        "the wrong number of arrays",
        lambda t: interop.from_keras([np.zeros((3, 12))], reset_after=True),
    ),
    Case("interop.load_params", "a truncated file", _truncated_weights),
    Case("interop.load_params", "a foreign .npz file", _foreign_weights),
    Case("config (gru-jax)", "a missing file", lambda t: load_config(t / "missing.yaml")),
    Case("config (gru-jax)", "a file that is not valid YAML", _not_yaml),
    Case("config (gru-jax)", "an unknown key", lambda t: _config(t, "train.stepz=3")),
    Case("config (gru-jax)", "a misspelt key", lambda t: _config(t, "train.stpes=3")),
    Case("config (gru-jax)", "a key outside its section", lambda t: _config(t, "hidden_size=8")),
    Case("config (gru-jax)", "a value of the wrong type", lambda t: _config(t, "train.steps=ten")),
    Case(
        "config (gru-jax)",
        "an int written with an exponent",
        lambda t: _config(t, "train.steps=1e3"),
    ),
    Case("config (gru-jax)", "an int in quotes, in a file", _quoted_int),
    Case("config (gru-jax)", "a bool in quotes", lambda t: _config(t, "model.reset_after='true'")),
    Case("config (gru-jax)", "None for null", lambda t: _config(t, "model.chrono=None")),
    Case(
        "config (gru-jax)",
        "a number for a str",
        lambda t: _config(t, "data.prompt=42", name="charlm.yaml"),
    ),
    Case("config (gru-jax)", "a size out of range", lambda t: _config(t, "model.hidden_size=0")),
    Case(
        "config (gru-jax)", "a float out of range", lambda t: _config(t, "model.dropout_rate=1.5")
    ),
    Case(
        "config (gru-jax)",
        "a float that is not finite",
        lambda t: _config(t, "train.learning_rate=.nan"),
    ),
    Case(
        "config (gru-jax)",
        "a value not among the choices",
        lambda t: _config(t, "data.layout=pakced", name="charlm.yaml"),
    ),
    Case(
        "config (gru-jax)",
        "keys that contradict each other",
        lambda t: _config(t, "data.min_len=12", "data.max_len=10", name="seq2seq.yaml"),
    ),
    Case(
        "config (gru-jax)",
        "a window longer than the series",
        lambda t: _config(t, "data.series_len=50", name="forecast.yaml"),
    ),
    Case(
        "config (gru-jax)",
        "a batch that the devices cannot share",
        lambda t: _config(t, "train.num_devices=3"),
    ),
    Case(
        "config (gru-jax)",
        "rows shorter than every sentence (found when the data is built)",
        _charlm_rows_too_short,
    ),
    Case(
        "config (gru-jax)",
        "more burn-in steps than a rollout has (ppo_memory)",
        lambda t: _config(t, "data.burn_in=60", name="ppo_memory.yaml"),
    ),
    Case("config (gru-jax)", "an unknown task", lambda t: _config(t, "task=chess")),
    Case("config (gru-jax)", "a malformed --set", lambda t: _config(t, "train.steps")),
    Case(
        "config (gru-jax)",
        "--set KEY VALUE, a space for the =",
        lambda t: _parse(["train", "configs/adding.yaml", "--set", "train.steps", "200"]),
    ),
    Case(
        "config (gru-jax)",
        "a GRU-only key with cell: mingru",
        lambda t: _config(t, "model.cell=mingru", "model.reset_after=true"),
    ),
    Case(
        "config (gru-jax)",
        "both target and target_vs_baseline",
        lambda t: _config(t, "target_vs_baseline=0.5"),
    ),
    Case(
        "export (gru-jax)",
        "a workdir without checkpoints",
        lambda t: export_run(_config(t), t, t / "model.jax"),
    ),
    Case(
        "export (gru-jax)",
        "a workdir that does not exist",
        lambda t: export_run(_config(t), t / "missing", t / "model.jax"),
    ),
    Case(
        "export (gru-jax)",
        "--streaming of a bidirectional model (seq2seq)",
        lambda t: export_run(_config(t, name="seq2seq.yaml"), t, t / "m.jax", streaming=True),
    ),
    Case(
        "export (gru-jax)",
        "an unknown platform",
        lambda t: export_run(_config(t), t, t / "m.jax", platforms=("gpu",)),
    ),
    Case(
        "train --resume (gru-jax)",
        "a config that shapes another model than the run's",
        lambda t: _resume_with(t, "model.hidden_size=32"),
    ),
    Case(
        "train --resume (gru-jax)",
        "more steps (they move the learning-rate schedule)",
        lambda t: _resume_with(t, "train.steps=4000"),
    ),
    Case("eval (gru-jax)", "another task's config", _eval_other_task),
    Case(
        "eval (gru-jax)",
        "a workdir that does not exist",
        lambda t: evaluate_checkpoint(_config(t), t / "missing", seed=1),
    ),
    Case(
        "train, several processes (gru-jax)",
        "a process id outside [0, N)",
        lambda t: find_cluster("127.0.0.1:12355", 2, 2, env={}),
    ),
    Case(
        "train, several processes (gru-jax)",
        "a coordinator without the number of processes",
        lambda t: find_cluster("127.0.0.1:12355", env={}),
    ),
]


def raised(case: Case) -> tuple[type[BaseException], str] | None:
    """The type and message of what ``case`` raises (``None`` if it raises nothing)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            case.call(Path(tmp))
        except Exception as e:
            return type(e), str(e).replace(tmp, "<tmp>")
    return None


def _public_name(kind: type[BaseException]) -> str:
    """``ValueError``, or ``ConfigError (ValueError)`` for a public subclass."""
    public = [c for c in kind.__mro__ if not c.__name__.startswith("_")]
    builtin = next(c for c in public if c.__module__ == "builtins")
    return (
        builtin.__name__ if public[0] is builtin else f"{public[0].__name__} ({builtin.__name__})"
    )


def render() -> str:
    """The catalogue as Markdown, with the messages the code really raises."""
    lines = [
        "# Bad inputs and their errors",
        "",
        "Every public entry point checks its arguments while tracing (before XLA compiles",
        "anything) and raises `ValueError` (wrong value or shape) or `TypeError` (wrong type or",
        "dtype), naming the argument with what was expected and what it got. The `gru-jax` CLI",
        "prints the same message as one line on stderr and exits with code 2. A config is checked",
        "when it is read, before anything compiles: each key's type, the range declared beside its",
        "field, and the constraints between keys ([Training](training.md#configs)).",
        "",
        "Generated by `.venv/bin/python tests/error_catalogue.py > docs/errors.md`;",
        "`tests/test_error_catalogue.py` runs every case and checks this file is current.",
        "",
        "| entry point | mistake | raises | message |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        kind, message = raised(case)
        message = message.splitlines()[0].replace("|", "\\|")
        lines.append(f"| `{case.entry}` | {case.mistake} | `{_public_name(kind)}` | {message} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
