"""The generic training loop: Optax, Orbax checkpoints, JSONL metrics, plots, many devices.

One function, :func:`train_and_evaluate`, trains any task of :mod:`gru_jax.tasks` from a
:class:`~gru_jax.train.Config`; :func:`evaluate_checkpoint` evaluates a run's latest
checkpoint on fresh data. Everything random is a function of ``(seed, step)``: step ``s`` trains
on the batch drawn from ``fold_in(data_key, s)`` and its dropout key is
``fold_in(dropout_key, s)``, so a run stopped and resumed is the run straight through.

Data parallelism: a 1-D mesh over the ``data`` axis of the devices in use; each batch is sharded
along its first axis, parameters and optimiser state are replicated, and XLA inserts the gradient
all-reduce. The same code runs on one CPU, on a GPU or TPU, on many local devices and, after
:func:`maybe_initialize_distributed`, on many hosts.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
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
from gru_jax.train._config import Config, ConfigError, TrainConfig, config_to_dict

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

State = dict[str, Any]  # {"params": ..., "opt_state": ..., "step": int32 scalar}


def maybe_initialize_distributed(force: bool = False) -> bool:
    """Call ``jax.distributed.initialize()`` when the environment describes several processes
    (``JAX_COORDINATOR_ADDRESS``, or SLURM / Open MPI with more than one task), or ``force``."""
    env = os.environ
    several = (
        "JAX_COORDINATOR_ADDRESS" in env
        or int(env.get("SLURM_NTASKS", "1")) > 1
        or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    )
    if force or several:
        jax.distributed.initialize()
        return True
    return False


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D ``("data",)`` mesh over the first ``num_devices`` devices (0: all of them)."""
    devices = jax.devices()
    if num_devices:
        if num_devices > len(devices):
            raise ConfigError(
                f"config key 'train.num_devices' is {num_devices}, but only {len(devices)} "
                "device(s) are available"
            )
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), ("data",))


def make_optimizer(train: TrainConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with global-norm clipping and a linear-warmup + cosine-decay learning rate.

    The warmup is clamped to ``steps - 1`` so that tiny smoke runs stay valid.
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
    return optimizer, schedule


def _check_train_config(train: TrainConfig, num_devices: int) -> None:
    for key in (
        "steps",
        "batch_size",
        "log_every",
        "eval_every",
        "eval_batches",
        "checkpoint_every",
        "keep_checkpoints",
    ):
        if getattr(train, key) <= 0:
            raise ConfigError(
                f"config key 'train.{key}' must be positive; got {getattr(train, key)}"
            )
    if train.batch_size % num_devices:
        raise ConfigError(
            f"config key 'train.batch_size' ({train.batch_size}) must be divisible by the "
            f"number of devices ({num_devices})"
        )


class _Run:
    """The compiled pieces of a run: model, data, step and eval functions, and their shardings."""

    def __init__(self, config: Config, *, eval_seed: int | None = None):
        self.config = config
        self.task: Task = get_task(config.task)
        self.mesh = make_mesh(config.train.num_devices)
        _check_train_config(config.train, self.mesh.size)
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
        return ocp.CheckpointManager(workdir.resolve() / "checkpoints", options=options)

    def restore(self, manager: ocp.CheckpointManager, step: int) -> tuple[State, dict[str, Any]]:
        abstract = jax.eval_shape(self.fresh_state)
        abstract = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated), abstract
        )
        where = f"checkpoint of step {step} in {str(manager.directory)!r}"
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # tensorstore/orbax errors on truncated or missing files
            raise CheckpointError(
                f"{where} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                "delete that step's directory to resume from an earlier checkpoint"
            ) from e
        state, meta = restored["state"], restored["meta"]
        if not isinstance(meta, dict) or meta.get("checksum") != state_checksum(state):
            raise CheckpointError(
                f"{where} is corrupted: its arrays do not match the checksum written with them; "
                "delete that step's directory to resume from an earlier checkpoint"
            )
        return state, meta


class CheckpointError(ConfigError):
    """A checkpoint that cannot be trusted: unreadable, truncated, or not what was written."""


