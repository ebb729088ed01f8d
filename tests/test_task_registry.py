"""Tasks of one's own: gru_jax.tasks.register_task makes a Task trainable by name.

Training such a task end to end is the docs page docs/custom-task.md, whose code runs as a test
(tests/test_docs.py); here, the registry's contract and its errors.
"""

import dataclasses

import pytest

from gru_jax import tasks
from gru_jax.tasks import Task, get_task, register_task, task_names
from gru_jax.train import ConfigError, parse_config


@dataclasses.dataclass(frozen=True)
class _Data:
    """A data section."""

    seq_len: int = 5


def _task(name: str) -> Task:
    adding = get_task("adding")
    return dataclasses.replace(adding, name=name, data_config=_Data)


def test_registered_task_is_found_and_parsed(registry):
    task = _task("mine")
    assert register_task(task) is task
    assert get_task("mine") is task
    assert task_names()[: len(tasks.TASK_NAMES)] == tasks.TASK_NAMES and task_names()[-1] == "mine"
    assert tasks.data_configs()["mine"] is _Data
    config = parse_config({"task": "mine", "data": {"seq_len": 7}})
    assert config.task == "mine" and config.data == _Data(seq_len=7)
    with pytest.raises(ConfigError, match=r"config key 'data.seq_len' must be"):
        parse_config({"task": "mine", "data": {"seq_len": "long"}})


def test_registering_again_replaces(registry):
    register_task(_task("mine"))
    second = register_task(_task("mine"))
    assert get_task("mine") is second and task_names().count("mine") == 1


def test_register_task_errors(registry):
    with pytest.raises(TypeError, match="register_task: task must be a Task; got dict"):
        register_task({"name": "mine"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"must not be a built-in task's name.*got 'copy'"):
        register_task(_task("copy"))
    with pytest.raises(ValueError, match="unknown task 'nope'; expected one of"):
        get_task("nope")
    with pytest.raises(ConfigError, match="config key 'task' must be one of"):
        parse_config({"task": "nope"})


def test_make_gru_is_deprecated_for_make_rnn():
    from gru_jax.linen import GRU, MinGRUStack
    from gru_jax.train import ModelConfig

    config = ModelConfig(hidden_size=8)
    with pytest.warns(
        DeprecationWarning, match=r"^gru_jax.tasks.make_gru is deprecated: use make_rnn"
    ):
        layer = tasks.make_gru(config, return_carry=True)
    assert layer == tasks.make_rnn(config, return_carry=True)
    assert isinstance(layer, GRU) and layer.return_carry
    with pytest.warns(DeprecationWarning):
        assert isinstance(tasks.make_gru(ModelConfig(cell="mingru")), MinGRUStack)
