"""Training configs: YAML files (parsed with ``yaml.safe_load``) checked against typed dataclasses.

A config has the sections ``model``, ``train`` and ``data`` (the last one's fields belong to the
task) and the top-level keys ``task``, ``seed`` and ``target``. ``--set key=value`` overrides use
dotted paths (``train.steps=100``) and YAML values. Every mistake — an unknown key, a wrong type,
a missing file — is a :class:`ConfigError` naming the key, which the CLI prints as one line.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config that cannot be used: the message names the key and what was expected."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The GRU model shared by every task (each task adds its own embedding and head)."""

    hidden_size: int = 64
    num_layers: int = 1
    reset_after: bool = False
    embed_dim: int = 16  # for tasks with token inputs
    dropout_rate: float = 0.0
    unroll: int = 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The Optax optimiser (AdamW, warmup + cosine decay, global-norm clipping) and the loop."""

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    end_learning_rate_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 50
    eval_every: int = 500
    eval_batches: int = 8
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    num_devices: int = 0  # 0: every local device


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole training config. ``data`` is the task's own dataclass."""

    task: str
    data: Any
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    seed: int = 0
    target: float | None = None  # the metric value the run aims for (None: no target)


def _check_value(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field's type; ints are accepted where floats are expected."""
    if isinstance(annotation, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        (annotation,) = (a for a in options if a is not type(None))
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif annotation is str:
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise ConfigError(
            f"config key {key!r} must be of type {annotation.__name__}; "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def _build(cls: type, values: Any, prefix: str) -> Any:
    """Instantiate the dataclass ``cls`` from a mapping, checking every key and type."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"config key {prefix.rstrip('.') or '<root>'!r} must be a mapping; "
            f"got {type(values).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)  # resolves string annotations (`from __future__`)
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"unknown config key {prefix + str(key)!r}; expected one of "
                f"{sorted(prefix + name for name in fields)}"
            )
    kwargs = {}
    for name, value in values.items():
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(prefix + name, value, hints[name])
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {'.'.join(parents[: i + 1])!r} is not a section")
        node = child
    node[leaf] = value


def parse_config(raw: dict[str, Any], data_configs: Mapping[str, type] | None = None) -> Config:
    """Build a :class:`Config` from a plain mapping.

    ``data_configs`` maps task names to the dataclass of their ``data`` section; by default the
    registry of :mod:`gru_jax.tasks` (only the chosen task's module is imported).
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping; got {type(raw).__name__}")
    if data_configs is None:
        from gru_jax.tasks import get_task, task_names

        names, data_config = task_names(), lambda task: get_task(task).data_config
    else:
        names, data_config = tuple(data_configs), data_configs.__getitem__
    raw = dict(raw)
    if "task" not in raw:
        raise ConfigError(f"missing config key 'task'; expected one of {sorted(names)}")
    task = raw.pop("task")
    if task not in names:
        raise ConfigError(f"config key 'task' must be one of {sorted(names)}; got {task!r}")
    data = _build(data_config(task), raw.pop("data", {}), "data.")
    rest = _build(_Rest, raw, "")
    return Config(
        task=task, data=data, model=rest.model, train=rest.train, seed=rest.seed, target=rest.target
    )


@dataclasses.dataclass(frozen=True)
class _Rest:
    """The keys of :class:`Config` other than ``task`` and ``data``, for checking."""

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    seed: int = 0
    target: float | None = None


def load_config(
    path: "str | Path",
    overrides: "list[str] | tuple[str, ...]" = (),
    data_configs: "Mapping[str, type] | None" = None,
) -> Config:
    """Read a YAML config, apply ``key=value`` overrides, and check it.

    Example:
      >>> from gru_jax.train import load_config
      >>> cfg = load_config("configs/adding.yaml", ["train.steps=10", "model.hidden_size=8"])
      >>> cfg.task, cfg.train.steps, cfg.model.hidden_size, cfg.data.seq_len
      ('adding', 10, 8, 100)
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config file {str(path)!r} does not exist") from e
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from e
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping; got {type(raw).__name__}"
        )
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE; got {item!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: value {value!r} is not valid YAML") from e
        _set_dotted(raw, key, parsed)
    return parse_config(raw, data_configs)


def config_to_dict(config: Config) -> dict[str, Any]:
    """A config as plain data (for ``config.yaml`` in the workdir and for JSON)."""
    return dataclasses.asdict(config)
