"""Synthetic sequence tasks, generated on the fly and deterministic from a seed.

=========  ====================================================  ===============
 task       what the model must do                                metric
=========  ====================================================  ===============
 adding     sum the two marked values of a length-T sequence      MSE
 copy       repeat 10 symbols after a delay of T blanks           cross-entropy
 forecast   predict the next 16 samples of Mackey–Glass           MSE
 charlm     predict the next character of grammar-made English    bits per char
 seq2seq    reverse and translate tokens (encoder–decoder)        seq. accuracy
=========  ====================================================  ===============
"""

from __future__ import annotations

import importlib

from gru_jax.tasks._base import Batch, Source, Splits, Task

TASK_NAMES = ("adding", "copy", "forecast", "charlm", "seq2seq")

__all__ = ["TASK_NAMES", "Batch", "Source", "Splits", "Task", "data_configs", "get_task"]


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``."""
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; expected one of {list(TASK_NAMES)}")
    return importlib.import_module(f"gru_jax.tasks.{name}").TASK


def data_configs() -> dict[str, type]:
    """Each task's ``data`` section dataclass, by task name."""
    return {name: get_task(name).data_config for name in TASK_NAMES}
