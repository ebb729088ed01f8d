"""Several processes on 127.0.0.1: the ``gru-jax train`` multi-process mode, end to end.

Every run here is real ``python -m gru_jax.cli`` processes with simulated CPU devices
(``--xla_force_host_platform_device_count``), collectives over gloo, one coordinator on a free
local port, bounded timeouts, and every child reaped (killed if still alive) when a test ends.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "adding.yaml"
STEPS = 60
SETS = [
    "data.seq_len=8",
    "model.hidden_size=8",
    f"train.steps={STEPS}",
    "train.batch_size=8",
    "train.log_every=1",
    "train.eval_every=1000",
    "train.eval_batches=1",
    "train.checkpoint_every=10",
    "train.keep_checkpoints=10",
]
TIMEOUT = 180  # seconds any one launch may take before it is killed

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_with(devices: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_"))
    }
    flags = os.environ.get("XLA_FLAGS", "")  # the suite's own (tests/conftest.py), and then:
    env |= {
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={devices}".strip(),
        "JAX_PLATFORMS": "cpu",
    }
    return env


def args_for(workdir: Path, *extra: str, sets=SETS) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gru_jax.cli",
        "train",
        str(CONFIG),
        "--workdir",
        str(workdir),
        *[a for kv in sets for a in ("--set", kv)],
        *extra,
    ]


class Processes:
    """``n`` processes of one run, started together; always reaped on exit."""

    def __init__(self, workdir: Path, n: int, devices: int, *extra: str, sets=SETS, own=None):
        port = free_port()
        own = own or [[] for _ in range(n)]  # each process's own extra arguments
        self.procs = [
            subprocess.Popen(
                args_for(
                    workdir,
                    "--coordinator",
                    f"127.0.0.1:{port}",
                    "--num-processes",
                    str(n),
                    "--process-id",
                    str(i),
                    *extra,
                    *own[i],
                    sets=sets,
                ),
                cwd=ROOT,
                env=env_with(devices),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(n)
        ]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=30)

    def wait(self, timeout: float = TIMEOUT) -> list[tuple[int, str, str]]:
        deadline = time.monotonic() + timeout
        results = []
        for p in self.procs:
            out, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
            results.append((p.returncode, out, err))
        return results


def single(workdir: Path, devices: int, *extra: str, sets=SETS) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args_for(workdir, *extra, sets=sets),
        cwd=ROOT,
        env=env_with(devices),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result


def losses(workdir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    out = {r["step"]: r["loss"] for r in rows if "loss" in r}
    assert len(out) == sum("loss" in r for r in rows), "a step was logged twice"
    return out


def final_params(workdir: Path, step: int = STEPS):
    """The parameters of a checkpoint, onto this process's device whatever topology wrote it."""
    path = (workdir / "checkpoints" / str(step) / "state").resolve()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as checkpointer:
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
            checkpointer.metadata(path).item_metadata.tree,
        )
        return checkpointer.restore(path, target)["params"]


