"""The ``gru-jax`` command as a new user meets it: every argument described in ``--help``, and
one line for each mistake that says how to put it right (a close key, how a type is written, a
workdir that does not exist, the task first among a run's differences, ``--set KEY=VALUE``), and
a resume of a complete run that says so and changes nothing."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gru_jax.cli import _parser, main
from gru_jax.train import config_to_dict, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
ADDING, COPY = str(CONFIGS / "adding.yaml"), str(CONFIGS / "copy.yaml")
INT_ADVICE = "an int is written like {} (no quotes, no decimal point or exponent)"


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``gru-jax ARGS`` run in this process."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """The one line a mistake prints on stderr (exit code 2, nothing on stdout)."""
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "", (code, out, err)
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.removesuffix("\n")


# ------------------------------------------------------------------------------ --help


def _described(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    """Every action of ``parser`` and of its subcommands (argparse's own ``-h`` excepted),
    with the ``prog`` it belongs to."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        yield parser.prog, action
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield parser.prog, choice
            for sub in action.choices.values():
                yield from _described(sub)


def test_every_argument_of_every_command_has_help():
    walked = list(_described(_parser()))
    undescribed = [
        f"{prog}: {action.dest}"
        for prog, action in walked
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert undescribed == []
    seen = {(prog, action.dest) for prog, action in walked}
    for command in ("train", "eval", "export"):
        for dest in ("config", "workdir", "set"):
            assert (f"gru-jax {command}", dest) in seen
    assert ("gru-jax export", "out") in seen


# ------------------------------------------------------------------------------ config keys

TRAIN_KEYS = (
    "['train.batch_size', 'train.checkpoint_every', 'train.end_learning_rate_ratio', "
    "'train.eval_batches', 'train.eval_every', 'train.grad_clip', 'train.keep_checkpoints', "
    "'train.learning_rate', 'train.log_every', 'train.num_devices', 'train.skip_nonfinite', "
    "'train.steps', 'train.warmup_steps', 'train.weight_decay']"
)
ROOT_KEYS = "['data', 'model', 'seed', 'target', 'target_vs_baseline', 'task', 'train']"


def test_an_unknown_key_suggests_the_closest(capsys, tmp_path):
    misspelt = f"unknown config key 'train.stpes'; expected one of {TRAIN_KEYS}"
    line = error_line(capsys, "train", ADDING, "--set", "train.stpes=3")
    assert line == f"gru-jax: error: {misspelt}; did you mean 'train.steps'?"
    (tmp_path / "c.yaml").write_text("task: adding\ntrain:\n  stpes: 3\n")  # in a file alike
    line = error_line(capsys, "train", tmp_path / "c.yaml", "--workdir", tmp_path / "w")
    assert line == f"gru-jax: error: {misspelt}; did you mean 'train.steps'?"
    line = error_line(capsys, "train", ADDING, "--set", "hidden_size=8")  # outside its section
    assert line == (
        f"gru-jax: error: unknown config key 'hidden_size'; expected one of {ROOT_KEYS}; "
        "did you mean 'model.hidden_size'?"
    )
    line = error_line(capsys, "train", ADDING, "--set", "train.bogus=3")  # nothing close
    assert line == f"gru-jax: error: unknown config key 'train.bogus'; expected one of {TRAIN_KEYS}"


def test_an_unknown_task_suggests_the_closest(capsys):
    tasks = "['adding', 'charlm', 'copy', 'forecast', 'ppo_cartpole', 'ppo_memory', 'seq2seq']"
    line = error_line(capsys, "train", ADDING, "--set", "task=addng")
    assert line == (
        f"gru-jax: error: config key 'task' must be one of {tasks}; got 'addng'; "
        "did you mean 'adding'?"
    )
    line = error_line(capsys, "train", ADDING, "--set", "task=chess")  # nothing close
    assert line == f"gru-jax: error: config key 'task' must be one of {tasks}; got 'chess'"


@pytest.mark.parametrize(
    ("text", "got", "advice"),
    [
        ("train.steps=1e3", "train.steps' must be an int; got str '1e3'", INT_ADVICE.format(1000)),
        (
            'train.steps="3000"',
            "train.steps' must be an int; got str '3000'",
            INT_ADVICE.format(3000),
        ),
        ("train.steps=2.5", "train.steps' must be an int; got float 2.5", INT_ADVICE.format(3000)),
        (
            "train.learning_rate=1,5",
            "train.learning_rate' must be a float; got str '1,5'",
            "a float is written like 0.003 or 3e-3",
        ),
        (
            "model.reset_after='true'",
            "model.reset_after' must be a bool; got str 'true'",
            "a bool is written true or false (no quotes)",
        ),
        (
            "model.reset_after=0",
            "model.reset_after' must be a bool; got int 0",
            "a bool is written true or false (not as a number)",
        ),
        (
            "model.chrono=None",
            "model.chrono' must be an int or null; got str 'None'",
            "null is written null or ~ (no quotes)",
        ),
        (
            "model.cell=1",
            "model.cell' must be a str; got int 1",
            'a str that YAML reads as a number is quoted: "1"',
        ),
        (
            "model.cell=off",
            "model.cell' must be a str; got bool False",
            "a str that YAML reads as a bool (yes, no, on, off, true, false) is quoted",
        ),
        (
            "model.cell=",
            "model.cell' must be a str; got NoneType None",
            'a str that YAML reads as null (null, ~ or nothing) is quoted: "null" or ""',
        ),
    ],
)
def test_a_value_of_the_wrong_type_shows_how_to_write_the_type(capsys, text, got, advice):
    line = error_line(capsys, "train", ADDING, "--set", text)
    assert line == f"gru-jax: error: config key '{got}; {advice}"


def test_a_quoted_int_in_a_file_shows_how_to_write_an_int(capsys, tmp_path):
    (tmp_path / "c.yaml").write_text('task: adding\ntrain:\n  steps: "3000"\n')
    line = error_line(capsys, "train", tmp_path / "c.yaml", "--workdir", tmp_path / "w")
    assert line == (
        "gru-jax: error: config key 'train.steps' must be an int; got str '3000'; "
        + INT_ADVICE.format(3000)
    )


def test_a_word_for_a_number_keeps_its_message(capsys):
    line = error_line(capsys, "train", ADDING, "--set", "train.steps=ten")
    assert line == "gru-jax: error: config key 'train.steps' must be an int; got str 'ten'"


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    "args",
    [
        ("train", ADDING, "--set", "train.steps", "200"),
        ("train", "--set", "train.steps", "200", ADDING),
        ("train", ADDING, "--set=train.steps", "200"),
        ("eval", ADDING, "--workdir", "runs/adding", "--set", "train.steps", "200"),
    ],
    ids=["after the config", "before the config", "--set=KEY", "eval"],
)
def test_set_key_space_value_says_how_to_write_it(capsys, args):
    line = error_line(capsys, *args)
    assert line == "gru-jax: error: --set takes KEY=VALUE; write --set train.steps=200"


def test_set_without_a_value_and_other_stray_arguments_keep_their_messages(capsys):
    line = error_line(capsys, "train", "--set", "train.steps", ADDING)
    assert line == "gru-jax: error: --set expects KEY=VALUE; got 'train.steps'"
    line = error_line(capsys, "train", ADDING, "extra")
    assert line == "gru-jax: error: unrecognized arguments: extra"


@pytest.mark.parametrize(
    "args",
    [("eval", ADDING), ("export", ADDING, "--out", "{tmp}/model.jax")],
    ids=["eval", "export"],
)
def test_a_workdir_that_does_not_exist_says_so(capsys, tmp_path, args):
    missing = tmp_path / "runs" / "adding"
    argv = [str(a).format(tmp=tmp_path) for a in args]
    line = error_line(capsys, *argv, "--workdir", missing)
    assert line == (
        f"gru-jax: error: workdir {str(missing)!r} does not exist; "
        "give the --workdir of a trained run"
    )


def _run_dir(workdir: Path) -> Path:
    """A workdir as ``configs/adding.yaml`` left it: its ``config.yaml`` and ``checkpoints/``."""
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(load_config(ADDING))))
    return workdir


