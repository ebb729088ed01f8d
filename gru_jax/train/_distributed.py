"""Several processes: how a process joins a run, the mesh over the devices of every process, and
the supervisor that keeps failures to a line.

A run over several processes (hosts, or several processes of one machine) is described by three
values: the coordinator's ``HOST:PORT`` (process 0 serves it), the number of processes and this
process's id. They come from the ``gru-jax train`` flags, from ``JAX_COORDINATOR_ADDRESS`` /
``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``, or from SLURM and Open MPI, which
``jax.distributed.initialize()`` reads by itself.

JAX's coordination client ends the process with ``abort()`` (a C++ stack trace, exit code 134)
when it cannot join the run in time or when another process stops sending heartbeats; Python
cannot catch that. The command therefore runs a multi-process run in a child process
(:func:`supervise`): the parent forwards signals, keeps the runtime's C++ log off the terminal,
and turns such an abort into one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from gru_jax.train._checkpoint import write_atomic
from gru_jax.train._config import Config, ConfigError, TrainConfig, config_to_dict

WORKER_ENV = "_GRU_JAX_WORKER"
"""Set in the supervised child: its value is ``"OUT,ERR"``, the file descriptors of the real
standard output and error, which Python's ``sys.stdout``/``sys.stderr`` are pointed at."""

DEFAULT_INIT_TIMEOUT = 120
DEFAULT_HEARTBEAT_TIMEOUT = 100


@dataclasses.dataclass(frozen=True)
class Cluster:
    """How this process joins a run of several processes.

    Attributes:
      coordinator: the coordinator's ``HOST:PORT`` (process 0 serves it); ``None`` lets
        ``jax.distributed.initialize`` detect the cluster (SLURM, Open MPI).
      num_processes: the number of processes (``None`` with ``coordinator=None``).
      process_id: this process's id in ``[0, num_processes)``.
      init_timeout: seconds every process may take to join before the run fails.
      heartbeat_timeout: seconds without a heartbeat after which a process counts as dead.
    """

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    init_timeout: int = DEFAULT_INIT_TIMEOUT
    heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT

    def describe(self) -> str:
        """``process I of N at HOST:PORT``, or the detected cluster's name."""
        if self.coordinator is None:
            return "a process of the cluster detected by jax.distributed.initialize()"
        return f"process {self.process_id} of {self.num_processes} at {self.coordinator}"


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer; got {value!r}") from None


def _scheduler_world(env: Mapping[str, str]) -> bool:
    """Whether SLURM or Open MPI describe more than one process."""
    for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        try:
            if int(env.get(name, "1")) > 1:
                return True
        except ValueError:
            pass
    return False


