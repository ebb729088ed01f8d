"""The adding problem (Hochreiter & Schmidhuber, 1997; Le et al., 2015).

Each step's input is a pair ``(value, marker)``: values are U[0, 1], and exactly two markers are
1, one in each half of the sequence. The target is the sum of the two marked values. Predicting
the mean, 1, gives an MSE of Var(u₁ + u₂) = 2/12 ≈ 0.167: that is the baseline; a model must
remember the marked values across up to ``T`` steps to beat it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from gru_jax.tasks._base import Batch, RecurrentModel, Source, Splits, Task, mean_squared_error
from gru_jax.tasks._plots import scatter_plot
from gru_jax.tasks._schema import check_ranges, setting
from gru_jax.tasks._serving import sequence_serving


@dataclasses.dataclass(frozen=True)
class AddingData:
    """The ``data:`` section of an adding config.

    Attributes:
      seq_len: ``T``, the sequence length; the marked values lie one in each half.
    """

    seq_len: int = setting(100, ge=2)  # T; one marked value in each half


def adding_batch(key: jax.Array, batch_size: int, seq_len: int) -> dict[str, jax.Array]:
    """``inputs (B, T, 2)`` float32 and ``targets (B,)``, deterministic in ``key``.

    Args:
      key: the PRNG key that draws the values and the two marked steps.
      batch_size: ``B``, the sequences in the batch.
      seq_len: ``T``, the steps of each sequence; one marked step lies in each half.

    Example:
      >>> import jax
      >>> from gru_jax.tasks.adding import adding_batch
      >>> b = adding_batch(jax.random.key(0), 4, 10)
      >>> b["inputs"].shape, b["targets"].shape, b["inputs"][..., 1].sum(axis=1).tolist()
      ((4, 10, 2), (4,), [2.0, 2.0, 2.0, 2.0])
    """
    k_values, k_first, k_second = jax.random.split(key, 3)
    half = seq_len // 2
    values = jax.random.uniform(k_values, (batch_size, seq_len))
    first = jax.random.randint(k_first, (batch_size,), 0, half)
    second = jax.random.randint(k_second, (batch_size,), half, seq_len)
    steps = jnp.arange(seq_len)
    markers = ((steps == first[:, None]) | (steps == second[:, None])).astype(jnp.float32)
    return {
        "inputs": jnp.stack([values, markers], axis=-1),
        "targets": jnp.sum(values * markers, axis=1),
    }


class AddingModel(RecurrentModel):
    """GRU over the sequence, then a linear read-out of the last layer's final state.

    Attributes:
      hidden_size: the recurrent layer's state size (``model.hidden_size``); its other
        options are :class:`~gru_jax.tasks.RecurrentModel`'s keyword-only fields.
    """

    hidden_size: int

    @nn.compact
    def __call__(self, batch: Batch, *, train: bool = False, carry: jax.Array | None = None) -> Any:
        """The predicted sums ``(B,)``; given a ``carry (L, B, H)`` (streaming: the state after
        the previous chunk, and ``batch["resets"]`` if any), ``(sums, new carry)``."""
        _, h_n = self.recurrent_layer(return_carry=True)(
            batch["inputs"],
            resets=batch.get("resets"),
            initial_carry=carry,
            deterministic=not train,
        )
        sums = nn.Dense(1)(h_n[-1])[..., 0]
        return sums if carry is None else (sums, h_n)


def _make_source(data: AddingData, seed: int) -> Source:
    del seed  # every batch is a function of its key alone
    check_ranges(data, "data.")  # a config built in Python is checked as a parsed one
    return Source(batch=lambda key, batch_size: adding_batch(key, batch_size, data.seq_len))


def _make_model(model: Any, data: AddingData) -> nn.Module:
    return AddingModel.from_config(model)


def _report(
    model: nn.Module, params: Any, data: Splits, key: jax.Array, workdir: Path
) -> dict[str, Any]:
    batch = data.eval.batch(key, 256)
    predictions = cast(jax.Array, model.apply(params, batch))
    scatter_plot(
        workdir / "plots" / "predictions.png",
        batch["targets"],
        predictions,
        title="Adding problem: predicted vs true sums (fresh data)",
        xlabel="true sum",
        ylabel="predicted sum",
    )
    return {}


_INPUTS = (("b", "t", 2), "float32")  # the inputs: values and markers

__all__ = ["TASK", "AddingData", "AddingModel", "adding_batch"]

TASK = Task(
    name="adding",
    data_config=AddingData,
    **mean_squared_error(),
    make_source=_make_source,
    make_model=_make_model,
    baseline=lambda data: 2.0 / 12.0,
    report=_report,
    **sequence_serving(_INPUTS, "sum"),
)
"""The adding problem as a :class:`~gru_jax.tasks.Task`: metric ``mse``, baseline 2/12."""
