"""The generic training loop: Optax, Orbax checkpoints, JSONL metrics, plots, many devices.

One function, :func:`train_and_evaluate`, trains any task of :mod:`gru_jax.tasks` from a
:class:`~gru_jax.train.Config`; :func:`evaluate_checkpoint` evaluates a run's latest
checkpoint on fresh data. Everything random is a function of ``(seed, step)``: step ``s`` trains
on the batch drawn from ``fold_in(data_key, s)`` and its dropout key is
``fold_in(dropout_key, s)``, so a run stopped and resumed is the run straight through.

Data parallelism: a 1-D mesh over the ``data`` axis of the devices in use; each batch is sharded
along its first axis, parameters and optimiser state are replicated, and XLA inserts the gradient
all-reduce. The same code runs on one CPU, on a GPU or TPU, on many local devices and, after
:func:`maybe_initialize_distributed`, on several processes: every process runs this loop, holds
its own rows of each batch, and writes its part of each Orbax checkpoint; process 0 alone writes
``config.yaml``, ``metrics.jsonl``, ``summary.json``, the plots and the progress bar.

Preemption: with ``handle_signals=True`` a SIGTERM or SIGINT lets the current step finish, then
the run checkpoints and raises :class:`Preempted`; every process stops after the same step.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import yaml
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gru_jax.tasks import Splits, Task, get_task
from gru_jax.train._config import (
    Config,
    ConfigError,
    TrainConfig,
    config_differences,
    config_to_dict,
)
from gru_jax.train._distributed import find_cluster, initialize

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

State = dict[str, Any]  # {"params": ..., "opt_state": ..., "step": int32 scalar}


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


def make_optimizer(train: TrainConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with global-norm clipping and a linear-warmup + cosine-decay learning rate.

    The warmup is clamped to ``steps - 1`` so that tiny smoke runs stay valid. With
    ``skip_nonfinite > 0`` the whole chain is wrapped in ``optax.apply_if_finite``: a step whose
    gradient holds an Inf or NaN leaves the parameters and the optimiser's moments unchanged
    (up to that many such steps in a row; then the update is applied, and training fails
    visibly).
    """
    warmup = min(train.warmup_steps, max(train.steps - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=train.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(train.steps, warmup + 1),
        end_value=train.learning_rate * train.end_learning_rate_ratio,
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(train.grad_clip),
        optax.adamw(schedule, weight_decay=train.weight_decay),
    )
    if train.skip_nonfinite:
        optimizer = optax.apply_if_finite(optimizer, max_consecutive_errors=train.skip_nonfinite)
    return optimizer, schedule


def _check_devices(train: TrainConfig, mesh: Mesh) -> None:
    """The cross-key constraint that needs the devices: every device gets whole rows."""
    if train.batch_size % mesh.size:
        raise ConfigError(
            f"config key 'train.batch_size' ({train.batch_size}) must be divisible by the "
            f"number of devices ({mesh.size})"
        )


class _Run:
    """The compiled pieces of a run: model, data, step and eval functions, and their shardings."""

    def __init__(self, config: Config, *, eval_seed: int | None = None):
        self.config = config
        self.task: Task = get_task(config.task)
        self.mesh = make_mesh(config.train.num_devices)
        _check_devices(config.train, self.mesh)
        self.model = self.task.make_model(config.model, config.data)
        self.optimizer, self.schedule = make_optimizer(config.train)
        k_init, self.k_data, self.k_dropout, self.k_eval = jax.random.split(
            jax.random.key(config.seed), 4
        )
        self.source = self.task.make_source(config.data, config.seed)
        seed = config.seed + 1 if eval_seed is None else eval_seed
        self.eval_source = self.task.make_source(config.data, seed)
        if eval_seed is not None:
            self.k_eval = jax.random.split(jax.random.key(eval_seed), 4)[3]
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P("data"))
        batch_size = config.train.batch_size

        self.train_batch = jax.jit(
            lambda key: self.source.batch(key, batch_size), out_shardings=self.sharded
        )
        self.eval_batch = jax.jit(
            lambda key: self.eval_source.batch(key, batch_size), out_shardings=self.sharded
        )
        self.init_state = jax.jit(self._init_state, out_shardings=self.replicated)
        self.train_step = jax.jit(
            self._train_step,
            in_shardings=(self.replicated, self.sharded),
            out_shardings=(self.replicated, self.replicated),
            donate_argnums=0,
        )
        self.metric_sums = jax.jit(
            lambda params, batch: self.task.metric_sums(self.model, params, batch),
            in_shardings=(self.replicated, self.sharded),
            out_shardings=self.replicated,
        )
        self._k_init = k_init

    def _init_state(self, key: jax.Array, batch: Any) -> State:
        params = self.model.init({"params": key}, batch)
        return {
            "params": params,
            "opt_state": self.optimizer.init(params),
            "step": jnp.zeros((), jnp.int32),
        }

    def _train_step(self, state: State, batch: Any) -> tuple[State, dict[str, jax.Array]]:
        dropout_key = jax.random.fold_in(self.k_dropout, state["step"])

        def loss_fn(params: Any) -> jax.Array:
            outputs = self.model.apply(params, batch, train=True, rngs={"dropout": dropout_key})
            return self.task.loss(outputs, batch)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    def fresh_state(self) -> State:
        batch = self.train_batch(jax.random.fold_in(self.k_data, 0))
        state: State = self.init_state(self._k_init, batch)
        return state

    def evaluate(self, params: Any) -> float:
        """The task's metric over ``eval_batches`` batches of the evaluation source."""
        total = count = 0.0
        for i in range(self.config.train.eval_batches):
            s, c = self.metric_sums(params, self.eval_batch(jax.random.fold_in(self.k_eval, i)))
            total, count = total + float(s), count + float(c)
        return total / count

    def checkpoint_manager(self, workdir: Path) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=self.config.train.keep_checkpoints,
            enable_async_checkpointing=False,
            create=True,
            cleanup_tmp_directories=True,  # what a killed save left behind
        )
        return ocp.CheckpointManager(
            workdir.resolve() / "checkpoints",
            options=options,
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
            },
        )

    def restore(self, manager: ocp.CheckpointManager, step: int) -> tuple[State, dict[str, Any]]:
        """Restore the checkpoint of ``step`` onto this run's devices, checking first that it
        holds arrays of this run's shapes, then that its bytes match its checksum."""
        abstract = jax.eval_shape(self.fresh_state)
        abstract = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated), abstract
        )
        where = f"checkpoint of step {step} in {str(manager.directory)!r}"
        unreadable = (
            "the files are incomplete or damaged; move that step's directory aside to resume "
            "from the checkpoint before it"
        )
        try:
            saved = manager.item_metadata(step)["state"].tree
        except Exception as e:  # orbax/tensorstore errors on missing or truncated metadata
            raise CheckpointError(f"{where} cannot be read ({_first_line(e)}): {unreadable}") from e
        _check_shapes(abstract, saved, where)
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # tensorstore/orbax errors on truncated or missing files
            raise CheckpointError(f"{where} cannot be read ({_first_line(e)}): {unreadable}") from e
        state, meta = restored["state"], restored["meta"]
        if not isinstance(meta, dict) or meta.get("checksum") != state_checksum(state):
            raise CheckpointError(
                f"{where} is corrupted: its arrays do not match the checksum written with them; "
                "move that step's directory aside to resume from the checkpoint before it"
            )
        return state, meta


