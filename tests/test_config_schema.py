"""One config schema: every key declares its range beside its field, and every mistake is a line.

* Every key of the loop's sections, of each built-in task's ``data:`` section and of the two
  example scripts' configs declares a :class:`gru_jax.train.Setting` (a number, a bound), so
  that a key added later without one fails here.
* Every key of every config in ``configs/`` (for a task config, every key of its task's schema,
  not only those the file writes), given a value of the wrong type and one out of its range,
  through the command's own ``main(argv)``: exit code 2, one line on stderr naming the key, what
  was expected and what was given, and nothing reaches the training loop. A few cases run as
  real processes too.
* Constraints between keys, float strings (YAML 1.1 reads ``1e-3`` as a string),
  :func:`gru_jax.train.config_differences` (what may change on ``--resume``), registered tasks,
  and the range column of the tables in ``docs/training.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

import gru_jax.train
from gru_jax import tasks
from gru_jax.cli import main as cli_main
from gru_jax.train import (
    Config,
    ConfigError,
    ModelConfig,
    Setting,
    TrainConfig,
    config_differences,
    config_to_dict,
    load_config,
    load_settings,
    parse_config,
    setting,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
EXAMPLES = {"core_demo": "DemoConfig", "mingru_long": "LongConfig"}
"""The example scripts with a config of their own in ``configs/``, and their settings class."""

STRUCTURE = {(Config, "task"), (Config, "data")}
"""Fields that are not keys with a value: the task's name (checked against the registry) and
the ``data`` section (the task's own dataclass)."""

UNBOUNDED = {(Config, "target")}
"""Numbers that accept any finite value: the target is on the scale of the task's metric."""


@functools.cache
def example(name: str) -> types.ModuleType:
    """``examples/<name>.py`` as a module, registered so that its dataclasses resolve."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", ROOT / f"examples/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def sections() -> dict[str, type]:
    """Every config section of the schema, by a label: the loop's own, each built-in task's
    ``data:`` section, and each example's settings."""
    found: dict[str, type] = {"top": Config, "model": ModelConfig, "train": TrainConfig}
    for name in tasks.TASK_NAMES:
        found[f"data of {name}"] = tasks.get_task(name).data_config
    for name, cls in EXAMPLES.items():
        found[f"example {name}"] = getattr(example(name), cls)
    return found


def is_section(field: dataclasses.Field[Any]) -> bool:
    return dataclasses.is_dataclass(field.default) and not isinstance(field.default, type)


def keys(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The fields of ``cls`` that are keys with a value (no sections), with their types."""
    hints = typing.get_type_hints(cls)
    return [
        (f, hints[f.name])
        for f in dataclasses.fields(cls)
        if not is_section(f) and (cls, f.name) not in STRUCTURE
    ]


def base_type(annotation: Any) -> type:
    """``int`` for ``int``, ``float`` for ``float | None``."""
    if isinstance(annotation, types.UnionType):
        (annotation,) = (a for a in typing.get_args(annotation) if a is not type(None))
    assert annotation in (int, float, bool, str), annotation
    return typing.cast(type, annotation)


# ------------------------------------------------------------------ every key has a setting


@pytest.mark.parametrize("label", sorted(sections()))
def test_every_key_declares_a_setting_with_a_range(label: str):
    cls = sections()[label]
    for field, annotation in keys(cls):
        declared = Setting.of(field)
        assert declared is not None, f"{label}: {field.name} has no setting(...)"
        if base_type(annotation) in (int, float) and (cls, field.name) not in UNBOUNDED:
            assert declared.bounded, f"{label}: the number {field.name} has no bound"
        assert declared.contains(field.default), f"{label}: the default of {field.name}"
    if cls is not Config:  # the defaults pass the ranges and validate(), as a parsed config
        assert load_settings(cls) == cls()


def test_setting_refuses_contradictions():
    with pytest.raises(ValueError, match="at most one lower bound"):
        setting(1, ge=0, gt=0)
    with pytest.raises(ValueError, match="at most one upper bound"):
        setting(1, le=2, lt=2)
    with pytest.raises(ValueError, match=r"setting: the default 0 is not >= 1"):
        setting(0, ge=1)
    with pytest.raises(ValueError, match=r"setting: the default 'x' is not one of \['a'\]"):
        setting("x", one_of=["a"])


def test_ranges_in_messages():
    assert Setting(ge=1).describe() == ">= 1"
    assert Setting(gt=0).describe() == "> 0"
    assert Setting(le=26).describe() == "<= 26"
    assert Setting(lt=1.5).describe() == "< 1.5"
    assert Setting(ge=0, lt=1).describe() == "in [0, 1)"
    assert Setting(gt=0.0, le=1.0).describe() == "in (0, 1]"
    assert Setting().describe() == "any" and not Setting().bounded
    with pytest.raises(ConfigError, match=r"^config key 'a.b' must be a float > 0; got -1.0$"):
        Setting(gt=0).check("a.b", -1.0)


# ------------------------------------------------------------------ every key of every config


@dataclasses.dataclass(frozen=True)
class Bad:
    """``--set key=text`` and the parts its one line must hold."""

    config: str
    key: str
    text: str
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.config}:{self.key}={self.text}"


def _article(kind: type) -> str:
    return f"{'an' if kind.__name__[0] in 'aeiou' else 'a'} {kind.__name__}"


def outside(declared: Setting, kind: type) -> list[Any]:
    """Values of type ``kind`` just outside each bound of ``declared`` (or not in ``one_of``)."""
    if declared.one_of is not None:
        return ["|".join(map(str, declared.one_of))]
    step = 1 if kind is int else 0.5
    values = []
    if declared.ge is not None:
        values.append(kind(declared.ge - step))
    if declared.gt is not None:
        values.append(kind(declared.gt))
    if declared.le is not None:
        values.append(kind(declared.le + step))
    if declared.lt is not None:
        values.append(kind(declared.lt))
    return values


def bad_values(config: str, key: str, annotation: Any, declared: Setting) -> list[Bad]:
    """A value of the wrong type, and one outside each bound."""
    kind = base_type(annotation)
    wrong = "3" if kind in (bool, str) else "abc"
    value = yaml.safe_load(wrong)
    expected = _article(kind) + (" or null" if isinstance(annotation, types.UnionType) else "")
    cases = [
        Bad(
            config,
            key,
            wrong,
            (f"config key {key!r} must be {expected}; ", f"; got {type(value).__name__} {value!r}"),
        )
    ]
    for value in outside(declared, kind):
        text = value if isinstance(value, str) else repr(value)
        parts = (f"config key {key!r} must be ", declared.describe(), f"; got {value!r}")
        cases.append(Bad(config, key, text, parts))
    return cases


def task_config_cases() -> list[Bad]:
    """For every task config: every key of its task's schema, each with its bad values."""
    cases = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if "task" not in raw:
            continue
        names = sorted(tasks.task_names())
        for text in ("3", "poetry"):
            got = yaml.safe_load(text)
            parts = (f"config key 'task' must be one of {names}; got {got!r}",)
            cases.append(Bad(path.name, "task", text, parts))
        schema = {
            "": Config,
            "model.": ModelConfig,
            "train.": TrainConfig,
            "data.": tasks.get_task(raw["task"]).data_config,
        }
        for prefix, cls in schema.items():
            for field, annotation in keys(cls):
                declared = Setting.of(field)
                assert declared is not None
                cases += bad_values(path.name, prefix + field.name, annotation, declared)
    return cases


def example_config_cases() -> list[Bad]:
    cases = []
    for name, cls_name in EXAMPLES.items():
        for field, annotation in keys(getattr(example(name), cls_name)):
            declared = Setting.of(field)
            assert declared is not None
            cases += bad_values(f"{name}.yaml", field.name, annotation, declared)
    return cases


TASK_CASES = task_config_cases()
EXAMPLE_CASES = example_config_cases()


def test_every_config_is_walked():
    walked = {c.config for c in TASK_CASES + EXAMPLE_CASES}
    assert walked == {p.name for p in CONFIGS.glob("*.yaml")}
    assert len(TASK_CASES) > 250  # ~45 cases for each of the 6 task configs


def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a bad config reached the training loop")


def _one_line(err: str, prefix: str, case: Bad) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    line = lines[0]
    assert line.startswith(prefix), line
    for part in case.parts:
        assert part in line, (part, line)
    return line


@pytest.mark.parametrize("case", TASK_CASES, ids=str)
def test_every_key_of_every_task_config_fails_in_one_line(
    case: Bad, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(gru_jax.train, "train_and_evaluate", _never)
    argv = ["train", str(CONFIGS / case.config), "--workdir", str(tmp_path)]
    code = cli_main([*argv, "--set", f"{case.key}={case.text}"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    _one_line(err, "gru-jax: error: ", case)
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("case", EXAMPLE_CASES, ids=str)
def test_every_key_of_every_example_config_fails_in_one_line(
    case: Bad, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    name = case.config.removesuffix(".yaml")
    module = example(name)
    for runner in ("median_ms", "train"):  # the work each example does after its config
        if hasattr(module, runner):
            monkeypatch.setattr(module, runner, _never)
    code = module.main(["--config", str(CONFIGS / case.config), "--set", f"{case.key}={case.text}"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    _one_line(err, f"{name}: error: ", case)


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (
            [
                sys.executable,
                "-m",
                "gru_jax.cli",
                "train",
                "configs/adding.yaml",
                "--set",
                "model.hidden_size=0",
            ],
            "gru-jax: error: config key 'model.hidden_size' must be an int >= 1; got 0",
        ),
        (
            [
                sys.executable,
                "examples/core_demo.py",
                "--config",
                "configs/core_demo.yaml",
                "--set",
                "hidden_size=0",
            ],
            "core_demo: error: config key 'hidden_size' must be an int >= 1; got 0",
        ),
    ],
    ids=["range", "example"],
)
def test_bad_keys_in_a_real_process(command: list[str], line: str, tmp_path: Path):
    """What a shell sees, once for the CLI and once for an example script: the kinds of mistake
    (range, type, constraints between keys) take the same path through ``main``, which the
    tests above and ``test_constraints_between_keys`` run in this process for every key."""
    command = [*command, "--workdir", str(tmp_path)] if "gru_jax.cli" in command else command
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr == line + "\n" and result.stdout == ""


def test_a_file_that_is_not_yaml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "bad.yaml"
    path.write_text("task: adding\ndata:\n  seq_len: [100\n")
    assert cli_main(["train", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"gru-jax: error: config file {str(path)!r} is not valid YAML: line 4, column 1: "
        "expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)\n"
    )


# ------------------------------------------------------------------ between keys, and floats

CROSS_KEY = [
    (
        "seq2seq.yaml",
        ["data.min_len=12", "data.max_len=10"],
        "config keys 'data.min_len' (12) and 'data.max_len' (10) must satisfy min_len <= max_len",
    ),
    (
        "charlm.yaml",
        ["data.corpus_chars=65"],
        "config keys 'data.corpus_chars' (65) and 'data.seq_len' (64) must satisfy "
        "corpus_chars >= seq_len + 2",
    ),
    (
        "charlm.yaml",
        ["data.prompt=The"],
        "config key 'data.prompt' must be a non-empty str of characters of the vocabulary "
        "' ,.?abcdefghiklmnopqrstuvwxyz'; got 'The'",
    ),
    (
        "charlm.yaml",
        ["data.prompt=''"],
        "config key 'data.prompt' must be a non-empty str of characters of the vocabulary "
        "' ,.?abcdefghiklmnopqrstuvwxyz'; got ''",
    ),
    (
        "forecast.yaml",
        ["data.series_len=79"],
        "config keys 'data.series_len' (79), 'data.context' (64) and 'data.horizon' (16) must "
        "satisfy series_len >= context + horizon",
    ),
    (
        "forecast.yaml",
        ["data.sample_every=0.04"],
        "config keys 'data.sample_every' (0.04) and 'data.dt' (0.1) must satisfy "
        "round(sample_every / dt) >= 1 (a sample at least every integration step)",
    ),
    (
        "adding.yaml",
        ["target_vs_baseline=0.5"],
        "config keys 'target' (0.01) and 'target_vs_baseline' (0.5) exclude each other: give one",
    ),
    (
        "adding.yaml",
        ["model.cell=mingru", "model.reset_after=true"],
        "config keys 'model.cell' (mingru) and 'model.reset_after' (true) must satisfy "
        "reset_after == false unless cell == gru (a minGRU has no reset gate)",
    ),
    (
        "adding.yaml",
        ["train.num_devices=3"],
        "config keys 'train.batch_size' (64) and 'train.num_devices' (3) must satisfy "
        "batch_size % num_devices == 0",
    ),
]


@pytest.mark.parametrize(("name", "overrides", "message"), CROSS_KEY, ids=lambda v: str(v))
def test_constraints_between_keys(
    name: str, overrides: list[str], message: str, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(ConfigError) as raised:
        load_config(CONFIGS / name, overrides)
    assert str(raised.value) == message
    sets = [arg for item in overrides for arg in ("--set", item)]
    assert cli_main(["train", str(CONFIGS / name), *sets]) == 2
    assert capsys.readouterr().err == f"gru-jax: error: {message}\n"


def test_constraints_at_their_limits_pass():
    assert load_config(CONFIGS / "seq2seq.yaml", ["data.min_len=10"]).data.min_len == 10
    assert load_config(CONFIGS / "charlm.yaml", ["data.corpus_chars=66"]).data.corpus_chars == 66
    assert load_config(CONFIGS / "forecast.yaml", ["data.series_len=80"]).data.series_len == 80
    assert load_config(CONFIGS / "forecast.yaml", ["data.sample_every=0.06"]).data.dt == 0.1
    assert load_config(CONFIGS / "adding.yaml", ["train.num_devices=4"]).train.num_devices == 4


def test_a_task_built_in_python_is_checked_too():
    copy = tasks.get_task("copy")
    with pytest.raises(ConfigError, match=r"^config key 'data.delay' must be an int >= 1; got 0$"):
        copy.make_source(copy.data_config(delay=0), 0)
    seq2seq = tasks.get_task("seq2seq")
    with pytest.raises(ConfigError, match=r"min_len <= max_len"):
        seq2seq.make_source(seq2seq.data_config(min_len=5, max_len=4), 0)


def test_float_keys_accept_strings_that_float_reads(tmp_path: Path):
    config = load_config(CONFIGS / "adding.yaml", ["train.learning_rate=1e-2"])
    assert config.train.learning_rate == 0.01 and type(config.train.learning_rate) is float
    path = tmp_path / "c.yaml"
    path.write_text("task: adding\ntarget: 1e-3\ntrain:\n  learning_rate: 3e-3\n")
    assert yaml.safe_load(path.read_text())["train"]["learning_rate"] == "3e-3"  # YAML 1.1
    config = load_config(path)
    assert config.train.learning_rate == 0.003 and config.target == 0.001
    assert load_config(path, ["train.weight_decay=1"]).train.weight_decay == 1.0
    for text, got in [("nan", "str 'nan'"), (".inf", "float inf"), ("-.inf", "float -inf")]:
        with pytest.raises(ConfigError) as raised:
            load_config(path, [f"train.learning_rate={text}"])
        assert str(raised.value) == (
            f"config key 'train.learning_rate' must be a finite float; got {got}"
        )
    with pytest.raises(ConfigError, match=r"^config key 'target' must be a finite float or null"):
        load_config(path, ["target=.nan"])
    assert load_config(path, ["target=null"]).target is None


def test_ints_and_bools_are_not_floats_or_strings():
    for overrides, message in [
        (
            ["train.steps=1e3"],
            "config key 'train.steps' must be an int; got str '1e3'; "
            "an int is written like 1000 (no quotes, no decimal point or exponent)",
        ),
        (
            ["train.steps=10.0"],
            "config key 'train.steps' must be an int; got float 10.0; "
            "an int is written like 10 (no quotes, no decimal point or exponent)",
        ),
        (["train.steps=true"], "config key 'train.steps' must be an int; got bool True"),
        (
            ["model.reset_after=1"],
            "config key 'model.reset_after' must be a bool; got int 1; "
            "a bool is written true or false (not as a number)",
        ),
        (
            ["train.learning_rate=true"],
            "config key 'train.learning_rate' must be a float; got bool True",
        ),
    ]:
        with pytest.raises(ConfigError) as raised:
            load_config(CONFIGS / "adding.yaml", overrides)
        assert str(raised.value) == message


# ------------------------------------------------------------------ what may change on --resume


def _saved(name: str = "adding.yaml", overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """A run's config.yaml, as the loop writes it and reads it back."""
    config = load_config(CONFIGS / name, list(overrides))
    return yaml.safe_load(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def _differences(saved: dict[str, Any], *overrides: str, **kwargs: Any) -> list[str]:
    return config_differences(
        saved, load_config(CONFIGS / "adding.yaml", list(overrides)), **kwargs
    )


def test_config_differences_names_what_shapes_the_run():
    saved = _saved()
    assert _differences(saved) == []
    assert _differences(saved, "model.hidden_size=32") == ["model.hidden_size"]
    assert _differences(saved, "train.steps=4000") == ["train.steps"]  # moves the schedule
    assert _differences(saved, "train.learning_rate=0.001", "data.seq_len=50", "seed=1") == [
        "data.seq_len",
        "seed",
        "train.learning_rate",
    ]
    cadence = [
        "train.log_every=1",
        "train.eval_every=7",
        "train.checkpoint_every=3",
        "train.keep_checkpoints=9",
        "train.num_devices=1",
        "train.eval_batches=2",
        "target=0.5",
    ]
    assert _differences(saved, *cadence) == []


def test_config_differences_when_evaluating():
    saved = _saved()
    changed = ["train.steps=10", "train.learning_rate=0.1", "seed=3", "target=null"]
    assert _differences(saved, *changed, evaluating=True) == []
    assert _differences(saved, *changed) == ["seed", "train.learning_rate", "train.steps"]
    assert _differences(saved, "model.num_layers=2", "data.seq_len=7", evaluating=True) == [
        "data.seq_len",
        "model.num_layers",
    ]


def test_config_differences_reads_saved_values_as_a_config():
    saved = _saved()
    saved["train"]["learning_rate"] = "3e-3"  # YAML 1.1's string
    saved["train"]["weight_decay"] = 0  # an int where a float belongs
    assert _differences(saved) == []
    saved["model"]["hidden_size"] = "64"  # not an int: it cannot be the run's value
    assert _differences(saved) == ["model.hidden_size"]


def test_config_differences_compares_missing_keys_with_defaults():
    saved = _saved()
    del saved["train"]["weight_decay"], saved["model"]["unroll"], saved["target"]
    del saved["data"]
    assert _differences(saved) == []
    assert _differences(saved, "train.weight_decay=0.1", "model.unroll=2") == [
        "model.unroll",
        "train.weight_decay",
    ]
    del saved["model"]
    assert _differences(saved) == []  # adding.yaml's model is the default one


def test_config_differences_reports_keys_it_does_not_know():
    saved = _saved()
    saved["model"]["cell"] = "lstm"
    saved["bogus"] = 1
    assert _differences(saved) == ["bogus", "model.cell"]
    saved = _saved()
    saved["model"] = 3
    assert _differences(saved) == ["model"]


def test_config_differences_of_another_task_names_the_task():
    saved = _saved()
    saved["task"], saved["data"] = "copy", {"delay": 5}
    assert _differences(saved) == ["task"]
    assert _differences(saved, evaluating=True) == ["task"]


def test_report_only_data_keys_may_change():
    config = load_config(CONFIGS / "charlm.yaml")
    saved = _saved("charlm.yaml")
    report = ["prompt=a ", "sample_chars=10", "num_samples=1", "sample_temperature=0"]
    changed = load_config(CONFIGS / "charlm.yaml", [f"data.{item}" for item in report])
    assert config_differences(saved, changed) == []
    changed = load_config(CONFIGS / "charlm.yaml", ["data.layout=packed", "data.seq_len=128"])
    assert config_differences(saved, changed) == ["data.layout", "data.seq_len"]
    assert config_differences(saved, config) == []
    seq2seq = load_config(CONFIGS / "seq2seq.yaml", ["data.num_examples=0"])
    assert config_differences(_saved("seq2seq.yaml"), seq2seq) == []


# ------------------------------------------------------------------ tasks of one's own


@dataclasses.dataclass(frozen=True)
class _Plain:
    """Fields without settings: type-checked only."""

    seq_len: int = 5


@dataclasses.dataclass(frozen=True)
class _Declared:
    """Fields with settings: type- and range-checked, and validate()."""

    low: int = setting(1, ge=0)
    high: int = setting(5, ge=0)

    def validate(self) -> None:
        if self.low > self.high:
            raise ConfigError("config keys 'data.low' and 'data.high' must satisfy low <= high")


def test_registered_tasks_get_the_checks_they_declare(registry):
    adding = tasks.get_task("adding")
    tasks.register_task(dataclasses.replace(adding, name="plain", data_config=_Plain))
    tasks.register_task(dataclasses.replace(adding, name="declared", data_config=_Declared))
    assert parse_config({"task": "plain", "data": {"seq_len": -3}}).data == _Plain(-3)
    with pytest.raises(ConfigError, match=r"^config key 'data.seq_len' must be an int; got str"):
        parse_config({"task": "plain", "data": {"seq_len": "x"}})
    with pytest.raises(ConfigError, match=r"^config key 'data.low' must be an int >= 0; got -1$"):
        parse_config({"task": "declared", "data": {"low": -1}})
    with pytest.raises(ConfigError, match=r"must satisfy low <= high"):
        parse_config({"task": "declared", "data": {"low": 6}})
    with pytest.raises(ConfigError, match=r"^config key 'model.hidden_size' must be an int >= 1"):
        parse_config({"task": "plain", "model": {"hidden_size": 0}})


def test_the_tasks_import_without_the_training_loop():
    code = "import sys, gru_jax.tasks.charlm; assert 'gru_jax.train' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)


# ------------------------------------------------------------------ the tables in the docs


def _type_word(annotation: Any) -> str:
    if isinstance(annotation, types.UnionType):
        return f"{base_type(annotation).__name__} or `null`"
    return typing.cast(str, annotation.__name__)


def doc_tables() -> dict[str, dict[str, list[str]]]:
    """The rows of the key tables of docs/training.md's Configs section, by section label and
    key: ``[key, type, default, range, meaning]``."""
    tables: dict[str, dict[str, list[str]]] = {}
    label = None
    for line in (ROOT / "docs" / "training.md").read_text().splitlines():
        task = re.match(r"\*\*`(\w+)`\*\*", line)
        if line.startswith("### Top-level keys"):
            label = "top"
        elif line.startswith("### `model:`"):
            label = "model"
        elif line.startswith("### `train:`"):
            label = "train"
        elif task:
            label = f"data of {task[1]}"
        elif line.startswith("#"):
            label = None
        elif label and line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            tables.setdefault(label, {})[cells[0].strip("`")] = cells
    return tables


@pytest.mark.parametrize(
    "label", ["top", "model", "train", *(f"data of {n}" for n in tasks.TASK_NAMES)]
)
def test_the_docs_tables_show_the_schema(label: str):
    cls = sections()[label]
    rows = doc_tables()[label]
    expected = {f.name for f, _ in keys(cls)} | ({"task"} if cls is Config else set())
    assert set(rows) == expected, f"docs/training.md, {label}: keys differ from the schema"
    for field, annotation in keys(cls):
        _, type_word, default, shown, _ = rows[field.name]
        declared = Setting.of(field)
        assert declared is not None
        assert type_word == _type_word(annotation), (label, field.name)
        assert yaml.safe_load(default.strip("`")) == field.default, (label, field.name)
        assert shown == f"`{declared.describe()}`", (label, field.name, shown)
