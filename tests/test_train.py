"""Training: task generators and baselines, configs and their errors, the CLI, resume, devices."""

import contextlib
import io
import json
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from gru_jax.cli import main as cli_main
from gru_jax.tasks import TASK_NAMES, get_task
from gru_jax.tasks.adding import adding_batch
from gru_jax.tasks.copy import CopyData, baseline, copy_batch
from gru_jax.tasks.forecast import ForecastData, mackey_glass, persistence_mse
from gru_jax.train import (
    CheckpointError,
    ConfigError,
    TrainConfig,
    evaluate_checkpoint,
    load_config,
    make_optimizer,
    train_and_evaluate,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


def run_cli(capsys, *args):
    """Run ``gru-jax`` in this process (the same ``main`` the installed command calls, without a
    new interpreter's start-up): ``(exit code, stdout, stderr)``."""
    capsys.readouterr()
    try:
        code = cli_main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def cli(*args, env=None, check=True):
    """Run ``gru-jax`` in a fresh process (as a user would), from the repository root."""
    result = subprocess.run(
        [sys.executable, "-m", "gru_jax.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gru-jax {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


# ------------------------------------------------------------------------------ generators


def test_adding_generator():
    a = adding_batch(jax.random.key(0), 4096, 50)
    b = adding_batch(jax.random.key(0), 4096, 50)
    c = adding_batch(jax.random.key(1), 4096, 50)
    assert a["inputs"].shape == (4096, 50, 2) and a["targets"].shape == (4096,)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    assert not np.array_equal(a["inputs"], c["inputs"])
    markers = np.asarray(a["inputs"][..., 1])
    assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all()
    values = np.asarray(a["inputs"][..., 0])
    np.testing.assert_allclose(a["targets"], (values * markers).sum(1), rtol=1e-6)
    # The baseline: predicting 1 gives Var(u1 + u2) = 1/6.
    assert get_task("adding").baseline(None) == pytest.approx(1 / 6)
    assert float(jnp.mean((a["targets"] - 1.0) ** 2)) == pytest.approx(1 / 6, abs=0.01)


def test_copy_generator_and_memoryless_baseline():
    data = CopyData(delay=7, copy_len=4, num_symbols=5)
    a = copy_batch(jax.random.key(0), 256, delay=7, copy_len=4, num_symbols=5)
    b = copy_batch(jax.random.key(0), 256, delay=7, copy_len=4, num_symbols=5)
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    inputs, targets = np.asarray(a["inputs"]), np.asarray(a["targets"])
    assert inputs.shape == targets.shape == (256, 15)
    assert ((inputs[:, :4] >= 1) & (inputs[:, :4] <= 5)).all()
    assert (
        (inputs[:, 4:10] == 0).all() and (inputs[:, 10] == 6).all() and (inputs[:, 11:] == 0).all()
    )
    np.testing.assert_array_equal(targets[:, -4:], inputs[:, :4])
    assert (targets[:, :-4] == 0).all()
    # A memoryless predictor: blank with certainty, then uniform over the symbols.
    ce = np.concatenate([np.zeros(11), np.full(4, math.log(5))]).mean()
    assert baseline(data) == pytest.approx(ce)
    assert baseline(CopyData(delay=50)) == pytest.approx(10 * math.log(8) / 70)
    # configs/copy_long.yaml: the paper's 10·ln 8 / 1020 ≈ 0.0204
    assert baseline(load_config(CONFIGS / "copy_long.yaml").data) == pytest.approx(
        0.020387, abs=1e-6
    )


def test_forecast_series_and_persistence_baseline():
    x = mackey_glass(0, 3, 400)
    np.testing.assert_array_equal(x, mackey_glass(0, 3, 400))
    assert not np.allclose(x, mackey_glass(1, 3, 400))
    assert x.shape == (3, 400) and 0.2 < x.min() and x.max() < 1.6
    # Chaotic, not periodic or decaying: the series keeps varying.
    assert x[:, 200:].std(axis=1).min() > 0.1
    s = (x - x.mean()) / x.std()
    errors = [
        (s[:, start + 10 : start + 14] - s[:, start + 9, None]) ** 2
        for start in range(0, 400 - 14 + 1, 4)
    ]
    assert persistence_mse(s, 10, 4) == pytest.approx(np.mean(errors))
    source = get_task("forecast").make_source(
        ForecastData(context=10, horizon=4, num_series=3, series_len=100), seed=0
    )
    batch = source.batch(jax.random.key(0), 5)
    assert batch["inputs"].shape == (5, 10, 1) and batch["targets"].shape == (5, 4)


# ------------------------------------------------------------------------------ configs


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_has_a_config_with_a_target(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.task == name and config.target is not None


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            ["train.stepz=3"],
            r"unknown config key 'train.stepz'; expected one of \['train.batch_size'",
        ),
        (["bogus=1"], "unknown config key 'bogus'"),
        (["data.seq_len=1.5"], r"config key 'data.seq_len' must be an int; got float 1.5"),
        (
            ["train.learning_rate=fast"],
            "config key 'train.learning_rate' must be a float; got str 'fast'",
        ),
        (["model.reset_after=1"], "config key 'model.reset_after' must be a bool; got int 1"),
        (["train=3"], "config key 'train' must be a mapping; got int"),
        (["task=nope"], r"config key 'task' must be one of \['adding'"),
        (["train.steps"], "--set expects KEY=VALUE; got 'train.steps'"),
    ],
)
def test_bad_configs(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIGS / "adding.yaml", overrides)


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ConfigError, match=r"config file '.*nope\.yaml' does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping; got list"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("task: [adding\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "unsafe.yaml").write_text("task: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path / "unsafe.yaml")


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    # One in a real process, as a shell sees it ...
    result = cli("train", CONFIGS / "adding.yaml", "--set", "train.stepz=3", check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("gru-jax: error: unknown config key 'train.stepz'")
    # ... and every kind of mistake through the same main(), in this process.
    cases = [
        ("train", CONFIGS / "adding.yaml", "--set", "train.stepz=3"),
        ("train", tmp_path / "missing.yaml"),
        ("train", CONFIGS / "adding.yaml", "--set", "train.batch_size=0"),
        ("eval", CONFIGS / "adding.yaml", "--workdir", tmp_path / "empty"),
        ("train",),
        ("fly",),
    ]
    for args in cases:
        code, _, err = run_cli(capsys, *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1, err
        assert re.match(r"gru-jax( \w+)?: error: ", err), err
        assert "Traceback" not in err


# ------------------------------------------------------------------------------ runs

SMOKE = {
    "adding": ["data.seq_len=8", "model.hidden_size=8"],
    "copy": ["data.delay=4", "data.copy_len=3", "model.hidden_size=8"],
    # the long-memory configs at their own lengths (T = 600 and 1020), with a tiny model; the
    # copy run with the minGRU cell (a two-layer MinGRUStack), through the CLI and eval
    "adding_long": ["model.hidden_size=8"],
    "copy_long": [
        "model.hidden_size=8",
        "model.embed_dim=4",
        "model.cell=mingru",
        "model.num_layers=2",
    ],
    "forecast": [
        "data.context=8",
        "data.horizon=4",
        "data.series_len=60",
        "data.num_series=4",
        "model.hidden_size=8",
    ],
}
TINY_TRAIN = [
    "train.steps=4",
    "train.batch_size=8",
    "train.log_every=2",
    "train.eval_every=2",
    "train.eval_batches=2",
    "train.checkpoint_every=2",
]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """``run(name) -> (exit code, stdout, workdir)``: the smoke run of a config through the CLI's
    ``main``, made once (the adding run is also ``tiny_run``'s)."""
    runs = {}

    def run(name):
        if name not in runs:
            workdir = tmp_path_factory.mktemp(name) / "run"
            sets = [arg for kv in SMOKE[name] + TINY_TRAIN for arg in ("--set", kv)]
            argv = ["train", str(CONFIGS / f"{name}.yaml"), "--workdir", str(workdir), *sets]
            with contextlib.redirect_stdout(io.StringIO()) as out:
                code = cli_main(argv)
            runs[name] = (code, out.getvalue(), workdir)
        return runs[name]

    return run


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_smoke_run_of_every_config_through_the_cli(name, smoke_runs, capsys):
    code, out, tmp_path = smoke_runs(name)
    sets = [arg for kv in SMOKE[name] + TINY_TRAIN for arg in ("--set", kv)]
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert json.loads(out.splitlines()[0]) == summary
    for key in (
        "task",
        "metric",
        "value",
        "baseline",
        "target",
        "reached",
        "steps",
        "wall_seconds",
    ):
        assert key in summary
    config = load_config(CONFIGS / f"{name}.yaml")
    assert summary["task"] == config.task and summary["steps"] == 4
    assert math.isfinite(summary["value"])
    if config.target_vs_baseline is not None:  # resolved against the baseline of the data
        assert summary["target"] == pytest.approx(config.target_vs_baseline * summary["baseline"])
    written = out.splitlines()[1].removeprefix(f"results in {tmp_path}/: ").split(", ")
    assert {"checkpoints/", "config.yaml", "metrics.jsonl", "summary.json"} <= set(written)
    assert {w for w in written if w.startswith("plots/")} == {
        f"plots/{p.name}" for p in (tmp_path / "plots").iterdir()
    }
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4]
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [
        "2",
        "4",
    ]
    code, out, _ = run_cli(
        capsys, "eval", CONFIGS / f"{name}.yaml", "--workdir", tmp_path, "--seed", "7", *sets
    )
    assert code == 0
    evaluated = json.loads(out)
    assert evaluated["metric"] == summary["metric"] and evaluated["step"] == 4
    assert math.isfinite(evaluated["value"])


def test_without_matplotlib_the_run_says_so_and_lists_no_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    sets = [arg for kv in SMOKE["adding"] + TINY_TRAIN for arg in ("--set", kv)]
    code, out, _ = run_cli(capsys, "train", CONFIGS / "adding.yaml", "--workdir", tmp_path, *sets)
    assert code == 0
    assert json.loads(out.splitlines()[0])["plots"].startswith("skipped: ")
    assert out.splitlines()[1] == (
        f"results in {tmp_path}/: checkpoints/, config.yaml, metrics.jsonl, summary.json"
    )
    assert not (tmp_path / "plots").exists()


def _final_params(workdir: Path, step: int):
    manager = ocp.CheckpointManager(workdir.resolve() / "checkpoints")
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return restored["state"]["params"]


def test_stopped_and_resumed_run_equals_straight_run(tmp_path):
    overrides = SMOKE["adding"] + [
        "train.steps=9",
        "train.batch_size=8",
        "train.log_every=1",
        "train.eval_every=100",
        "train.eval_batches=1",
        "train.checkpoint_every=100",
        "model.dropout_rate=0.2",
        "model.num_layers=2",
    ]
    config = load_config(CONFIGS / "adding.yaml", overrides)
    straight = train_and_evaluate(config, tmp_path / "straight")
    assert train_and_evaluate(config, tmp_path / "split", stop_after=4) is None
    with pytest.raises(ConfigError, match=r"already holds checkpoints .*pass --resume"):
        train_and_evaluate(config, tmp_path / "split")
    assert train_and_evaluate(config, tmp_path / "split", resume=True, stop_after=3) is None
    resumed = train_and_evaluate(config, tmp_path / "split", resume=True)
    assert resumed["value"] == straight["value"]
    a, b = _final_params(tmp_path / "straight", 9), _final_params(tmp_path / "split", 9)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    losses = [
        [
            json.loads(line)["loss"]
            for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)
        ]
        for d in ("straight", "split")
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 9


@pytest.fixture(scope="module")
def tiny_run(smoke_runs):
    """A finished tiny adding run (the adding smoke run): (config, workdir). Tests copy it
    before they change anything in it."""
    code, _, workdir = smoke_runs("adding")
    assert code == 0
    return load_config(CONFIGS / "adding.yaml", SMOKE["adding"] + TINY_TRAIN), workdir


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoint_is_detected_not_loaded(tmp_path, tiny_run, damage):
    config, trained = tiny_run
    shutil.copytree(trained, tmp_path / "run")
    state_dir = tmp_path / "run" / "checkpoints" / "4" / "state"
    target = max((p for p in state_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    else:
        for i in range(len(data) // 3, len(data) // 3 + 16):
            data[i] ^= 0xFF
        target.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError, match=r"checkpoint of step 4 in .* (cannot be read|is corrupted)"
    ):
        evaluate_checkpoint(config, tmp_path / "run", seed=1)
    with pytest.raises(CheckpointError, match="move that step's directory aside"):
        train_and_evaluate(config, tmp_path / "run", resume=True)


def test_resume_and_eval_refuse_another_config_by_name(tmp_path, tiny_run, capsys):
    _, trained = tiny_run
    shutil.copytree(trained, tmp_path / "run")
    base = ["--workdir", tmp_path / "run"]
    sets = [a for kv in SMOKE["adding"] + TINY_TRAIN for a in ("--set", kv)]
    adding, copy = CONFIGS / "adding.yaml", CONFIGS / "copy.yaml"
    cases = {
        ("train", adding, *base, *sets, "--resume", "--set", "model.hidden_size=16"): [
            "model.hidden_size (run: 8, given: 16)"
        ],
        ("train", adding, *base, *sets, "--resume", "--set", "train.steps=6"): [
            "train.steps (run: 4, given: 6)"
        ],
        ("eval", copy, *base): ["task (run: 'adding', given: 'copy')"],
    }
    for args, names in cases.items():
        code, _, err = run_cli(capsys, *args)
        assert code == 2, err
        (line,) = err.strip().splitlines()
        assert line.startswith(f"gru-jax: error: the run in {str(tmp_path / 'run')!r} was trained ")
        for name in names:
            assert name in line
        assert "cannot be read" not in line and "delete" not in line
    # Devices and cadence may change: the finished run is accepted, and found complete.
    cadence = ["train.log_every=1", "train.checkpoint_every=1", "train.num_devices=1"]
    cadence += ["train.keep_checkpoints=5", "train.eval_every=3"]
    code, out, err = run_cli(
        capsys,
        "train",
        adding,
        *base,
        *sets,
        "--resume",
        *[a for kv in cadence for a in ("--set", kv)],
    )
    assert code == 0, err
    assert out.startswith(f"the run in {str(tmp_path / 'run')!r} is already complete (step 4 of 4)")
    # Without the run's config.yaml, the checkpoint's own shapes tell the configs apart.
    (tmp_path / "run" / "config.yaml").unlink()
    code, _, err = run_cli(capsys, "eval", adding, *base, *sets, "--set", "model.hidden_size=16")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "was written by a model of another config" in line and "it is intact" in line
    assert "saved (8," in line and "this config makes (16," in line


# ------------------------------------------------------------------------------ preemption

# Long enough that a signal sent after 100 logged steps arrives well before the end (a step
# takes about a millisecond), and no periodic checkpoint comes before LONG_CHECKPOINT.
LONG_STEPS, LONG_CHECKPOINT = 1200, 1000
LONG = [
    *SMOKE["adding"],
    f"train.steps={LONG_STEPS}",
    "train.batch_size=8",
    "train.log_every=1",
    "train.eval_every=10000",
    "train.eval_batches=1",
    f"train.checkpoint_every={LONG_CHECKPOINT}",
]


def _start(workdir: Path, *extra: str) -> subprocess.Popen:
    sets = [a for kv in LONG for a in ("--set", kv)]
    command = [sys.executable, "-m", "gru_jax.cli", "train", CONFIGS / "adding.yaml"]
    return subprocess.Popen(
        [*command, "--workdir", str(workdir), *sets, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _signal_after(process: subprocess.Popen, workdir: Path, rows: int, signum: int):
    """Send ``signum`` once ``rows`` steps are logged; ``(exit code, stdout, stderr)``."""
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= rows:
                process.send_signal(signum)
                break
            time.sleep(0.005)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


def _loss_rows(workdir: Path) -> list[tuple[int, float, float]]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["grad_norm"]) for r in rows if "loss" in r]


@pytest.fixture(scope="module")
def straight_long(tmp_path_factory):
    """The LONG run straight through, in a real process: its workdir."""
    workdir = tmp_path_factory.mktemp("long") / "straight"
    process = _start(workdir)
    assert process.wait(timeout=240) == 0, process.communicate()[1]
    process.communicate()
    return workdir


def _assert_same_run(workdir: Path, straight: Path) -> None:
    """Bit-identical final parameters and logged losses."""
    a, b = _final_params(straight, LONG_STEPS), _final_params(workdir, LONG_STEPS)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert _loss_rows(workdir) == _loss_rows(straight)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_checkpoints_the_current_step_and_resume_is_bit_identical(
    tmp_path, signum, straight_long
):
    code, _, err = _signal_after(_start(tmp_path / "run"), tmp_path / "run", 100, signum)
    assert code == 128 + signum, err
    (line,) = err.strip().splitlines()
    step = int(re.search(r"stopped by SIG\w+ after step (\d+) \(checkpointed\)", line).group(1))
    assert 100 <= step < LONG_CHECKPOINT  # not a multiple of train.checkpoint_every
    checkpoints = [int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir()]
    assert checkpoints == [step]
    command = f"gru-jax train {CONFIGS / 'adding.yaml'} --workdir {tmp_path / 'run'} "
    assert line.endswith(command + " ".join(f"--set {kv}" for kv in LONG) + " --resume")
    if signum == signal.SIGTERM:
        resumed = _start(tmp_path / "run", "--resume")
        assert resumed.wait(timeout=240) == 0, resumed.communicate()[1]
        resumed.communicate()
        _assert_same_run(tmp_path / "run", straight_long)


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_equals_straight_run(tmp_path, straight_long):
    often = ("--set", "train.checkpoint_every=250")
    kill_at = random.Random(1234).randint(300, LONG_STEPS - 100)
    code, _, _ = _signal_after(
        _start(tmp_path / "killed", *often), tmp_path / "killed", kill_at, signal.SIGKILL
    )
    assert code == -signal.SIGKILL
    saved = sorted(
        int(p.name) for p in (tmp_path / "killed" / "checkpoints").iterdir() if p.name.isdigit()
    )
    assert saved and saved[-1] < LONG_STEPS and all(s % 250 == 0 for s in saved)
    resumed = _start(tmp_path / "killed", "--resume", *often)
    assert resumed.wait(timeout=240) == 0, resumed.communicate()[1]
    resumed.communicate()
    _assert_same_run(tmp_path / "killed", straight_long)


def test_skip_nonfinite_leaves_the_state_unchanged():
    """``train.skip_nonfinite``: a step with a NaN (or Inf) gradient changes nothing; a finite
    one updates as without the key (``optax.apply_if_finite``)."""
    params = {"w": jnp.ones(3)}
    finite, bad = {"w": jnp.full(3, 0.5)}, {"w": jnp.array([1.0, jnp.nan, jnp.inf])}
    plain_opt, _ = make_optimizer(TrainConfig(warmup_steps=0))
    opt, _ = make_optimizer(TrainConfig(warmup_steps=0, skip_nonfinite=2))
    state = jax.jit(opt.init)(params)
    update = jax.jit(opt.update)
    updates, state = update(bad, state, params)
    assert np.array_equal(updates["w"], np.zeros(3)) and int(state.notfinite_count) == 1
    updates, state = update(finite, state, params)
    want, _ = jax.jit(plain_opt.update)(finite, jax.jit(plain_opt.init)(params), params)
    np.testing.assert_array_equal(updates["w"], want["w"])
    assert int(state.notfinite_count) == 0 and int(state.total_notfinite) == 1
