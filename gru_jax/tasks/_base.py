"""What the generic training loop (:mod:`gru_jax.train`) needs of a task."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import flax.linen as nn
import jax

from gru_jax.linen import GRU, MinGRUStack

Batch = Mapping[str, jax.Array]
"""A batch of a task: named arrays (e.g. ``inputs``, ``targets``, ``lengths``), batch-major."""

Params = Any


@dataclasses.dataclass(frozen=True)
class Source:
    """A deterministic stream of batches: ``batch(key, batch_size)`` is a pure, jittable function
    of the key (``batch_size`` static), so that step ``s`` always sees the same data.

    Attributes:
      batch: ``(key, batch_size) -> Batch``, the batch drawn with ``key``.
      info: what the task's ``baseline`` and ``report`` need of the data behind the stream
        (e.g. forecast's standardised ``"series"``, charlm's corpus ``"ids"``); empty by
        default, and not used by the training loop.
    """

    batch: Callable[[jax.Array, int], Batch]
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Splits:
    """What a task's ``baseline`` and ``report`` see: the run's data config and both streams
    (``train`` from the config's seed, ``eval`` from the next seed)."""

    config: Any
    train: Source
    eval: Source


@dataclasses.dataclass(frozen=True)
class Signature:
    """What ``gru-jax export`` writes for a trained model: a function of named arrays.

    Attributes:
      fn: positional arrays, in the order of ``inputs`` -> a tuple of arrays, in the order of
        ``outputs``; the parameters are closed over (constants of the export).
      inputs: ``(name, shape, dtype)`` per argument; a shape's entries are ints or the names of
        symbolic dimensions (``"b"`` the batch, ``"t"`` a length), shared by all inputs.
      outputs: the names of the outputs.
    """

    fn: Callable[..., tuple[Any, ...]]
    inputs: tuple[tuple[str, tuple[int | str, ...], str], ...]
    outputs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Task:
    """A synthetic sequence task.

    Attributes:
      name: the config's ``task`` value.
      data_config: the frozen dataclass of the config's ``data`` section (all fields defaulted;
        a field declared with :func:`gru_jax.train.setting` gets its range checked, the others
        their type only; an optional ``validate()`` checks constraints between keys).
      metric: the evaluation metric's name, e.g. ``"mse"``.
      higher_is_better: the metric's direction (a target is reached when the value is at least,
        or else at most, the target).
      make_source: ``(data_config, seed) -> Source``; the same seed gives the same data.
      make_model: ``(model_config, data_config) -> flax.linen.Module`` called as
        ``model.apply(params, batch, train=...)``.
      loss: ``(outputs, batch) -> scalar`` training loss, from the model's outputs.
      metric_sums: ``(model, params, batch) -> (sum, count)``; the metric over a set of batches
        is ``Σ sum / Σ count`` (jittable).
      baseline: ``(splits) -> float``, the value of the metric for the task's trivial
        predictor (fitted on ``splits.train`` where it needs fitting, measured on
        ``splits.eval``), stated in the summary.
      report: optional ``(model, params, splits, key, workdir) -> dict`` run once at the end:
        plots of predictions on ``splits.eval``, generated samples; its dict goes into
        ``summary.json``.
      serve: optional ``(model, params, data_config) -> Signature``: the prediction function
        that ``gru-jax export`` writes (without it the task cannot be exported).
      stream: optional ``(model, params, data_config) -> Signature``: the step function that
        ``gru-jax export --streaming`` writes, ``(carry, inputs chunk, resets chunk) ->
        (carry, outputs)`` (:func:`carry_stream`); ``None`` for a model that needs the whole
        sequence (a bidirectional encoder).
    """

    name: str
    data_config: type
    metric: str
    higher_is_better: bool
    make_source: Callable[[Any, int], Source]
    make_model: Callable[[Any, Any], nn.Module]
    loss: Callable[[Any, Batch], jax.Array]
    metric_sums: Callable[[nn.Module, Params, Batch], tuple[jax.Array, jax.Array]]
    baseline: Callable[[Splits], float]
    report: Callable[[nn.Module, Params, Splits, jax.Array, Path], dict[str, Any]] | None = None
    serve: Callable[[nn.Module, Params, Any], Signature] | None = None
    stream: Callable[[nn.Module, Params, Any], Signature] | None = None


def carry_stream(
    model: nn.Module,
    params: Params,
    inputs: tuple[tuple[int | str, ...], str],
    output: str,
    apply: Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]] | None = None,
) -> Signature:
    """The streaming :class:`Signature` of a model with a unidirectional recurrent stack:
    ``(carry (L, b, H), inputs chunk, resets chunk (b, t) bool) -> (new carry, output)``.

    ``inputs`` is the chunk's ``(shape, dtype)`` with ``"b"`` and ``"t"``; ``apply(carry, x,
    resets) -> (output, new carry)`` defaults to ``model.apply(params, {"inputs": x, "resets":
    resets}, carry=carry)``. Feeding a sequence chunk by chunk, each chunk's carry the last
    one's new carry (zeros at first), gives the per-step outputs of the whole sequence; a
    ``resets`` flag starts a new segment (an episode) at its step, as in :func:`gru_jax.gru`.
    """
    layers, hidden = model.num_layers, model.hidden_size

    def default(carry: jax.Array, x: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        out, new = model.apply(params, {"inputs": x, "resets": resets}, carry=carry)
        return cast(jax.Array, out), cast(jax.Array, new)

    run = apply or default

    def step(carry: jax.Array, x: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        out, new = run(carry, x, resets)
        return new, out

    shape, dtype = inputs
    return Signature(
        step,
        (
            ("carry", (layers, "b", hidden), "float32"),
            ("inputs", shape, dtype),
            ("resets", ("b", "t"), "bool"),
        ),
        ("carry", output),
    )


GRU_FIELDS = (
    "cell",
    "hidden_size",
    "num_layers",
    "reset_after",
    "dropout_rate",
    "unroll",
    "chrono",
)
"""The ``model:`` config keys that every task's model passes to its recurrent layer."""

CELLS = ("gru", "mingru")
"""The values of ``model.cell``: :class:`gru_jax.linen.GRU` or
:class:`gru_jax.linen.MinGRUStack`."""

_GRU_ONLY = ("reset_after", "unroll")  # options the minGRU does not have


def gru_fields(config: Any) -> dict[str, Any]:
    """The :data:`GRU_FIELDS` of a model config (or of a module that declares them)."""
    return {name: getattr(config, name) for name in GRU_FIELDS}


def make_rnn(config: Any, **kwargs: Any) -> GRU | MinGRUStack:
    """The recurrent layer that a model config (or module) describes: a
    :class:`gru_jax.linen.GRU` for ``cell: gru``, a :class:`gru_jax.linen.MinGRUStack` for
    ``cell: mingru``. Both take the same call (``seq_lengths``, ``resets``, ``initial_carry``,
    ``deterministic``), return the same ``(L·D, B, H)`` carry and have ``step``. ``kwargs`` add
    or override options such as ``return_carry`` or ``bidirectional``.

    ``reset_after`` and ``unroll`` are the GRU's options: with ``cell: mingru`` they must keep
    their defaults (``ModelConfig.validate`` says so for a config).

    Example:
      >>> from gru_jax.tasks import make_rnn
      >>> from gru_jax.train import ModelConfig
      >>> type(make_rnn(ModelConfig(cell="mingru", num_layers=2))).__name__
      'MinGRUStack'
    """
    fields = gru_fields(config)
    cell, features = fields.pop("cell"), fields.pop("hidden_size")
    if cell == "gru":
        return GRU(features, **(fields | kwargs))
    if cell != "mingru":
        raise ValueError(f"make_rnn: cell must be one of {list(CELLS)}; got {cell!r}")
    for name in _GRU_ONLY:
        value = fields.pop(name)
        if value != getattr(GRU, name):  # the GRU's default: False, 1
            raise ValueError(f"make_rnn: {name}={value!r} applies to cell 'gru' only")
    return MinGRUStack(features, **(fields | kwargs))


def make_gru(config: Any, **kwargs: Any) -> GRU | MinGRUStack:
    """The earlier name of :func:`make_rnn`, deprecated: it warns, then returns
    ``make_rnn(config, **kwargs)`` (a GRU or a minGRU by ``model.cell``).

    Warns:
      DeprecationWarning: on every call.
    """
    warnings.warn(
        "gru_jax.tasks.make_gru is deprecated: use make_rnn (it builds a GRU or a minGRU by "
        "model.cell)",
        DeprecationWarning,
        stacklevel=2,
    )
    return make_rnn(config, **kwargs)