def find_cluster(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    detect: bool = False,
    init_timeout: int = DEFAULT_INIT_TIMEOUT,
    heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Cluster | None:
    """The :class:`Cluster` that the arguments and the environment describe, or ``None`` for a
    single process.

    An argument overrides its environment variable (``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``). Without any of the three, SLURM or Open MPI with
    more than one task (or ``detect=True``) gives a cluster left to
    ``jax.distributed.initialize()`` to detect.

    Args:
      coordinator: the coordinator's ``HOST:PORT`` (process 0 serves it); ``None``: from
        ``JAX_COORDINATOR_ADDRESS``.
      num_processes: the number of processes; ``None``: from ``JAX_NUM_PROCESSES``. With 1,
        a single process, the result is ``None``.
      process_id: this process's id in ``[0, num_processes)``; ``None``: from
        ``JAX_PROCESS_ID``.
      detect: without any of the three, give a cluster to detect even when neither SLURM nor
        Open MPI describes several processes (``--distributed``).
      init_timeout: seconds every process may take to join, at least 1 (``--init-timeout``).
      heartbeat_timeout: seconds without a heartbeat after which a process counts as dead, at
        least 1 (``--heartbeat-timeout``).
      env: the environment variables to read (``None``: ``os.environ``).

    Raises:
      ConfigError: incomplete or inconsistent values, e.g. a process id outside
        ``[0, num_processes)`` or a coordinator that is not ``HOST:PORT``.

    Example:
      >>> from gru_jax.train import find_cluster
      >>> find_cluster("127.0.0.1:12355", 2, 1, env={}).describe()
      'process 1 of 2 at 127.0.0.1:12355'
      >>> find_cluster(env={}) is None
      True
    """
    env = os.environ if env is None else env
    for name, value in (
        ("--init-timeout", init_timeout),
        ("--heartbeat-timeout", heartbeat_timeout),
    ):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1 second; got {value}")
    address = coordinator if coordinator is not None else env.get("JAX_COORDINATOR_ADDRESS") or None
    count = num_processes if num_processes is not None else _env_int(env, "JAX_NUM_PROCESSES")
    index = process_id if process_id is not None else _env_int(env, "JAX_PROCESS_ID")
    if address is None and count is None and index is None:
        detected = Cluster(init_timeout=init_timeout, heartbeat_timeout=heartbeat_timeout)
        return detected if detect or _scheduler_world(env) else None
    if address is None or count is None or index is None:
        if _scheduler_world(env) and address is not None:
            # the scheduler gives the rest
            return Cluster(address, count, index, init_timeout, heartbeat_timeout)
        missing = [
            flag
            for flag, value in (
                ("--coordinator (or JAX_COORDINATOR_ADDRESS)", address),
                ("--num-processes (or JAX_NUM_PROCESSES)", count),
                ("--process-id (or JAX_PROCESS_ID)", index),
            )
            if value is None
        ]
        raise ConfigError(
            "a run over several processes needs --coordinator, --num-processes and "
            f"--process-id together; missing {', '.join(missing)}"
        )
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(
            f"--coordinator must be HOST:PORT with a port in [1, 65535]; got {address!r}"
        )
    if count < 1:
        raise ConfigError(f"--num-processes must be at least 1; got {count}")
    if not 0 <= index < count:
        raise ConfigError(
            f"--process-id must be in [0, {count}) for --num-processes {count}; got {index}"
        )
    if count == 1:
        return None
    return Cluster(address, count, index, init_timeout, heartbeat_timeout)


def initialize(cluster: Cluster) -> None:
    """Join the run: ``jax.distributed.initialize`` with the cluster's values and timeouts.

    On CPU the collectives between processes go through gloo (the setting only concerns the CPU
    backend, so it is harmless on GPU and TPU hosts). Must run before JAX touches a device.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        cluster.coordinator,
        cluster.num_processes,
        cluster.process_id,
        initialization_timeout=cluster.init_timeout,
        heartbeat_timeout_seconds=cluster.heartbeat_timeout,
    )


def maybe_initialize_distributed(
    force: bool = False,
    *,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    init_timeout: int = 120,
    heartbeat_timeout: int = 100,
) -> bool:
    """Join a run of several processes when the arguments or the environment describe one.

    The values come from the arguments, else from ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; without any of them, SLURM or Open MPI with more
    than one task (or ``force``) lets ``jax.distributed.initialize()`` detect the cluster. On CPU
    the collectives between processes use gloo, so several processes of one machine work too.
    Must be called before JAX uses a device. Returns whether it initialised.

    JAX ends the process (``abort``) if the others do not join within ``init_timeout`` seconds or
    one of them stops answering for ``heartbeat_timeout`` seconds; the ``gru-jax`` command runs
    such a process under a supervisor that reports this as one line.

    Args:
      force: let ``jax.distributed.initialize()`` detect the cluster even when no argument,
        environment variable or scheduler describes one (``detect`` of :func:`find_cluster`).
      coordinator: the coordinator's ``HOST:PORT`` (process 0 serves it).
      num_processes: the number of processes.
      process_id: this process's id in ``[0, num_processes)``.
      init_timeout: seconds every process may take to join.
      heartbeat_timeout: seconds without a heartbeat after which a process counts as dead.

    Raises:
      ConfigError: incomplete or inconsistent values (see :func:`find_cluster`).
    """
    cluster = find_cluster(
        coordinator,
        num_processes,
        process_id,
        detect=force,
        init_timeout=init_timeout,
        heartbeat_timeout=heartbeat_timeout,
    )
    if cluster is None:
        return False
    initialize(cluster)
    return True


# ----------------------------------------------------------------------------- the devices


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D ``("data",)`` mesh over the first ``num_devices`` devices (0: all of them).

    With several processes the mesh spans every process's devices, so ``num_devices`` must be 0
    or all of them.
    """
    devices = jax.devices()
    if num_devices:
        if num_devices > len(devices):
            raise ConfigError(
                f"config key 'train.num_devices' is {num_devices}, but only {len(devices)} "
                "device(s) are available"
            )
        if jax.process_count() > 1 and num_devices != len(devices):
            raise ConfigError(
                f"config key 'train.num_devices' must be 0 or {len(devices)} (every device of "
                f"the {jax.process_count()} processes) in a run over several processes; "
                f"got {num_devices}"
            )
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), ("data",))