@functools.lru_cache(maxsize=4)
def _cached_run(
    config: Config, eval_seed: int | None, task: Task, devices: tuple[Any, ...]
) -> _Run:
    del task, devices  # part of the cache key only
    return _Run(config, eval_seed=eval_seed)


def _run_for(config: Config, *, eval_seed: int | None = None) -> _Run:
    """The :class:`_Run` of ``config``, kept for the next calls of this process with the same
    config (a resumed run, ``eval`` after ``train``), which then reuse its compiled functions.
    Keyed by the task object and the devices too, so a re-registered task or a new backend
    gives a new one; a config that cannot be hashed is not kept."""
    task, devices = get_task(config.task), tuple(jax.devices())
    try:
        hash((config, eval_seed, task, devices))
    except TypeError:
        return _Run(config, eval_seed=eval_seed)
    return _cached_run(config, eval_seed, task, devices)


class CheckpointError(ConfigError):
    """A checkpoint that cannot be trusted: unreadable, truncated, or not what was written."""


class Preempted(Exception):
    """The run stopped on SIGTERM or SIGINT, after checkpointing its last step.

    Raised by :func:`train_and_evaluate` with ``handle_signals=True``; ``--resume`` continues
    the run exactly. The ``gru-jax`` command exits with ``128 + signum`` (143 or 130).

    Attributes:
      signum: the signal's number.
      step: the step the checkpoint holds.
    """

    def __init__(self, signum: int, step: int):
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after step {step} (checkpointed)"
        )
        self.signum = signum
        self.step = step


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


