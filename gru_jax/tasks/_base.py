"""What the generic training loop (:mod:`gru_jax.train`) needs of a task."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self, TypedDict, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from gru_jax.linen import GRU, MinGRUStack
from gru_jax.tasks._serving import Signature

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
class OnPolicy:
    """How a task whose data depend on the parameters being trained (on-policy reinforcement
    learning) makes and uses them: the training loop calls ``update`` once per step instead of
    drawing a batch and taking one gradient step.

    Attributes:
      init: ``(model, params, data_config, key, num_envs) -> collector``: what the task carries
        from one training step to the next (environment states, the last observations, the
        recurrent state at the next rollout's start, ...). Every leaf has the environments on
        axis 0 (``num_envs = train.batch_size``): the loop shards it over devices like a batch
        and saves it in every checkpoint, so a resumed run continues exactly.
      update: ``(model, optimizer, params, opt_state, collector, key, data_config) -> (params,
        opt_state, collector, aux)``: one training step, jitted by the loop: collect a rollout
        with ``params``, then the task's optimiser updates (``optimizer`` is the run's Optax
        transformation). ``aux`` holds float scalars, at least ``"loss"`` and ``"grad_norm"``;
        every one is logged to ``metrics.jsonl``.
      updates_per_step: optional ``data_config -> int``: how many times ``update`` calls
        ``optimizer.update`` in one training step (PPO: epochs × minibatches), so that the
        learning-rate schedule's warmup and decay span ``train.steps`` training steps; 1 when
        ``None``.
    """

    init: Callable[[nn.Module, Params, Any, jax.Array, int], Any]
    update: Callable[..., tuple[Params, Any, Any, dict[str, jax.Array]]]
    updates_per_step: Callable[[Any], int] | None = None


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
      loss: ``(outputs, batch) -> scalar`` training loss, from the model's outputs; ``None`` for
        an ``on_policy`` task, whose ``update`` computes its own.
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
      on_policy: optional :class:`OnPolicy`: the task makes its training data with the policy
        being trained (reinforcement learning). ``make_source`` then gives example batches (for
        ``model.init``) and the evaluation's batches, and ``loss`` is ``None``.
    """

    name: str
    data_config: type
    metric: str
    higher_is_better: bool
    make_source: Callable[[Any, int], Source]
    make_model: Callable[[Any, Any], nn.Module]
    loss: Callable[[Any, Batch], jax.Array] | None
    metric_sums: Callable[[nn.Module, Params, Batch], tuple[jax.Array, jax.Array]]
    baseline: Callable[[Splits], float]
    report: Callable[[nn.Module, Params, Splits, jax.Array, Path], dict[str, Any]] | None = None
    serve: Callable[[nn.Module, Params, Any], Signature] | None = None
    stream: Callable[[nn.Module, Params, Any], Signature] | None = None
    on_policy: OnPolicy | None = None


class Objective(TypedDict):
    """A task's metric and loss, the :class:`Task` fields of the same names, to pass as
    ``Task(..., **objective)``."""

    metric: str
    higher_is_better: bool
    loss: Callable[[Any, Batch], jax.Array]
    metric_sums: Callable[[nn.Module, Params, Batch], tuple[jax.Array, jax.Array]]


def _squared_error_sums(
    model: nn.Module, params: Params, batch: Batch
) -> tuple[jax.Array, jax.Array]:
    errors = (cast(jax.Array, model.apply(params, batch)) - batch["targets"]) ** 2
    return jnp.sum(errors), jnp.asarray(errors.size, jnp.float32)


def mean_squared_error() -> Objective:
    """A regression's objective, to pass as ``Task(..., **mean_squared_error())``: the model's
    outputs against ``batch["targets"]``, trained on and measured by their mean squared error
    (metric ``mse``, lower is better)."""
    return Objective(
        metric="mse",
        higher_is_better=False,
        loss=lambda outputs, batch: jnp.mean((outputs - batch["targets"]) ** 2),
        metric_sums=_squared_error_sums,
    )


GRU_FIELDS = (
    "cell",
    "hidden_size",
    "num_layers",
    "reset_after",
    "dropout_rate",
    "unroll",
    "chrono",
    "impl",
)
"""The ``model:`` config keys that every task's model passes to its recurrent layer."""

CELLS = ("gru", "mingru")
"""The values of ``model.cell``: :class:`gru_jax.linen.GRU` or
:class:`gru_jax.linen.MinGRUStack`."""

_GRU_ONLY = ("reset_after", "unroll")  # options the minGRU does not have


class RecurrentModel(nn.Module):
    """A task model's recurrent-layer options: the base of every built-in task's model.

    The options are keyword-only fields, after the model's own (positional) fields such as
    ``hidden_size``; :func:`make_rnn` builds the layer they describe from the model.

    Attributes:
      num_layers, reset_after, dropout_rate, unroll, chrono, cell, impl: the ``model:`` keys
        of :class:`gru_jax.train.ModelConfig` of the same names, with their defaults.
    """

    _: dataclasses.KW_ONLY
    num_layers: int = 1
    reset_after: bool = False
    dropout_rate: float = 0.0
    unroll: int = 1
    chrono: int | None = None
    cell: str = "gru"  # or "mingru": gru_jax.linen.MinGRUStack
    impl: str = "auto"  # or "xla", "pallas": gru_jax.linen.GRU's impl (none for the minGRU)

    @classmethod
    def from_config(cls, config: Any, **fields: Any) -> Self:
        """The model of a ``model:`` config section (its ``GRU_FIELDS``) with the model's
        own ``fields`` (``CopyModel.from_config(config.model, num_symbols=10, ...)``)."""
        return cls(**fields, **gru_fields(config))

    @nn.nowrap
    def recurrent_layer(self, **kwargs: Any) -> GRU | MinGRUStack:
        """The recurrent layer these fields describe: :func:`make_rnn` of the model."""
        return make_rnn(self, **kwargs)


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
    their defaults (``ModelConfig.validate`` says so for a config). ``impl`` is the GRU's too,
    but accepted with ``cell: mingru``, where it has no effect.

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
    fields.pop("impl")  # accepted for any cell; it picks the GRU's implementation only
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