MODEL = "model.hidden_size (run: 64, given: 128)"
TRAIN = "train.batch_size (run: 64, given: 128), train.learning_rate (run: 0.003, given: 0.01)"


@pytest.mark.parametrize(
    ("args", "differences"),
    [
        (("eval",), f"{MODEL}; evaluate it with"),
        (("train", "--resume"), f"{MODEL}, {TRAIN} and 1 more; resume it with"),
    ],
    ids=["eval", "resume"],
)
def test_another_task_is_named_before_the_other_differences(capsys, tmp_path, args, differences):
    workdir = _run_dir(tmp_path / "run")
    line = error_line(capsys, args[0], COPY, *args[1:], "--workdir", workdir)
    assert line == (
        f"gru-jax: error: the run in {str(workdir)!r} was trained with another config: "
        f"task (run: 'adding', given: 'copy'), {differences} the same values "
        f"(they are in {str(workdir / 'config.yaml')!r})"
    )


# ------------------------------------------------------------------------------ a complete run

TINY = [
    "data.seq_len=4",
    "model.hidden_size=4",
    "train.steps=2",
    "train.batch_size=4",
    "train.log_every=1",
    "train.eval_every=1",
    "train.eval_batches=1",
    "train.checkpoint_every=1",
]


def _files(workdir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a workdir, with its bytes and its modification time."""
    return {
        str(p.relative_to(workdir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(workdir.rglob("*"))
        if p.is_file()
    }


def test_resuming_a_complete_run_says_so_and_changes_nothing(capsys, tmp_path):
    workdir = tmp_path / "run"
    argv = ["train", ADDING, "--workdir", workdir, *[a for kv in TINY for a in ("--set", kv)]]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    summary = json.loads(out.splitlines()[0])
    before = _files(workdir)
    assert {"summary.json", "metrics.jsonl", "config.yaml", "plots/loss.png"} <= set(before)
    complete = (
        f"the run in {str(workdir)!r} is already complete (step 2 of 2): nothing trained, "
        f"nothing changed; its results are in {str(workdir / 'summary.json')!r}\n"
    )
    # cadence keys may differ on --resume; they change nothing either
    for extra in ([], ["--stop-after", "1", "--set", "train.log_every=2"]):
        assert run(capsys, *argv, "--resume", *extra) == (0, complete, "")
        assert _files(workdir) == before
    # A run killed after its last checkpoint but before its summary is finished by --resume.
    (workdir / "summary.json").unlink()
    code, out, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    resumed = json.loads(out.splitlines()[0])
    assert resumed["value"] == summary["value"] and (workdir / "summary.json").is_file()