def _check_shapes(abstract: Any, saved: Any, where: str) -> None:
    """Refuse a readable checkpoint whose arrays have other shapes than this run's model: it was
    written by another config (a :class:`ConfigError`, not a damaged checkpoint)."""
    expected = {_path_name(p): a for p, a in jax.tree_util.tree_leaves_with_path(abstract)}
    try:
        found = {_path_name(p): a for p, a in jax.tree_util.tree_leaves_with_path(saved)}
    except Exception:
        return
    differing = [
        f"{key} saved {tuple(found[key].shape)} {found[key].dtype}, "
        f"this config makes {tuple(a.shape)} {a.dtype}"
        for key, a in expected.items()
        if key in found
        and (tuple(found[key].shape) != tuple(a.shape) or np.dtype(found[key].dtype) != a.dtype)
    ]
    missing = sorted(set(expected) ^ set(found))
    if differing or missing:
        detail = differing[0] if differing else f"arrays {missing[:3]} are in only one of them"
        raise ConfigError(
            f"{where} was written by a model of another config ({detail}); it is intact: give "
            "the config the run was trained with, or another --workdir"
        )


def _host_floats(values: list[Any]) -> np.ndarray:
    """Scalars (device arrays, replicated ones included, or floats) as one float64 host array,
    fetched with one ``jax.device_get`` rather than one transfer each."""
    return np.asarray(jax.device_get(values), np.float64)


def _path_name(path: tuple[Any, ...]) -> str:
    """``opt_state/1/0/mu/params/...``: a tree path in the same words whether it runs through
    dicts, tuples or named tuples (Orbax's metadata stores them differently)."""
    names = (getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return "/".join(map(str, names))


def _host(leaf: Any) -> np.ndarray:
    """A replicated array's value on the host (any process holds a whole copy)."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return np.asarray(leaf.addressable_data(0))
    return np.asarray(jax.device_get(leaf))


def state_checksum(state: State) -> str:
    """SHA-256 over every array of ``state`` (paths, dtypes, shapes and bytes), in tree order."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        array = _host(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _save(manager: ocp.CheckpointManager, state: State, meta: dict[str, Any]) -> None:
    """Save ``state`` with ``meta`` and a checksum (every process takes part). Orbax writes into a
    temporary directory and renames it when complete, so a crash mid-write leaves no step that
    looks finished."""
    step = int(state["step"])
    if step in manager.all_steps():
        return
    meta = meta | {"checksum": state_checksum(state)}
    manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
    )
    manager.wait_until_finished()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _progress(total: int, completed: int, *, show: bool) -> tuple[Progress, TaskID]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} steps/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not (show and console.is_terminal),
    )
    task_id = progress.add_task("train", total=total, completed=completed, loss="-", speed="-")
    return progress, task_id


class _StopRequests:
    """SIGTERM and SIGINT, turned into "stop after this step" (a context manager).

    The first signal is recorded and later ones are ignored until the run has checkpointed, so
    that a scheduler's repeated signals or a second Ctrl-C cannot interrupt the checkpoint.
    :meth:`poll` is called once per step and says after which step to stop: in one process, as
    soon as a signal arrived; over several processes, each step's flags are combined by a
    collective maximum whose result is read one step later, so every process stops after the
    same step without waiting on the collective.
    """

    def __init__(self, enabled: bool, mesh: Mesh):
        self.enabled = enabled
        self.signum = 0
        self.several = jax.process_count() > 1
        self._previous: dict[int, Any] = {}
        self._pending: jax.Array | None = None
        if self.several:
            self._local = len(mesh.local_devices)
            self._sharding = NamedSharding(mesh, P("data"))
            self._max = jax.jit(jnp.max, out_shardings=NamedSharding(mesh, P()))

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if not self.signum:
            self.signum = signum

    def __enter__(self) -> _StopRequests:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def poll(self) -> int:
        """The signal to stop on after the step just dispatched (0: go on)."""
        if not self.enabled:
            return 0
        if not self.several:
            return self.signum
        local = np.full((self._local,), self.signum, np.int32)
        flags = jax.make_array_from_process_local_data(self._sharding, local)
        previous, self._pending = self._pending, self._max(flags)
        return 0 if previous is None else int(previous)


