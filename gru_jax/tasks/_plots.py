"""PNG plots of a run, with matplotlib's non-interactive Agg backend (imported lazily).

The tasks' reports draw their plots with these, and the training loop its loss curve;
:mod:`gru_jax.train` re-exports them.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)


def loss_plot(
    metrics_path: Path,
    path: Path,
    *,
    metric: str,
    baseline: float | None = None,
    target: float | None = None,
) -> None:
    """Training loss and evaluation metric against step, from ``metrics.jsonl``.

    The y axis is logarithmic when the positive values span more than a factor of 30.

    Args:
      metrics_path: the run's ``metrics.jsonl``: its lines with ``loss`` give the training
        curve, those with ``eval_<metric>`` the evaluation curve.
      path: the PNG file to write (its folder is created).
      metric: the evaluation metric's name, e.g. ``"mse"``.
      baseline: drawn as a dashed horizontal line (``None``: no line).
      target: drawn as a dotted horizontal line (``None``: no line).
    """
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r[f"eval_{metric}"]) for r in rows if f"eval_{metric}" in r]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss", lw=1.2)
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label=f"eval {metric}", lw=1.2, ms=3)
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", lw=1, label=f"baseline {baseline:.3g}")
    if target is not None:
        ax.axhline(target, color="green", ls=":", lw=1, label=f"target {target:.3g}")
    values = [v for _, v in train + evals if v > 0]
    if values and max(values) / min(values) > 30:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss and eval {metric}")
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def scatter_plot(
    path: Path,
    truth: npt.ArrayLike,
    predicted: npt.ArrayLike,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> None:
    """Predicted against true values, with the identity line.

    Args:
      path: the PNG file to write (its folder is created).
      truth: the true values, any shape.
      predicted: the predicted values, the shape of ``truth``.
      title: the plot's title.
      xlabel: the x axis's label (the true values).
      ylabel: the y axis's label (the predicted values).
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.scatter(truth, predicted, s=6, alpha=0.6)
    lo, hi = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], color="gray", lw=1)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def series_plot(
    path: Path,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    title: str,
    xlabel: str = "t",
    ylabel: str = "value",
) -> None:
    """Several named ``(x, y)`` curves on one axis.

    Args:
      path: the PNG file to write (its folder is created).
      curves: each curve's legend label to its ``(x, y)`` arrays, of one length each.
      title: the plot's title.
      xlabel: the x axis's label.
      ylabel: the y axis's label.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    for label, (x, y) in curves.items():
        ax.plot(np.asarray(x), np.asarray(y), label=label, lw=1.2)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
