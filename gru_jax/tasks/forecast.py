"""Multi-step forecasting of the chaotic Mackey–Glass series (Mackey & Glass, 1977).

    dx/dt = β·x(t−τ) / (1 + x(t−τ)ⁿ) − γ·x(t),   β = 0.2, γ = 0.1, n = 10, τ = 17

integrated with Euler steps of ``dt`` from a random constant history per series (the seed fixes
every history), after a burn-in, and sampled every ``sample_every`` time units. The series are
standardised. A model sees ``context`` samples and predicts the next ``horizon`` at once; the
baseline is persistence (repeat the last seen value), whose MSE is computed over every window of
the evaluation series that starts at a multiple of ``horizon``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gru_jax.tasks._base import Batch, RecurrentModel, Source, Splits, Task, mean_squared_error
from gru_jax.tasks._plots import series_plot
from gru_jax.tasks._schema import ConfigError, check_ranges, setting
from gru_jax.tasks._serving import sequence_serving


@dataclasses.dataclass(frozen=True)
class ForecastData:
    """The ``data:`` section of a forecast config (Mackey–Glass, τ = 17).

    Attributes:
      context: samples the model reads.
      horizon: samples it predicts after them.
      sample_every: time units between two samples.
      num_series: independent series integrated per seed (windows are drawn from all of them).
      series_len: samples per series.
      dt: the integration step, in time units (at most 1: with larger steps the Euler scheme
        drifts away from the Mackey–Glass dynamics, and beyond about 10 it diverges).
      burn_in: time units integrated and discarded before the first sample.

    A window of ``context + horizon`` samples must fit in a series, and a sample must be at
    least one integration step after the previous one (``round(sample_every / dt) >= 1``):
    :meth:`validate` checks both.
    """

    context: int = setting(64, ge=1)  # samples seen
    horizon: int = setting(16, ge=1)  # samples predicted
    sample_every: float = setting(3.0, gt=0)  # time units between samples
    num_series: int = setting(32, ge=1)
    series_len: int = setting(1500, ge=2)  # samples per series
    dt: float = setting(0.1, gt=0, le=1)
    burn_in: float = setting(500.0, ge=0)  # time units discarded at the start

    def validate(self) -> None:
        """The constraints between keys, checked when the config is parsed."""
        if self.series_len < self.context + self.horizon:
            raise ConfigError(
                f"config keys 'data.series_len' ({self.series_len}), 'data.context' "
                f"({self.context}) and 'data.horizon' ({self.horizon}) must satisfy "
                "series_len >= context + horizon"
            )
        if round(self.sample_every / self.dt) < 1:
            raise ConfigError(
                f"config keys 'data.sample_every' ({self.sample_every}) and 'data.dt' "
                f"({self.dt}) must satisfy round(sample_every / dt) >= 1 (a sample at least "
                "every integration step)"
            )


def mackey_glass(
    seed: int,
    num_series: int,
    series_len: int,
    *,
    sample_every: float = 3.0,
    dt: float = 0.1,
    burn_in: float = 500.0,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    n: float = 10.0,
) -> np.ndarray:
    """``(num_series, series_len)`` float64 Mackey–Glass series (not standardised).

    Each series starts from a constant history drawn uniformly from ``[0.5, 1.3)``, integrated
    with Euler steps of ``dt`` (the delay and the sample spacing rounded to whole steps).

    Args:
      seed: the seed of ``numpy.random.default_rng`` that draws every series's history.
      num_series: how many independent series.
      series_len: samples per series.
      sample_every: time units between two samples.
      dt: the Euler integration step, in time units.
      burn_in: time units integrated and discarded before the first sample.
      tau: the delay ``τ`` of the equation, in time units.
      beta, gamma, n: the equation's ``β``, ``γ`` and exponent ``n``.

    Example:
      >>> from gru_jax.tasks.forecast import mackey_glass
      >>> x = mackey_glass(0, 2, 100)
      >>> x.shape, bool((x > 0).all() and (x < 2).all())
      ((2, 100), True)
    """
    rng = np.random.default_rng(seed)
    lag = round(tau / dt)
    stride = round(sample_every / dt)
    burn = round(burn_in / dt)
    total = burn + series_len * stride
    x = np.empty((lag + total, num_series))
    x[: lag + 1] = rng.uniform(0.5, 1.3, num_series)
    for t in range(lag, lag + total - 1):
        delayed = x[t - lag]
        x[t + 1] = x[t] + dt * (beta * delayed / (1.0 + delayed**n) - gamma * x[t])
    return x[lag + burn :: stride][:series_len].T.copy()


def _windows(series: jax.Array, key: jax.Array, batch_size: int, length: int) -> jax.Array:
    num_series, series_len = series.shape
    k_series, k_start = jax.random.split(key)
    rows = jax.random.randint(k_series, (batch_size,), 0, num_series)
    starts = jax.random.randint(k_start, (batch_size,), 0, series_len - length + 1)
    return jax.vmap(lambda r, s: jax.lax.dynamic_slice(series[r], (s,), (length,)))(rows, starts)


def _make_source(data: ForecastData, seed: int) -> Source:
    check_ranges(data, "data.")  # a config built in Python is checked as a parsed one
    raw = mackey_glass(
        seed,
        data.num_series,
        data.series_len,
        sample_every=data.sample_every,
        dt=data.dt,
        burn_in=data.burn_in,
    )
    standardised = ((raw - raw.mean()) / raw.std()).astype(np.float32)
    series = jnp.asarray(standardised)

    def batch(key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        window = _windows(series, key, batch_size, data.context + data.horizon)
        return {"inputs": window[:, : data.context, None], "targets": window[:, data.context :]}

    return Source(batch=batch, info={"series": standardised})


class ForecastModel(RecurrentModel):
    """GRU over the context, then a linear read-out of all ``horizon`` future values.

    The read-out predicts each future value's change from the last value seen, so persistence is
    its zero function.

    Attributes:
      horizon: how many future values it predicts, as the ``data:`` key of
        :class:`ForecastData`.
      hidden_size: the recurrent layer's state size (``model.hidden_size``); its other
        options are :class:`~gru_jax.tasks.RecurrentModel`'s keyword-only fields.
    """

    horizon: int
    hidden_size: int

    @nn.compact
    def __call__(self, batch: Batch, *, train: bool = False, carry: jax.Array | None = None) -> Any:
        """The forecast ``(B, horizon)`` from the state after the inputs; given a ``carry
        (L, B, H)`` (streaming, with ``batch["resets"]`` if any), ``(forecast, new carry)``."""
        _, h_n = self.recurrent_layer(return_carry=True)(
            batch["inputs"],
            resets=batch.get("resets"),
            initial_carry=carry,
            deterministic=not train,
        )
        # Predict the change from the last seen value; persistence is then the zero function.
        forecast = batch["inputs"][:, -1, :] + nn.Dense(self.horizon)(h_n[-1])
        return forecast if carry is None else (forecast, h_n)


def persistence_mse(series: np.ndarray, context: int, horizon: int) -> float:
    """MSE of repeating the last context value, over windows starting at multiples of horizon.

    Args:
      series: ``(S, N)`` float: ``S`` series of ``N`` samples (standardised, as the model sees
        them).
      context: samples a window shows before the ones to predict.
      horizon: samples predicted after them, and the spacing of the windows' starts.
    """
    errors = []
    for start in range(0, series.shape[1] - context - horizon + 1, horizon):
        last = series[:, start + context - 1, None]
        future = series[:, start + context : start + context + horizon]
        errors.append((future - last) ** 2)
    return float(np.mean(errors))


def _report(
    model: nn.Module, params: Any, data: Splits, key: jax.Array, workdir: Path
) -> dict[str, Any]:
    batch = data.eval.batch(key, 3)
    predicted = np.asarray(model.apply(params, batch))
    context = batch["inputs"].shape[1]
    past = np.arange(context)
    future = np.arange(context, context + predicted.shape[1])
    for i in range(3):
        series_plot(
            workdir / "plots" / f"forecast_{i}.png",
            {
                "context": (past, np.asarray(batch["inputs"][i, :, 0])),
                "truth": (future, np.asarray(batch["targets"][i])),
                "GRU forecast": (future, predicted[i]),
                "persistence": (future, np.full(future.shape, batch["inputs"][i, -1, 0])),
            },
            title="Mackey–Glass: multi-step forecast on fresh data",
            xlabel="sample",
            ylabel="standardised x",
        )
    return {}


_INPUTS = (("b", "t", 1), "float32")  # the inputs: the series

__all__ = ["TASK", "ForecastData", "ForecastModel", "mackey_glass", "persistence_mse"]

TASK = Task(
    name="forecast",
    data_config=ForecastData,
    **mean_squared_error(),
    make_source=_make_source,
    make_model=lambda model, data: ForecastModel.from_config(model, horizon=data.horizon),
    baseline=lambda data: persistence_mse(
        data.eval.info["series"], data.config.context, data.config.horizon
    ),
    report=_report,
    **sequence_serving(_INPUTS, "forecast"),
)
"""Mackey–Glass forecasting as a :class:`~gru_jax.tasks.Task`:
metric ``mse``, baseline persistence."""