def _check_saved_config(workdir: Path, config: Config, *, evaluating: bool) -> None:
    """Compare ``config`` with the ``config.yaml`` that trained the run in ``workdir``."""
    path = workdir / "config.yaml"
    if not path.is_file():
        return
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {str(path)!r}: {_first_line(e)}") from e
    if not isinstance(saved, dict):
        raise ConfigError(f"{str(path)!r} must hold a mapping; got {type(saved).__name__}")
    differing = config_differences(saved, config, evaluating=evaluating)
    if differing:
        run, given = _flat(saved), _flat(config_to_dict(config))
        shown = ", ".join(
            f"{key} (run: {run.get(key, 'default')!r}, given: {given.get(key)!r})"
            for key in differing[:4]
        )
        more = f" and {len(differing) - 4} more" if len(differing) > 4 else ""
        action = "evaluate it with" if evaluating else "resume it with"
        raise ConfigError(
            f"the run in {str(workdir)!r} was trained with another config: {shown}{more}; "
            f"{action} the same values (they are in {str(path)!r})"
        )


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"model.hidden_size": 64, ...}``."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out |= _flat(value, f"{prefix}{key}.")
    return out


def _same_everywhere(config: Config) -> None:
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


def _write_process_file(workdir: Path, run: _Run, batch: Any) -> None:
    """``processes/<id>.json``: this process's host, devices and rows of every batch."""
    leaf = jax.tree.leaves(batch)[0]
    rows = sorted(
        {
            s.index[0].indices(leaf.shape[0])[:2]  # (start, stop) of its rows
            for s in leaf.addressable_shards
        }
    )
    share = run.config.train.batch_size // jax.process_count()
    first = jax.process_index() * share
    if sum(b - a for a, b in rows) != share or rows[0][0] != first:
        raise AssertionError(f"process {jax.process_index()} holds rows {rows} of a batch")
    info = {
        "process_id": jax.process_index(),
        "process_count": jax.process_count(),
        "host": socket.gethostname(),
        "local_devices": [str(d) for d in run.mesh.local_devices],
        "global_devices": run.mesh.size,
        "batch_rows": [list(r) for r in rows],
        "batch_size": run.config.train.batch_size,
    }
    path = workdir / "processes" / f"{jax.process_index()}.json"
    path.parent.mkdir(exist_ok=True)
    _write_atomic(path, json.dumps(info, indent=2) + "\n")