def check_devices(train: TrainConfig, mesh: Mesh) -> None:
    """The cross-key constraint that needs the devices: every device gets whole rows."""
    if train.batch_size % mesh.size:
        raise ConfigError(
            f"config key 'train.batch_size' ({train.batch_size}) must be divisible by the "
            f"number of devices ({mesh.size})"
        )


# ----------------------------------------------------------------------------- the supervisor

_GLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]*\] ")
# gloo's connection notes; a note's second half can arrive on a line of its own when the
# runtime's threads write at once ("Expected number of connected peer ranks is : 3").
_NOISE = re.compile(r"\[Gloo\]|is connected to \d+ peer ranks|number of connected peer ranks")
_STATUS = re.compile(r"absl::Status: ([A-Z_]+): (.*)")
_RPC = re.compile(r"RPC: /[\w.]+/(\w+)")


def _summary(fatal: Sequence[str], cluster: Cluster) -> tuple[str, int]:
    """One line and an exit code for the runtime's fatal message (the lines from its ``F`` line)."""
    text = "\n".join(fatal)
    status = _STATUS.search(text)
    code, detail = (status.group(1), status.group(2).strip()) if status else ("UNKNOWN", "")
    rpc = _RPC.search(text)
    call = rpc.group(1) if rpc else ""
    who = cluster.describe()
    if call in ("RegisterTask", "Connect", "WaitForAllTasks") or (
        code == "DEADLINE_EXCEEDED" and call != "PollForError"
    ):
        if cluster.process_id == 0:
            advice = (
                f"the other {(cluster.num_processes or 2) - 1} process(es) did not come: start "
                "each with the same --coordinator and --num-processes and its own --process-id"
            )
        else:
            advice = (
                "check that process 0 is running and that every process was given the same "
                "--coordinator and --num-processes and its own --process-id"
            )
        limit = f"--init-timeout {cluster.init_timeout} s"
        return f"{who} could not join the run within {limit} ({code}): {advice}", 2
    if "heartbeat" in text or code == "UNAVAILABLE":
        return (
            f"{who} stopped: another process of the run died or stopped answering "
            f"(no heartbeat for --heartbeat-timeout {cluster.heartbeat_timeout} s); "
            "see that process's output",
            1,
        )
    return f"{who} stopped: the distributed runtime failed ({code}: {detail[:200]})", 1


