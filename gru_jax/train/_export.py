"""``gru-jax export``: a run's trained model as a ``jax.export`` artifact and its description.

The artifact is the bytes of ``Exported.serialize()`` of the task's prediction function
(:class:`gru_jax.tasks.Signature`) with the parameters embedded, lowered with symbolic
dimensions (``b`` the batch, ``t`` or ``s`` a length), so one file serves every batch size and
length. A server needs ``jax`` (and ``flatbuffers``) to load it, and neither flax nor gru_jax:

    from jax import export
    predict = export.deserialize(open("model.jax", "rb").read()).call

Beside it, ``FILE.json`` describes the inputs and outputs (names, shapes with their symbols,
dtypes), the task, the run's step and the platforms it was lowered for; for a task whose inputs
are token ids, ``"vocab"`` lists what each id stands for (``vocab[i]`` the character or token of
id ``i``: :attr:`gru_jax.tasks.Signature.vocab`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import jax
from jax import export

from gru_jax.tasks import Signature, get_task
from gru_jax.train._config import Config, ConfigError
from gru_jax.train._run import load_checkpoint

FORMAT = "gru_jax.export/1"


def _dim(d: Any) -> int | str:
    return d if isinstance(d, int) else str(d)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def export_signature(
    signature: Signature, platforms: tuple[str, ...] | None = None
) -> tuple[export.Exported, list[str]]:
    """``jax.export`` of a task's :class:`~gru_jax.tasks.Signature`, its named dimensions made
    symbolic (one scope, so that ``b`` is the same batch in every input); also the names."""
    names = sorted({d for _, shape, _ in signature.inputs for d in shape if isinstance(d, str)})
    symbols: dict[str, Any] = dict(zip(names, export.symbolic_shape(", ".join(names)), strict=True))
    specs = [
        jax.ShapeDtypeStruct(tuple(symbols[d] if isinstance(d, str) else d for d in shape), dtype)
        for _, shape, dtype in signature.inputs
    ]
    return export.export(jax.jit(signature.fn), platforms=platforms)(*specs), names


def export_run(
    config: Config,
    workdir: str | Path,
    out: str | Path,
    *,
    platforms: tuple[str, ...] | None = None,
    streaming: bool = False,
) -> dict[str, Any]:
    """Export the latest checkpoint of the run in ``workdir`` to ``out`` (and ``out.json``).

    ``platforms``: what to lower for (``("cpu", "cuda")``, say); default: this process's
    backend. ``streaming``: the task's step function (``Task.stream``: ``(carry, inputs chunk,
    resets chunk) -> (carry, outputs)``) instead of its prediction function. Returns the
    description written to ``out.json``. The model is built with ``model.impl`` ``"xla"``,
    whatever the config says: ``jax.export`` cannot serialize a Pallas kernel's Triton call
    (nor does Pallas take the symbolic dimensions).

    Raises:
      ConfigError: no checkpoints, a config that differs from the run's, or a task that defines
        no :class:`~gru_jax.tasks.Signature` (``Task.serve``).
    """
    if platforms is not None and (not platforms or set(platforms) - set(PLATFORMS)):
        raise ConfigError(
            f"--platforms must be a comma-separated list of {list(PLATFORMS)}; "
            f"got {','.join(platforms)!r}"
        )
    task = get_task(config.task)
    make_signature = task.stream if streaming else task.serve
    if make_signature is None:
        raise ConfigError(
            f"task {config.task!r} has no streaming form (its model reads whole sequences: a "
            "bidirectional encoder); export it without --streaming"
            if streaming
            else f"task {config.task!r} defines no serving signature (Task.serve), so it "
            "cannot be exported"
        )
    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"--out {str(out)!r}: the folder {str(out.parent)!r} does not exist")
    _, params, step = load_checkpoint(config, workdir)
    # impl="xla" whatever model.impl says: jax.export refuses to serialize a Triton custom call
    model = task.make_model(dataclasses.replace(config.model, impl="xla"), config.data)
    signature = make_signature(model, params, config.data)
    exported, names = export_signature(signature, platforms)
    outputs = exported.out_avals
    meanings = {"b": "batch size", "t": "sequence length", "s": "source length"}
    description: dict[str, Any] = {
        "format": FORMAT,
        "task": config.task,
        "step": step,
        "streaming": streaming,
        "workdir": str(workdir),
        "symbols": {k: v for k, v in meanings.items() if k in names},
        "inputs": [
            {"name": name, "shape": [_dim(d) for d in shape], "dtype": dtype}
            for name, shape, dtype in signature.inputs
        ],
        "outputs": [
            {"name": name, "shape": [_dim(d) for d in aval.shape], "dtype": str(aval.dtype)}
            for name, aval in zip(signature.outputs, outputs, strict=True)
        ],
        **({} if signature.vocab is None else {"vocab": list(signature.vocab)}),
        "platforms": list(exported.platforms),
        "jax_version": jax.__version__,
        "load": "jax.export.deserialize(open(FILE, 'rb').read()).call(*inputs) -> outputs",
        **(
            {
                "stream": "start from carry = zeros of its shape with b your batch; call "
                "(carry, chunk, resets) -> (carry, outputs) per chunk, passing the new carry on"
            }
            if streaming
            else {}
        ),
    }
    _write_atomic(out, bytes(exported.serialize()))
    _write_atomic(
        out.with_name(out.name + ".json"), (json.dumps(description, indent=2) + "\n").encode()
    )
    return description