def train_and_evaluate(
    config: Config,
    workdir: str | Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    handle_signals: bool = False,
) -> dict[str, Any] | None:
    """Train ``config``'s task into ``workdir``; return the summary (``None`` if stopped early).

    ``workdir`` receives ``config.yaml``, ``metrics.jsonl`` (one JSON object per logged step),
    Orbax checkpoints under ``checkpoints/``, ``plots/*.png`` and ``summary.json`` with ``task``,
    ``metric``, ``value``, ``baseline``, ``target``, ``reached``, ``steps`` and
    ``wall_seconds``. With several processes, every one calls this function with the same
    arguments; process 0 alone writes those files and returns the summary, and each process
    writes ``processes/<id>.json`` (its host, devices and rows of each batch).

    Args:
      config: a checked config (see :func:`gru_jax.train.load_config`).
      workdir: the run's directory; created if missing.
      resume: continue from the latest checkpoint in ``workdir`` (a fresh start if none). The
        config must match the run's ``config.yaml`` in every key that shapes the model, the
        optimiser state or the data (see :func:`gru_jax.train.config_differences`).
        Without it, a workdir that already holds checkpoints is refused.
      stop_after: stop after this many steps of this call, checkpointing first (to split a run
        across jobs); ``--resume`` continues it.
      handle_signals: on SIGTERM or SIGINT, finish the current step, checkpoint it and raise
        :class:`Preempted` (the handlers are installed for the call; main thread only).

    Raises:
      ConfigError: a mistake in the config or the workdir, before anything compiles.
      Preempted: a signal stopped the run (with ``handle_signals``); it is checkpointed.
    """
    workdir = Path(workdir)
    lead = jax.process_index() == 0
    if resume:
        _check_saved_config(workdir, config, evaluating=False)
    _same_everywhere(config)
    run = _run_for(config)
    workdir.mkdir(parents=True, exist_ok=True)
    manager = run.checkpoint_manager(workdir)
    latest = manager.latest_step()
    if latest is not None and not resume:
        raise ConfigError(
            f"workdir {str(workdir)!r} already holds checkpoints (latest step {latest}); "
            "pass --resume to continue it or choose another --workdir"
        )
    metrics_path = workdir / "metrics.jsonl"
    pending: list[float] = []  # losses since the last logged step, carried by checkpoints
    if latest is not None:
        state, meta = run.restore(manager, latest)
        elapsed_before = float(meta["wall_seconds"])
        pending = [float(x) for x in meta.get("pending_losses", [])]
        if lead and metrics_path.exists():  # drop what was logged after the checkpoint
            kept = [
                line
                for line in metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= latest
            ]
            _write_atomic(metrics_path, "".join(line + "\n" for line in kept))
    else:
        state, elapsed_before = run.fresh_state(), 0.0
        if lead:
            metrics_path.write_text("")
    if lead:
        _write_atomic(
            workdir / "config.yaml", yaml.safe_dump(config_to_dict(config), sort_keys=False)
        )
    if jax.process_count() > 1:
        _write_process_file(workdir, run, run.train_batch(jax.random.fold_in(run.k_data, 0)))

    train = config.train
    start = int(state["step"])
    end = train.steps if stop_after is None else min(train.steps, start + stop_after)
    started = time.perf_counter()
    losses: list[Any] = list(pending)
    last_log_time, last_log_step = started, start
    progress, bar = _progress(train.steps, start, show=lead)
    stopped = 0
    done = start

    def checkpoint() -> None:
        _save(
            manager,
            state,
            {
                "wall_seconds": elapsed_before + time.perf_counter() - started,
                "pending_losses": _host_floats(losses).tolist(),
            },
        )

    with (
        progress,
        _StopRequests(handle_signals, run.mesh) as stops,
        metrics_path.open("a") if lead else open(os.devnull, "w") as metrics_file,
    ):

        def log(row: dict[str, Any]) -> None:
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()

        for step in range(start, end):
            state, aux = run.train_step(
                state, run.train_batch(jax.random.fold_in(run.k_data, step))
            )
            losses.append(aux["loss"])
            done = step + 1
            if done % train.log_every == 0 or done == train.steps:
                now = time.perf_counter()
                loss = float(np.mean(_host_floats(losses)))
                speed = (done - last_log_step) / max(now - last_log_time, 1e-9)
                log(
                    {
                        "step": done,
                        "loss": loss,
                        "grad_norm": float(aux["grad_norm"]),
                        "learning_rate": float(run.schedule(step)),
                        "steps_per_second": speed,
                        "wall_seconds": elapsed_before + now - started,
                    }
                )
                progress.update(bar, completed=done, loss=f"{loss:.4g}", speed=f"{speed:.1f}")
                losses, last_log_time, last_log_step = [], now, done
            if done % train.eval_every == 0 and done != train.steps:
                log({"step": done, f"eval_{run.task.metric}": run.evaluate(state["params"])})
            stopped = stops.poll()
            if done % train.checkpoint_every == 0 or done == end or stopped:
                checkpoint()
            if stopped:
                break
    wall_seconds = elapsed_before + time.perf_counter() - started

    if stopped and done < train.steps:
        manager.close()
        raise Preempted(stops.signum or stopped, done)
    if done < train.steps:
        manager.close()
        return None

    value = run.evaluate(state["params"])
    if not lead:
        manager.close()
        return None
    return _finish(run, state, workdir, value, wall_seconds, manager)


