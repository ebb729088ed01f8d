"""Training configs: YAML files (parsed with ``yaml.safe_load``) checked against one schema.

A config has the sections ``model``, ``train`` and ``data`` (the last one's fields belong to the
task) and the top-level keys ``task``, ``seed`` and ``target``. ``--set key=value`` overrides use
dotted paths (``train.steps=100``) and YAML values.

The schema is the config dataclasses themselves: every field declares its default and the
values it accepts with :func:`setting` (a :class:`Setting`: bounds, ``one_of``, and whether the
key may change on ``--resume``), and a section may define ``validate(self)`` for constraints
between its keys. Parsing checks, in order, the keys (no unknown ones), the types, the ranges
and the cross-key constraints, all before anything is compiled; every mistake is a
:class:`ConfigError` whose one-line message names the key, what was expected and what was
given, which the CLI prints as one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gru_jax.tasks._schema import ConfigError, Setting, check_ranges, setting
from gru_jax.train._messages import did_you_mean, how_to_write, type_name, yaml_problem

_T = TypeVar("_T")

_SEED_MAX = 2**32 - 2
"""The largest seed: JAX keys hold 32 bits of it, and the evaluation data uses ``seed + 1``."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The recurrent model shared by every task (each task adds its own embedding and head).

    Each field declares its range with :func:`setting`: sizes at least 1, ``dropout_rate`` in
    ``[0, 1)``. ``cell`` picks the recurrent layer: ``"gru"`` (:class:`gru_jax.linen.GRU`) or
    ``"mingru"`` (:class:`gru_jax.linen.MinGRUStack`); ``reset_after`` and ``unroll`` are the
    GRU's alone, so with ``mingru`` they must keep their defaults; ``impl`` is accepted with
    ``mingru`` and has no effect there.

    Attributes:
      cell: the recurrent layer: ``"gru"`` (the default), the multi-layer
        :class:`gru_jax.linen.GRU`; ``"mingru"``, the multi-layer
        :class:`gru_jax.linen.MinGRUStack` (gates from the input alone), with the same carry,
        bidirectional encoder and one-step decoding.
      hidden_size: ``H``, the state size of each recurrent layer (default 64).
      num_layers: stacked recurrent layers (default 1).
      reset_after: GRU only. Which candidate form: ``False`` (the default) applies the reset
        gate before the recurrent matmul (Cho et al.), ``True`` after it (the cuDNN and torch
        form).
      embed_dim: the embedding size of token inputs (copy, charlm, seq2seq; default 16);
        adding and forecast read numbers and ignore it.
      dropout_rate: dropout between recurrent layers, in training only (default 0.0); it has
        no effect with one layer.
      unroll: GRU only. Steps per iteration of the compiled loop (default 1); changes speed,
        never values.
      chrono: chrono initialisation of the update-gate bias for memories of up to this many
        steps (``chrono=`` of :func:`gru_jax.init_gru` and :func:`gru_jax.init_mingru`), at
        least 3; ``None`` (the default) keeps the default initialisation.
      impl: GRU only, accepted with ``mingru`` without effect. Which implementation runs the
        recurrence (``impl=`` of :func:`gru_jax.gru_stack`): ``"xla"`` (a ``lax.scan``),
        ``"pallas"`` (a fused Pallas kernel: Triton on NVIDIA GPUs, interpreted on CPU), or
        ``"auto"`` (the default: chosen per platform and shape; ``"xla"`` wherever nothing was
        measured). It changes speed, not the parameters, so it may differ on ``--resume``;
        ``gru-jax export`` always uses ``"xla"``.
    """

    cell: str = setting("gru", one_of=("gru", "mingru"))
    hidden_size: int = setting(64, ge=1)
    num_layers: int = setting(1, ge=1)
    reset_after: bool = setting(False)
    embed_dim: int = setting(16, ge=1)  # for tasks with token inputs
    dropout_rate: float = setting(0.0, ge=0, lt=1)
    unroll: int = setting(1, ge=1)
    # Chrono initialisation of the update-gate bias for memories of up to this many steps
    # (gru_jax.init_gru's chrono); null: the default initialisation.
    chrono: int | None = setting(None, ge=3)
    # Which implementation runs the GRU's recurrence (gru_jax.gru's impl); no effect for mingru.
    # It changes speed, not the model, so a resumed run may change it (another device).
    impl: str = setting("auto", one_of=("auto", "xla", "pallas"), may_change=True)

    def validate(self) -> None:
        """The GRU-only keys keep their defaults when ``cell`` is ``mingru``."""
        if self.cell != "mingru":
            return
        if self.reset_after:
            raise ConfigError(
                "config keys 'model.cell' (mingru) and 'model.reset_after' (true) must satisfy "
                "reset_after == false unless cell == gru (a minGRU has no reset gate)"
            )
        if self.unroll != 1:
            raise ConfigError(
                f"config keys 'model.cell' (mingru) and 'model.unroll' ({self.unroll}) must "
                "satisfy unroll == 1 unless cell == gru (a minGRU picks its own scan)"
            )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The Optax optimiser (AdamW, warmup + cosine decay, global-norm clipping) and the loop.

    Each field declares its range with :func:`setting` (``learning_rate`` and ``grad_clip``
    above 0, counts at least 1, ``warmup_steps``, ``weight_decay`` and ``num_devices`` at least
    0, ``end_learning_rate_ratio`` in ``[0, 1]``); the keys of devices and cadence may change
    when a run is resumed.

    Attributes:
      steps: optimiser steps in the whole run (default 2000); the cosine schedule is laid out
        over them, so it may not change on ``--resume``.
      batch_size: sequences per step, over all devices together (default 64); divisible by
        the number of devices.
      learning_rate: the peak learning rate, reached at the end of the warmup (default 0.003).
      warmup_steps: steps of linear warmup from 0 (default 100; capped at ``steps - 1``, so
        that short runs stay valid).
      end_learning_rate_ratio: after the warmup the rate decays along a cosine to
        ``learning_rate * end_learning_rate_ratio`` at the last step (default 0.1).
      weight_decay: AdamW's decoupled weight decay (default 0.0).
      grad_clip: gradients are scaled down to this global norm when above it (default 1.0).
      skip_nonfinite: skip up to this many consecutive steps whose gradient holds an Inf or
        NaN, leaving the parameters and the optimiser state as they were
        (``optax.apply_if_finite``); 0 (the default) skips none.
      log_every: a line of ``metrics.jsonl`` (and a progress-bar update) every this many steps
        (default 50).
      eval_every: evaluate every this many steps (default 500); the end of the run is always
        evaluated.
      eval_batches: batches of ``batch_size`` evaluation sequences per evaluation, the same
        batches each time (default 8).
      checkpoint_every: write a checkpoint every this many steps (default 500), and at the
        end of every call.
      keep_checkpoints: how many of the latest checkpoints to keep (default 2).
      num_devices: devices to train on, data-parallel; 0 (the default) uses every local
        device.
    """

    steps: int = setting(2000, ge=1)
    batch_size: int = setting(64, ge=1)
    learning_rate: float = setting(3e-3, gt=0)
    warmup_steps: int = setting(100, ge=0)
    end_learning_rate_ratio: float = setting(0.1, ge=0, le=1)
    weight_decay: float = setting(0.0, ge=0)
    grad_clip: float = setting(1.0, gt=0)
    # Skip up to this many consecutive steps whose gradient is not finite (an exploding
    # gradient that overflowed): optax.apply_if_finite. 0 skips none.
    skip_nonfinite: int = setting(0, ge=0)
    log_every: int = setting(50, ge=1, may_change=True)
    eval_every: int = setting(500, ge=1, may_change=True)
    eval_batches: int = setting(8, ge=1, may_change=True)
    checkpoint_every: int = setting(500, ge=1, may_change=True)
    keep_checkpoints: int = setting(2, ge=1, may_change=True)
    num_devices: int = setting(0, ge=0, may_change=True)  # 0: every local device

    def validate(self) -> None:
        """Every device gets whole rows: ``batch_size`` divisible by a given ``num_devices``
        (with ``num_devices: 0`` the loop checks it against the devices it finds)."""
        if self.num_devices and self.batch_size % self.num_devices:
            raise ConfigError(
                f"config keys 'train.batch_size' ({self.batch_size}) and 'train.num_devices' "
                f"({self.num_devices}) must satisfy batch_size % num_devices == 0"
            )


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole training config. ``data`` is the task's own dataclass; ``seed`` is in
    ``[0, 2**32 - 2]`` (the evaluation data uses ``seed + 1``), ``target`` any finite float or
    ``None``; ``target_vs_baseline`` (above 0, or ``None``) states the target as that multiple
    of the task's baseline instead, resolved at the end of the run.

    Attributes:
      task: the task's name: a built-in task (``adding``, ``copy``, ``forecast``, ``charlm``,
        ``seq2seq``) or one given to :func:`gru_jax.tasks.register_task`; required.
      data: the ``data:`` section, an instance of the task's ``data_config`` dataclass.
      model: the ``model:`` section, a :class:`ModelConfig`.
      train: the ``train:`` section, a :class:`TrainConfig`.
      seed: the seed of everything random: parameter initialisation, training batches, dropout
        and evaluation batches (default 0).
      target: the metric value the run aims for; ``summary.json`` says whether it was reached
        (``None``, the default: no target).
      target_vs_baseline: the target as a multiple of the task's baseline instead (``0.5``:
        half the baseline's value); ``None`` (the default) when not used. Give ``target`` or
        this key, not both.
    """

    task: str
    data: Any
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    seed: int = setting(0, ge=0, le=_SEED_MAX)
    # The metric value the run aims for (None: no target); any finite float.
    target: float | None = setting(None, may_change=True)
    # Or the target as a multiple of the task's baseline (0.5: half the baseline's value).
    target_vs_baseline: float | None = setting(None, gt=0, may_change=True)

    def validate(self) -> None:
        """At most one of ``target`` and ``target_vs_baseline``."""
        if self.target is not None and self.target_vs_baseline is not None:
            raise ConfigError(
                f"config keys 'target' ({self.target}) and 'target_vs_baseline' "
                f"({self.target_vs_baseline}) exclude each other: give one"
            )


# ---------------------------------------------------------------------------------- checking


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """``value`` if it fits a field of type ``annotation``, converted where the type allows.

    An ``int`` is accepted for a ``float`` field, and so is a string that ``float()`` reads
    (YAML 1.1 reads ``1e-3`` as a string); floats must be finite. Other annotations than
    ``bool``, ``int``, ``float``, ``str`` and those with ``| None`` accept any value.

    Example:
      >>> _check_type("train.learning_rate", "1e-2", float)
      0.01
    """
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    if value is None and type(None) in options:
        return None
    inner = [a for a in options if a is not type(None)] if options else [annotation]
    if len(inner) != 1:
        return value
    converted = _converted(value, inner[0])
    if converted is _MISMATCH:
        advice = how_to_write(value, annotation)
        raise ConfigError(
            f"config key {key!r} must be {type_name(annotation)}; "
            f"got {type(value).__name__} {value!r}" + (f"; {advice}" if advice else "")
        )
    if isinstance(converted, float) and not math.isfinite(converted):
        expected = type_name(annotation).replace("a float", "a finite float", 1)
        raise ConfigError(
            f"config key {key!r} must be {expected}; got {type(value).__name__} {value!r}"
        )
    return converted


_MISMATCH = object()


def _converted(value: Any, annotation: Any) -> Any:
    """``value`` as a field of type ``annotation`` holds it (an int or a string that ``float()``
    reads becomes a float), or ``_MISMATCH``; types other than these four accept anything."""
    if annotation is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if annotation is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return _MISMATCH
        return _MISMATCH
    if annotation is str:
        return value if isinstance(value, str) else _MISMATCH
    return value


def _is_section(field: dataclasses.Field[Any]) -> bool:
    """Whether ``field`` holds a nested section (its default is a dataclass instance)."""
    return dataclasses.is_dataclass(field.default) and not isinstance(field.default, type)


def _nested_keys(
    fields: Mapping[str, dataclasses.Field[Any]], given: Mapping[str, Any], prefix: str
) -> list[str]:
    """The dotted keys of the sections nested in a section (its fields whose default is a
    section, and the sections in ``given``), for an unknown key that belongs to one of them."""
    keys = []
    for name, section in [*((n, f.default) for n, f in fields.items()), *given.items()]:
        if dataclasses.is_dataclass(section) and not isinstance(section, type):
            keys += [f"{prefix}{name}.{f.name}" for f in dataclasses.fields(section)]
    return keys


def _build(cls: type[_T], values: Any, prefix: str, given: Mapping[str, Any] | None = None) -> _T:
    """Instantiate the dataclass ``cls`` from a mapping, checking keys, types, ranges and
    ``validate()``; ``given`` are fields already built (not read from ``values``)."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"config key {prefix.rstrip('.') or '<root>'!r} must be a mapping; "
            f"got {type(values).__name__}"
        )
    given = dict(given or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in values:
        if key not in fields or key in given:
            expected = sorted(prefix + name for name in fields)
            raise ConfigError(
                f"unknown config key {prefix + str(key)!r}; expected one of {expected}"
                + did_you_mean(prefix + str(key), expected + _nested_keys(fields, given, prefix))
            )
    hints = typing.get_type_hints(cls)  # resolves string annotations (`from __future__`)
    kwargs = given
    for name, value in values.items():
        field = fields[name]
        if _is_section(field):
            kwargs[name] = _build(type(field.default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(prefix + name, value, hints[name])
    section = cls(**kwargs)
    check_ranges(section, prefix)
    return section


# ---------------------------------------------------------------------------------- reading


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {'.'.join(parents[: i + 1])!r} is not a section")
        node = child
    node[leaf] = value


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping a YAML file holds (``{}`` for an empty file)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config file {str(path)!r} does not exist") from e
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {yaml_problem(e)}") from e
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping; got {type(raw).__name__}"
        )
    return raw


def _apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> None:
    """Apply ``KEY=VALUE`` overrides (dotted keys, YAML values) to ``raw`` in place."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE; got {item!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: value {value!r} is not valid YAML") from e
        _set_dotted(raw, key, parsed)


def parse_config(raw: dict[str, Any], data_configs: Mapping[str, type] | None = None) -> Config:
    """Build a :class:`Config` from a plain mapping, checking keys, types, ranges and cross-key
    constraints.

    ``data_configs`` maps task names to the dataclass of their ``data`` section; by default the
    registry of :mod:`gru_jax.tasks` (only the chosen task's module is imported).

    Args:
      raw: the config as plain data, e.g. what ``yaml.safe_load`` reads from a config file.
      data_configs: the task names to their ``data`` dataclass (``None``: every task of
        :func:`gru_jax.tasks.task_names`).

    Raises:
      ConfigError: the first mistake, in one line naming the key.
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
    if not isinstance(task, str) or task not in names:
        close = difflib.get_close_matches(str(task), sorted(names), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"config key 'task' must be one of {sorted(names)}; got {task!r}{hint}")
    data: Any = _build(data_config(task), raw.pop("data", {}), "data.")
    return _build(Config, raw, "", given={"task": task, "data": data})


def load_config(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    data_configs: Mapping[str, type] | None = None,
) -> Config:
    """Read a YAML config, apply ``key=value`` overrides, and check it.

    Args:
      path: the YAML file.
      overrides: ``KEY=VALUE`` strings, as ``--set`` takes them: a dotted key
        (``train.steps``) and a YAML value, applied in order.
      data_configs: the task names to their ``data`` dataclass, as in :func:`parse_config`.

    Raises:
      ConfigError: the first mistake (a missing or unreadable file, YAML that does not parse,
        a bad key or value), in one line.

    Example:
      >>> from gru_jax.train import load_config
      >>> cfg = load_config("configs/adding.yaml", ["train.steps=10", "model.hidden_size=8"])
      >>> cfg.task, cfg.train.steps, cfg.model.hidden_size, cfg.data.seq_len
      ('adding', 10, 8, 100)
    """
    raw = _read_yaml(Path(path))
    _apply_overrides(raw, overrides)
    return parse_config(raw, data_configs)


def load_settings(
    cls: type[_T], path: str | Path | None = None, overrides: Sequence[str] = ()
) -> _T:
    """One frozen dataclass of settings (fields declared with :func:`setting`) from an optional
    YAML file and ``key=value`` overrides, checked as a config section is: unknown keys, types,
    ranges and ``validate()``. For scripts with a flat config of their own (the examples).

    Args:
      cls: the frozen dataclass to build; a key that neither the file nor ``overrides``
        gives takes its field's default.
      path: a YAML file of its keys (``None``: none, only the defaults and ``overrides``).
      overrides: ``KEY=VALUE`` strings with YAML values, applied after the file.

    Raises:
      ConfigError: the first mistake, in one line naming the key.

    Example:
      >>> import dataclasses
      >>> from gru_jax.train import ConfigError, load_settings, setting
      >>> @dataclasses.dataclass(frozen=True)
      ... class Demo:
      ...     batch: int = setting(16, ge=1)
      ...     rate: float = setting(0.1, gt=0)
      >>> load_settings(Demo, overrides=["batch=4", "rate=1e-3"])
      Demo(batch=4, rate=0.001)
      >>> try:
      ...     load_settings(Demo, overrides=["batch=0"])
      ... except ConfigError as e:
      ...     print(e)
      config key 'batch' must be an int >= 1; got 0
    """
    raw = {} if path is None else _read_yaml(Path(path))
    _apply_overrides(raw, overrides)
    return _build(cls, raw, "")


def config_to_dict(config: Config) -> dict[str, Any]:
    """A config as plain data (for ``config.yaml`` in the workdir and for JSON)."""
    return dataclasses.asdict(config)


# ---------------------------------------------------------------------------------- resuming


def _differences(saved: Any, current: Any, prefix: str, skip: tuple[str, ...] = ()) -> list[str]:
    """The dotted keys of the section ``current`` whose saved value differs (``may_change``
    keys excepted); a key missing from ``saved`` compares as the field's default, a saved key
    the section lacks differs."""
    where = prefix.rstrip(".")
    if saved is None:
        saved = {}
    if not isinstance(saved, Mapping):
        return [where]
    fields = {f.name: f for f in dataclasses.fields(current) if f.name not in skip}
    hints = typing.get_type_hints(type(current))
    differing = [prefix + str(name) for name in saved if name not in fields and name not in skip]
    for name, field in fields.items():
        key, value = prefix + name, getattr(current, name)
        if _is_section(field):
            differing += _differences(saved.get(name), value, key + ".")
            continue
        declared = Setting.of(field)
        if declared is not None and declared.may_change:
            continue
        if name not in saved:
            if field.default is dataclasses.MISSING or field.default != value:
                differing.append(key)
            continue
        try:
            before = _check_type(key, saved[name], hints[name])
        except ConfigError:
            differing.append(key)
            continue
        if before != value:
            differing.append(key)
    return differing


def config_differences(
    saved: Mapping[str, Any], config: Config, *, evaluating: bool = False
) -> list[str]:
    """The keys in which ``config`` differs from a run's saved config, where that matters.

    ``saved`` is the plain mapping read from a run's ``config.yaml`` (what
    :func:`config_to_dict` wrote, perhaps by an older version): its values are read as a config
    is parsed (so ``0.003`` and ``"3e-3"`` are equal), and a key it lacks compares as the
    field's default. A key whose :class:`Setting` has ``may_change`` (devices, cadence,
    ``eval_batches``, ``target``, report-only keys such as charlm's ``prompt``) may differ; so
    may, with ``evaluating=True`` (``gru-jax eval``), the whole ``train`` section, ``seed`` and
    ``target``: only the task, the model and the data matter then. A saved key that the
    current schema does not have is reported (its effect cannot be reproduced). When the task
    differs, ``task`` is reported and the ``data`` sections, which belong to different tasks,
    are not compared.

    Returns:
      The differing dotted keys: ``task`` first when the task differs (what matters most), then
      the others sorted; ``[]`` when the run may continue with ``config``.

    Example:
      >>> from gru_jax.train import config_differences, config_to_dict, load_config
      >>> config = load_config("configs/adding.yaml")
      >>> saved = config_to_dict(config)
      >>> config_differences(saved, config)
      []
      >>> changed = load_config(
      ...     "configs/adding.yaml", ["model.hidden_size=32", "train.log_every=10"])
      >>> config_differences(saved, changed)
      ['model.hidden_size']
      >>> config_differences(saved, load_config("configs/adding.yaml", ["train.steps=10"]))
      ['train.steps']
      >>> config_differences(
      ...     saved, load_config("configs/adding.yaml", ["train.steps=10"]), evaluating=True)
      []
    """
    differing = _differences(saved, config, "", skip=("task", "data"))
    if saved.get("task") != config.task:
        differing.append("task")
    else:
        differing += _differences(saved.get("data"), config.data, "data.")
    if evaluating:
        ignored = ("seed", "target", "target_vs_baseline", "train")
        differing = [k for k in differing if k.split(".")[0] not in ignored]
    return sorted(differing, key=lambda key: (key != "task", key))


__all__ = [
    "Config",
    "ConfigError",
    "ModelConfig",
    "Setting",
    "TrainConfig",
    "config_differences",
    "config_to_dict",
    "load_config",
    "load_settings",
    "parse_config",
    "setting",
]