def _pump(stream: int, fatal: list[str], echo: bool) -> None:
    """Copy the child's C-level output to this process's stderr, without the runtime's log.

    Lines of Google's logging format (``I``/``W``/``E``/``F`` + date) and gloo's connection
    notes are dropped; from a fatal (``F``) line on, everything is kept in ``fatal``.
    """
    with os.fdopen(stream, "r", errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if fatal or (line.startswith("F") and _GLOG.match(line)):
                fatal.append(line)
            elif echo and line and not _GLOG.match(line) and not _NOISE.search(line):
                print(line, file=sys.stderr, flush=True)


def supervise(argv: Sequence[str], cluster: Cluster, *, prog: str = "gru-jax") -> int:
    """Run ``python -m gru_jax.cli ARGV`` as this process's worker; return its exit code.

    The worker's Python output goes straight to this process's standard output and error; its
    C-level output comes through a pipe, without the coordination service's log lines and
    gloo's notes. SIGINT and SIGTERM are passed on to the worker, which checkpoints and stops.
    If the worker is aborted by the runtime, the result is one line and exit code 2 (it could
    not join the run) or 1 (another process died); a worker killed by any other signal gives
    ``128 + signal``. The worker dies with this process (``PR_SET_PDEATHSIG``).

    Args:
      argv: the worker's command-line arguments, those of this ``gru-jax`` command (without
        the program's name).
      cluster: the run this process joins (:func:`find_cluster`), named in the error lines.
      prog: the program's name that starts each error line (``PROG: error: ...``).
    """
    out, err = os.dup(sys.stdout.fileno()), os.dup(sys.stderr.fileno())
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "gru_jax.cli", *argv],
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=write,
            pass_fds=(out, err),
            env=dict(os.environ, **{WORKER_ENV: f"{out},{err}"}),
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(write)
        os.close(out)
        os.close(err)
    fatal: list[str] = []
    pump = threading.Thread(target=_pump, args=(read, fatal, True), daemon=True)
    pump.start()

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    pump.join(timeout=10)
    if code >= 0:
        return code
    if fatal:
        message, code = _summary(fatal[:400], cluster)
        print(f"{prog}: error: {message}", file=sys.stderr)
        return code
    name = signal.Signals(-code).name
    print(f"{prog}: error: {cluster.describe()} was killed by {name}", file=sys.stderr)
    return 128 - code


def _die_with_parent() -> None:
    """In the forked child: ask Linux to send SIGKILL when the parent dies (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def become_worker() -> bool:
    """In the supervised child, point ``sys.stdout``/``sys.stderr`` at the real terminal (or
    files) the parent handed over; C-level output keeps going to the parent's filter.
    Returns whether this process is a supervised worker."""
    fds = os.environ.pop(WORKER_ENV, None)
    if not fds:
        return False
    out, err = (int(fd) for fd in fds.split(","))
    sys.stdout = open(out, "w", buffering=1, encoding="utf-8")
    sys.stderr = open(err, "w", buffering=1, encoding="utf-8")
    return True


def same_config_everywhere(config: Config) -> None:
    """With several processes, refuse to start unless every process was given the same config."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    text = json.dumps(config_to_dict(config), sort_keys=True)
    digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint32)
    everyone = np.asarray(multihost_utils.process_allgather(digest))
    differing = [
        i for i in range(everyone.shape[0]) if not np.array_equal(everyone[i], everyone[0])
    ]
    if differing:
        raise ConfigError(
            f"processes {differing} were given another config than process 0; every process "
            "of a run needs the same config file and --set values"
        )


def write_process_file(workdir: Path, mesh: Mesh, batch_size: int, batch: Any) -> None:
    """``processes/<id>.json``: this process's host, devices and rows of every batch."""
    leaf = jax.tree.leaves(batch)[0]
    rows = sorted(
        {
            s.index[0].indices(leaf.shape[0])[:2]  # (start, stop) of its rows
            for s in leaf.addressable_shards
        }
    )
    share = batch_size // jax.process_count()
    first = jax.process_index() * share
    if sum(b - a for a, b in rows) != share or rows[0][0] != first:
        raise AssertionError(f"process {jax.process_index()} holds rows {rows} of a batch")
    info = {
        "process_id": jax.process_index(),
        "process_count": jax.process_count(),
        "host": socket.gethostname(),
        "local_devices": [str(d) for d in mesh.local_devices],
        "global_devices": mesh.size,
        "batch_rows": [list(r) for r in rows],
        "batch_size": batch_size,
    }
    path = workdir / "processes" / f"{jax.process_index()}.json"
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, json.dumps(info, indent=2) + "\n")