def assert_params_close(a, b, rtol: float) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=rtol)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Uninterrupted runs: one process with 1 and with 4 devices, and 2 processes x 2 devices."""
    root = tmp_path_factory.mktemp("runs")
    with Processes(root / "2x2", 2, 2) as two:
        one = subprocess.Popen(
            args_for(root / "1x1"), cwd=ROOT, env=env_with(1), stdout=subprocess.PIPE, text=True
        )
        try:
            assert one.wait(timeout=TIMEOUT) == 0
            single(root / "1x4", 4)
        finally:
            if one.poll() is None:
                one.kill()
            one.communicate()
        results = two.wait()
    return root, results


def test_two_processes_log_the_losses_of_one_process_with_four_devices(runs):
    root, results = runs
    for code, _, err in results:
        assert code == 0, err
    (_, out0, _), (_, out1, _) = results
    summary = json.loads(out0.splitlines()[0])
    assert summary["processes"] == 2 and summary["devices"] == 4
    assert out1 == ""  # process 1 prints nothing and writes no summary of its own
    assert json.loads((root / "2x2" / "summary.json").read_text()) == summary
    for i in range(2):  # what each process recorded of itself, from inside the run
        info = json.loads((root / "2x2" / "processes" / f"{i}.json").read_text())
        assert info["process_id"] == i and info["process_count"] == 2
        assert info["global_devices"] == 4 and len(info["local_devices"]) == 2
        assert info["batch_rows"] == [[4 * i, 4 * i + 2], [4 * i + 2, 4 * i + 4]]
    one, four, two = (losses(root / d) for d in ("1x1", "1x4", "2x2"))
    assert sorted(two) == list(range(1, STEPS + 1)) == sorted(four) == sorted(one)
    for step in range(1, STEPS + 1):
        assert two[step] == pytest.approx(four[step], rel=1e-5)
        assert four[step] == pytest.approx(one[step], rel=1e-5)
    assert_params_close(final_params(root / "2x2"), final_params(root / "1x4"), 1e-5)


def as_if_stopped_after(workdir: Path, step: int) -> None:
    """Make a copied finished run look as it did when it stopped after ``step``."""
    for later in range(step + 10, STEPS + 1, 10):
        shutil.rmtree(workdir / "checkpoints" / str(later))
    metrics = workdir / "metrics.jsonl"
    rows = [line for line in metrics.read_text().splitlines() if json.loads(line)["step"] <= step]
    metrics.write_text("".join(row + "\n" for row in rows))
    (workdir / "summary.json").unlink()


def wait_for_losses(workdir: Path, count: int, procs, timeout: float = TIMEOUT) -> None:
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise AssertionError("a process ended before it was signalled")
        if metrics.exists() and len(metrics.read_text().splitlines()) >= count:
            return
        time.sleep(0.005)
    raise AssertionError(f"no {count} logged steps within {timeout} s")


def test_one_device_run_continues_on_two_processes_then_on_one_device(runs, tmp_path):
    """A one-device checkpoint resumes on 2 processes x 2 devices, which stop together on
    SIGTERM (each process of a job gets the signal) with a checkpoint of the current step; that
    checkpoint of two processes resumes on one device, and the whole run equals the
    uninterrupted one-device run."""
    root, _ = runs
    workdir = tmp_path / "run"
    shutil.copytree(root / "1x1", workdir)
    as_if_stopped_after(workdir, 10)
    cadence = ["--set", "train.checkpoint_every=1000"]  # may differ on resume
    with Processes(workdir, 2, 2, "--resume", *cadence) as two:
        wait_for_losses(workdir, 15, two.procs)
        for p in two.procs:  # a scheduler signals every process of the job
            p.send_signal(signal.SIGTERM)
        results = two.wait(timeout=60)
    assert [code for code, _, _ in results] == [143, 143], [err for _, _, err in results]
    assert "resume with: gru-jax train" in results[0][2] and results[1][2] == ""
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[0] == 10 and len(steps) == 2 and 15 <= steps[1] < STEPS, steps
    single(workdir, 1, "--resume", *cadence, "--set", "train.num_devices=1")
    resumed = losses(workdir)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    for step, value in losses(root / "1x1").items():
        assert resumed[step] == pytest.approx(value, rel=1e-5)
    assert_params_close(final_params(workdir), final_params(root / "1x1"), 1e-5)


def test_failures_end_within_a_bound_with_one_line(tmp_path):
    long = [*SETS[:2], "train.steps=100000", *SETS[3:]]
    started = time.monotonic()
    lonely = subprocess.Popen(  # process 1 of 2, whose coordinator never starts
        args_for(
            tmp_path / "lonely",
            "--coordinator",
            f"127.0.0.1:{free_port()}",
            "--num-processes",
            "2",
            "--process-id",
            "1",
            "--init-timeout",
            "3",
        ),
        cwd=ROOT,
        env=env_with(1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    differ = [[], ["--set", "model.hidden_size=16"]]  # process 1 was given another config
    try:
        with (
            Processes(tmp_path / "differ", 2, 1, own=differ) as mismatched,
            Processes(tmp_path / "run", 2, 1, "--heartbeat-timeout", "3", sets=long) as two,
        ):
            wait_for_losses(tmp_path / "run", 5, two.procs)
            two.procs[1].kill()  # its worker dies with it (PR_SET_PDEATHSIG)
            killed = time.monotonic()
            code, _, err = two.wait(timeout=90)[0]
            assert time.monotonic() - killed < 60
            assert code == 1, err
            assert len(err.strip().splitlines()) == 1, err
            assert err.startswith("gru-jax: error: process 0 of 2 at 127.0.0.1:")
            assert "another process of the run died or stopped answering" in err
            for code, _, err in mismatched.wait(timeout=90):
                assert code == 2, err
                assert err.strip() == (
                    "gru-jax: error: processes [1] were given another config than process 0; "
                    "every process of a run needs the same config file and --set values"
                )
        _, err = lonely.communicate(timeout=60)
    finally:
        if lonely.poll() is None:
            lonely.kill()
            lonely.communicate()
    assert lonely.returncode == 2 and time.monotonic() - started < 150
    assert err.strip().splitlines() == [err.strip()], err
    assert err.startswith("gru-jax: error: process 1 of 2 at 127.0.0.1:")
    assert "could not join the run within --init-timeout 3 s" in err


# ------------------------------------------------------------------------------ in this process


def test_find_cluster_reads_flags_then_environment():
    from gru_jax.train import Cluster, ConfigError, find_cluster

    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4"}
    assert find_cluster(process_id=3, env=env) == Cluster("10.0.0.1:1234", 4, 3)
    env["JAX_PROCESS_ID"] = "1"
    assert find_cluster("h:9", env=env) == Cluster("h:9", 4, 1)  # a flag beats its variable
    assert find_cluster(env={"SLURM_NTASKS": "8"}) == Cluster()  # left to jax to detect
    assert find_cluster(detect=True, env={}) == Cluster()
    assert find_cluster("h:9", 1, 0, env={}) is None  # one process: nothing to join
    cases = {
        ("h:9", None, None): "missing --num-processes (or JAX_NUM_PROCESSES), --process-id",
        ("h", 2, 0): "--coordinator must be HOST:PORT with a port in [1, 65535]; got 'h'",
        ("h:0", 2, 0): "--coordinator must be HOST:PORT with a port in [1, 65535]; got 'h:0'",
        ("h:9", 0, 0): "--num-processes must be at least 1; got 0",
        ("h:9", 2, -1): "--process-id must be in [0, 2) for --num-processes 2; got -1",
    }
    for (address, count, index), message in cases.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            find_cluster(address, count, index, env={})
    with pytest.raises(ConfigError, match="JAX_NUM_PROCESSES must be an integer; got 'two'"):
        find_cluster(env={"JAX_NUM_PROCESSES": "two"})
    with pytest.raises(ConfigError, match="--init-timeout must be at least 1 second; got 0"):
        find_cluster("h:9", 2, 0, init_timeout=0, env={})


def test_inconsistent_flags_are_one_line_before_anything_starts(capsys, tmp_path):
    from gru_jax.cli import main

    cases = [
        ["--coordinator", "127.0.0.1:1", "--num-processes", "2"],
        ["--num-processes", "2", "--process-id", "5", "--coordinator", "127.0.0.1:1"],
        ["--heartbeat-timeout", "0", "--distributed"],
    ]
    for extra in cases:
        capsys.readouterr()
        code = main(["train", str(CONFIG), "--workdir", str(tmp_path), *extra])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("gru-jax: error: ") and "--" in err
    assert not any(tmp_path.iterdir())


def test_the_runtime_abort_becomes_one_line():
    from gru_jax.train import Cluster
    from gru_jax.train._distributed import _summary

    lonely = Cluster("127.0.0.1:5", 2, 1, init_timeout=3)
    fatal = [
        "F1203 12:55:30.465495   13774 client.h:80] Terminating process because the JAX "
        "distributed service detected fatal errors. absl::Status: DEADLINE_EXCEEDED: Deadline "
        "Exceeded",
        "",
        "RPC: /xla.coordination.CoordinationService/RegisterTask",
    ]
    message, code = _summary(fatal, lonely)
    assert code == 2 and message.startswith(
        "process 1 of 2 at 127.0.0.1:5 could not join the run within --init-timeout 3 s "
        "(DEADLINE_EXCEEDED): check that process 0 is running"
    )
    fatal = [
        "F1203 12:56:17.113472   13852 client.h:80] Terminating process because the JAX "
        "distributed service detected fatal errors. absl::Status: UNAVAILABLE: The following "
        "tasks are unhealthy (stopped sending heartbeats):",
        "1",
        "RPC: /xla.coordination.CoordinationService/PollForError",
    ]
    message, code = _summary(fatal, Cluster("127.0.0.1:5", 2, 0, heartbeat_timeout=7))
    assert code == 1 and "another process of the run died or stopped answering" in message
    assert "--heartbeat-timeout 7 s" in message