def state_checksum(state: State) -> str:
    """SHA-256 over every array of ``state`` (paths, dtypes, shapes and bytes), in tree order."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        array = np.asarray(jax.device_get(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _save(manager: ocp.CheckpointManager, state: State, meta: dict[str, Any]) -> None:
    """Save ``state`` with ``meta`` and a checksum. Orbax writes into a temporary directory and
    renames it when complete, so a crash mid-write leaves no step that looks finished."""
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


def _progress(total: int, completed: int) -> tuple[Progress, TaskID]:
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
        disable=not console.is_terminal,
    )
    task_id = progress.add_task("train", total=total, completed=completed, loss="-", speed="-")
    return progress, task_id


def train_and_evaluate(
    config: Config,
    workdir: str | Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
) -> dict[str, Any] | None:
    """Train ``config``'s task into ``workdir``; return the summary (``None`` if stopped early).

    ``workdir`` receives ``config.yaml``, ``metrics.jsonl`` (one JSON object per logged step),
    Orbax checkpoints under ``checkpoints/``, ``plots/*.png`` and ``summary.json`` with ``task``,
    ``metric``, ``value``, ``baseline``, ``target``, ``reached``, ``steps`` and
    ``wall_seconds``.

    Args:
      config: a checked config (see :func:`gru_jax.train.load_config`).
      workdir: the run's directory; created if missing.
      resume: continue from the latest checkpoint in ``workdir`` (a fresh start if none).
        Without it, a workdir that already holds checkpoints is refused.
      stop_after: stop after this many steps of this call, checkpointing first (to split a run
        across jobs); ``--resume`` continues it.
    """
    workdir = Path(workdir)
    run = _Run(config)
    workdir.mkdir(parents=True, exist_ok=True)
    manager = run.checkpoint_manager(workdir)
    latest = manager.latest_step()
    if latest is not None and not resume:
        raise ConfigError(
            f"workdir {str(workdir)!r} already holds checkpoints (latest step {latest}); "
            "pass --resume to continue it or choose another --workdir"
        )
    metrics_path = workdir / "metrics.jsonl"
    if latest is not None:
        state, meta = run.restore(manager, latest)
        elapsed_before = float(meta["wall_seconds"])
        if metrics_path.exists():  # drop what was logged after the checkpoint
            kept = [
                line
                for line in metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= latest
            ]
            _write_atomic(metrics_path, "".join(line + "\n" for line in kept))
    else:
        state, elapsed_before = run.fresh_state(), 0.0
        metrics_path.write_text("")
    _write_atomic(workdir / "config.yaml", yaml.safe_dump(config_to_dict(config), sort_keys=False))

    train = config.train
    start = int(state["step"])
    end = train.steps if stop_after is None else min(train.steps, start + stop_after)
    started = time.perf_counter()
    losses: list[jax.Array] = []
    last_log_time, last_log_step = started, start
    progress, bar = _progress(train.steps, start)
    with progress, metrics_path.open("a") as metrics_file:

        def log(row: dict[str, Any]) -> None:
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()

        for step in range(start, end):
            state, aux = run.train_step(
                state, run.train_batch(jax.random.fold_in(run.k_data, step))
            )
            losses.append(aux["loss"])
            done = step + 1
            if done % train.log_every == 0 or done == end:
                now = time.perf_counter()
                loss = float(jnp.mean(jnp.stack(losses)))
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
            if done % train.checkpoint_every == 0 or done == end:
                _save(
                    manager, state, {"wall_seconds": elapsed_before + time.perf_counter() - started}
                )
    wall_seconds = elapsed_before + time.perf_counter() - started

    if end < train.steps:
        manager.close()
        return None

    value = run.evaluate(state["params"])
    with metrics_path.open("a") as metrics_file:
        metrics_file.write(
            json.dumps({"step": train.steps, f"eval_{run.task.metric}": value}) + "\n"
        )
    splits = Splits(config.data, run.source, run.eval_source)
    baseline = float(run.task.baseline(splits))
    target = config.target
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
        "steps": train.steps,
        "wall_seconds": wall_seconds,
        "devices": run.mesh.size,
        "platform": jax.default_backend(),
    }
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
                run.model,
                state["params"],
                splits,
                jax.random.fold_in(run.k_eval, 10**6),
                workdir,
            )
    except ModuleNotFoundError as e:  # matplotlib is an optional dependency
        summary["plots"] = f"skipped: {e}"
    _write_atomic(workdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    manager.close()
    return summary


def evaluate_checkpoint(config: Config, workdir: str | Path, *, seed: int) -> dict[str, Any]:
    """Evaluate the latest checkpoint in ``workdir`` on fresh data drawn from ``seed``."""
    workdir = Path(workdir)
    if not (workdir / "checkpoints").is_dir():
        raise ConfigError(f"workdir {str(workdir)!r} holds no checkpoints")
    run = _Run(config, eval_seed=seed)
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