def resolve_target(config: Config, baseline: float) -> float | None:
    """The run's target value: ``target``, or ``target_vs_baseline × baseline``, or ``None``."""
    if config.target_vs_baseline is not None:
        return config.target_vs_baseline * baseline
    return config.target


def _finish(
    run: _Run,
    state: State,
    workdir: Path,
    value: float,
    wall_seconds: float,
    manager: ocp.CheckpointManager,
) -> dict[str, Any]:
    """Process 0's end of a run: the last metrics row, baseline, plots, report, summary.json."""
    config, metrics_path = run.config, workdir / "metrics.jsonl"
    with metrics_path.open("a") as metrics_file:
        metrics_file.write(
            json.dumps({"step": config.train.steps, f"eval_{run.task.metric}": value}) + "\n"
        )
    splits = Splits(config.data, run.source, run.eval_source)
    baseline = float(run.task.baseline(splits))
    target = resolve_target(config, baseline)
    reached = (
        None
        if target is None
        else bool(value >= target if run.task.higher_is_better else value <= target)
    )
    summary = {
        "task": config.task,
        "metric": run.task.metric,
        "higher_is_better": run.task.higher_is_better,
        "value": value,
        "baseline": baseline,
        "target": target,
        "reached": reached,
        "steps": config.train.steps,
        "wall_seconds": wall_seconds,
        "devices": run.mesh.size,
        "processes": jax.process_count(),
        "platform": jax.default_backend(),
    }
    # The report runs on this process alone, on a local copy of the parameters.
    params = jax.tree.map(lambda leaf: jnp.asarray(_host(leaf)), state["params"])
    try:
        from gru_jax.train._plots import loss_plot

        loss_plot(
            metrics_path,
            workdir / "plots" / "loss.png",
            metric=run.task.metric,
            baseline=baseline,
            target=target,
        )
        if run.task.report is not None:
            summary |= run.task.report(
                run.model, params, splits, jax.random.fold_in(run.k_eval, 10**6), workdir
            )
    except ImportError as e:  # matplotlib is a dependency: only a broken install lacks it
        summary["plots"] = f"skipped: {e}"
    _write_atomic(workdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    manager.close()
    return summary


def load_checkpoint(config: Config, workdir: str | Path) -> tuple[Any, Any, int]:
    """The model, the parameters (host arrays) and the step of the latest checkpoint of a run.

    The config must match the run's ``config.yaml`` in its task, model and data keys, as for
    :func:`evaluate_checkpoint`. A workdir without checkpoints is a :class:`ConfigError`.
    """
    workdir = Path(workdir)
    if not (workdir / "checkpoints").is_dir():
        raise ConfigError(f"workdir {str(workdir)!r} holds no checkpoints")
    _check_saved_config(workdir, config, evaluating=True)
    run = _run_for(config)
    manager = run.checkpoint_manager(workdir)
    step = manager.latest_step()
    if step is None:
        manager.close()
        raise ConfigError(f"workdir {str(workdir)!r} holds no checkpoints")
    state, _ = run.restore(manager, step)
    manager.close()
    params = jax.tree.map(lambda leaf: jnp.asarray(_host(leaf)), state["params"])
    return run.model, params, step


def evaluate_checkpoint(config: Config, workdir: str | Path, *, seed: int) -> dict[str, Any]:
    """Evaluate the latest checkpoint in ``workdir`` on fresh data drawn from ``seed``.

    The config must match the run's ``config.yaml`` in its task, model and data keys (the
    ``train`` section, ``seed`` and ``target`` may differ).
    """
    workdir = Path(workdir)
    if not (workdir / "checkpoints").is_dir():
        raise ConfigError(f"workdir {str(workdir)!r} holds no checkpoints")
    _check_saved_config(workdir, config, evaluating=True)
    run = _run_for(config, eval_seed=seed)
    manager = run.checkpoint_manager(workdir)
    step = manager.latest_step()
    if step is None:
        raise ConfigError(f"workdir {str(workdir)!r} holds no checkpoints")
    state, _ = run.restore(manager, step)
    value = run.evaluate(state["params"])
    manager.close()
    return {
        "task": config.task,
        "metric": run.task.metric,
        "value": value,
        "step": step,
        "seed": seed,
    }
