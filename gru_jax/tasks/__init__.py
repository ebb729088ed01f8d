"""Synthetic sequence tasks, generated on the fly and deterministic from a seed, and two
reinforcement-learning tasks, a recurrent agent trained by PPO on gymnax environments (the
``rl`` extra; :mod:`gru_jax.tasks.ppo`).

=============  ====================================================  ===============
 task           what the model must do                                metric
=============  ====================================================  ===============
 adding         sum the two marked values of a length-T sequence      MSE
 copy           repeat 10 symbols after a delay of T blanks           cross-entropy
 forecast       predict the next 16 samples of Mackey–Glass           MSE
 charlm         predict the next character of grammar-made English    bits per char
 seq2seq        reverse and translate tokens (encoder–decoder)        seq. accuracy
 ppo_memory     answer a bit seen 50 steps before (MemoryChain)       success rate
 ppo_cartpole   balance a pole (CartPole-v1)                          return
=============  ====================================================  ===============
"""

from __future__ import annotations

import importlib

import gru_jax._base.train_extra  # noqa: F401  (one ImportError naming the extra if it is missing)
from gru_jax.tasks._base import (
    Batch,
    Objective,
    OnPolicy,
    RecurrentModel,
    Source,
    Splits,
    Task,
    make_gru,
    make_rnn,
    mean_squared_error,
)
from gru_jax.tasks._serving import (
    Serving,
    Signature,
    carry_stream,
    predict_inputs,
    sequence_serving,
)

TASK_NAMES = ("adding", "copy", "forecast", "charlm", "seq2seq", "ppo_memory", "ppo_cartpole")
"""The built-in tasks, one module of :mod:`gru_jax.tasks` each."""

_REGISTERED: dict[str, Task] = {}

__all__ = [
    "TASK_NAMES",
    "Batch",
    "Objective",
    "OnPolicy",
    "RecurrentModel",
    "Serving",
    "Signature",
    "Source",
    "Splits",
    "Task",
    "carry_stream",
    "data_configs",
    "get_task",
    "make_gru",
    "make_rnn",
    "mean_squared_error",
    "predict_inputs",
    "register_task",
    "sequence_serving",
    "task_names",
]


def register_task(task: Task) -> Task:
    """Make ``task`` trainable by its name, in this process, like a built-in task.

    After ``register_task(task)``, a config whose ``task`` is ``task.name`` is parsed with
    ``task.data_config`` for its ``data`` section and trained by
    :func:`gru_jax.train.train_and_evaluate`. Registering the same name again replaces the
    earlier task; the built-in names cannot be taken.

    Args:
      task: the :class:`Task` to register.

    Returns:
      ``task``, so that ``TASK = register_task(Task(...))`` reads as a declaration.

    Raises:
      TypeError: if ``task`` is not a :class:`Task`.
      ValueError: if ``task.name`` is a built-in task's name.
    """
    if not isinstance(task, Task):
        raise TypeError(f"register_task: task must be a Task; got {type(task).__name__}")
    if task.name in TASK_NAMES:
        raise ValueError(
            f"register_task: task.name must not be a built-in task's name {list(TASK_NAMES)}; "
            f"got {task.name!r}"
        )
    _REGISTERED[task.name] = task
    return task


def task_names() -> tuple[str, ...]:
    """The names of every task that can be trained: the built-in ones, then the registered ones."""
    return TASK_NAMES + tuple(_REGISTERED)


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``: a built-in task or one given to :func:`register_task`."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; expected one of {list(task_names())}")
    task: Task = importlib.import_module(f"gru_jax.tasks.{name}").TASK
    return task


def data_configs() -> dict[str, type]:
    """Each task's ``data`` section dataclass, by task name."""
    return {name: get_task(name).data_config for name in task_names()}
