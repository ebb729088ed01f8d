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

The pieces around the loop: ``_checkpoint`` (the Orbax checkpoints and the run's files),
``_distributed`` (joining several processes, the mesh), ``_signals`` (preemption).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import yaml
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gru_jax.tasks import Splits, Task, get_task
from gru_jax.tasks._plots import loss_plot
from gru_jax.train._checkpoint import (
    State,
    check_saved_config,
    checkpoint_manager,
    restore_checkpoint,
    save_checkpoint,
    to_host,
    write_atomic,
)
from gru_jax.train._config import Config, ConfigError, TrainConfig, config_to_dict
from gru_jax.train._distributed import (
    check_devices,
    make_mesh,
    same_config_everywhere,
    write_process_file,
)
from gru_jax.train._signals import Preempted, StopRequests

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def make_optimizer(
    train: TrainConfig, *, updates_per_step: int = 1
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with global-norm clipping and a linear-warmup + cosine-decay learning rate.

    The warmup is clamped to ``steps - 1`` so that tiny smoke runs stay valid. With
    ``skip_nonfinite > 0`` the whole chain is wrapped in ``optax.apply_if_finite``: a step whose
    gradient holds an Inf or NaN leaves the parameters and the optimiser's moments unchanged
    (up to that many such steps in a row; then the update is applied, and training fails
    visibly).

    Args:
      train: the ``train:`` section: ``steps``, ``learning_rate``, ``warmup_steps``,
        ``end_learning_rate_ratio``, ``weight_decay``, ``grad_clip`` and ``skip_nonfinite``
        shape the optimiser.

      updates_per_step: how many optimiser updates one training step makes (an on-policy
        task's epochs × minibatches): the schedule, which counts updates, is stretched by it.

    Returns:
      The optimiser and its learning-rate schedule (a function of the training step).
    """
    warmup = min(train.warmup_steps, max(train.steps - 1, 0))
    per_update = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=train.learning_rate,
        warmup_steps=warmup * updates_per_step,
        decay_steps=max(train.steps, warmup + 1) * updates_per_step,
        end_value=train.learning_rate * train.end_learning_rate_ratio,
    )
    schedule: optax.Schedule = per_update
    if updates_per_step != 1:

        def schedule(step: Any) -> Any:  # of the training step
            return per_update(step * updates_per_step)

    optimizer = optax.chain(
        optax.clip_by_global_norm(train.grad_clip),
        optax.adamw(per_update, weight_decay=train.weight_decay),
    )
    if train.skip_nonfinite:
        optimizer = optax.apply_if_finite(optimizer, max_consecutive_errors=train.skip_nonfinite)
    return optimizer, schedule


class _Run:
    """The compiled pieces of a run: model, data, step and eval functions, and their shardings."""

    def __init__(self, config: Config, *, eval_seed: int | None = None):
        self.config = config
        self.task: Task = get_task(config.task)
        self.mesh = make_mesh(config.train.num_devices)
        check_devices(config.train, self.mesh)
        self.model = self.task.make_model(config.model, config.data)
        self.on_policy = self.task.on_policy
        per_step = self.on_policy and self.on_policy.updates_per_step
        self.optimizer, self.schedule = make_optimizer(
            config.train, updates_per_step=per_step(config.data) if per_step else 1
        )
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
        # The state: parameters, optimiser state and step replicated; an on-policy task's
        # collector (its environments on axis 0) sharded like a batch.
        self.state_sharding = {
            "params": self.replicated,
            "opt_state": self.replicated,
            "step": self.replicated,
        }
        if self.on_policy is not None:
            self.state_sharding["collector"] = self.sharded

        self.train_batch = jax.jit(
            lambda key: self.source.batch(key, batch_size), out_shardings=self.sharded
        )
        self.eval_batch = jax.jit(
            lambda key: self.eval_source.batch(key, batch_size), out_shardings=self.sharded
        )
        self.init_state = jax.jit(self._init_state, out_shardings=self.state_sharding)
        step_fn: Callable[[State, Any], tuple[State, dict[str, jax.Array]]] = self._train_step
        input_sharding = self.sharded
        if self.on_policy is not None:  # the step's input is its key; the task collects its data
            step_fn, input_sharding = self._on_policy_step, self.replicated
        self.train_step = jax.jit(
            step_fn,
            in_shardings=(self.state_sharding, input_sharding),
            out_shardings=(self.state_sharding, self.replicated),
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
        state: State = {
            "params": params,
            "opt_state": self.optimizer.init(params),
            "step": jnp.zeros((), jnp.int32),
        }
        if self.on_policy is not None:
            num_envs = self.config.train.batch_size
            collector_key = jax.random.fold_in(key, 1)
            state["collector"] = self.on_policy.init(
                self.model, params, self.config.data, collector_key, num_envs
            )
        return state

    def step_input(self, step: int) -> Any:
        """What training step ``step`` consumes: its batch, or for an on-policy task its key."""
        key = jax.random.fold_in(self.k_data, step)
        return key if self.on_policy is not None else self.train_batch(key)

    def _train_step(self, state: State, batch: Any) -> tuple[State, dict[str, jax.Array]]:
        dropout_key = jax.random.fold_in(self.k_dropout, state["step"])
        task_loss = self.task.loss
        assert task_loss is not None  # a supervised task has one

        def loss_fn(params: Any) -> jax.Array:
            outputs = self.model.apply(params, batch, train=True, rngs={"dropout": dropout_key})
            return task_loss(outputs, batch)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    def _on_policy_step(self, state: State, key: jax.Array) -> tuple[State, dict[str, jax.Array]]:
        assert self.on_policy is not None
        params, opt_state, collector, aux = self.on_policy.update(
            self.model,
            self.optimizer,
            state["params"],
            state["opt_state"],
            state["collector"],
            key,
            self.config.data,
        )
        new_state = {
            "params": params,
            "opt_state": opt_state,
            "step": state["step"] + 1,
            "collector": collector,
        }
        return new_state, aux

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
        """The Orbax manager of ``workdir/checkpoints``, keeping ``train.keep_checkpoints``."""
        return checkpoint_manager(workdir, self.config.train.keep_checkpoints)

    def restore(self, manager: ocp.CheckpointManager, step: int) -> tuple[State, dict[str, Any]]:
        """Restore the checkpoint of ``step`` onto this run's devices, checking first that it
        holds arrays of this run's shapes, then that its bytes match its checksum."""
        abstract = jax.eval_shape(self.fresh_state)
        abstract = {
            part: jax.tree.map(
                lambda a, s=self.state_sharding[part]: jax.ShapeDtypeStruct(
                    a.shape, a.dtype, sharding=s
                ),
                tree,
            )
            for part, tree in abstract.items()
        }
        return restore_checkpoint(manager, step, abstract)


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


def _host_floats(values: list[Any]) -> np.ndarray:
    """Scalars (device arrays, replicated ones included, or floats) as one float64 host array,
    fetched with one ``jax.device_get`` rather than one transfer each."""
    return np.asarray(jax.device_get(values), np.float64)


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
        Without it, a workdir that already holds checkpoints is refused. A run that is already
        complete (a checkpoint of step ``train.steps`` and its ``summary.json``) is left as it
        is: its latest checkpoint is checked, nothing is written, and the summary it holds is
        returned.
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
        check_saved_config(workdir, config, evaluating=False)
    same_config_everywhere(config)
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
        state, meta = run.restore(manager, latest)  # checked even with nothing left to train
        if latest >= config.train.steps and completed_step(workdir, latest) is not None:
            manager.close()  # a complete run: write nothing, not even config.yaml
            return json.loads((workdir / "summary.json").read_text()) if lead else None
        elapsed_before = float(meta["wall_seconds"])
        pending = [float(x) for x in meta.get("pending_losses", [])]
        if lead and metrics_path.exists():  # drop what was logged after the checkpoint
            kept = [
                line
                for line in metrics_path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= latest
            ]
            write_atomic(metrics_path, "".join(line + "\n" for line in kept))
    else:
        state, elapsed_before = run.fresh_state(), 0.0
        if lead:
            metrics_path.write_text("")
    if lead:
        write_atomic(
            workdir / "config.yaml", yaml.safe_dump(config_to_dict(config), sort_keys=False)
        )
    if jax.process_count() > 1:
        rows = state["collector"] if run.on_policy is not None else run.step_input(0)
        write_process_file(workdir, run.mesh, run.config.train.batch_size, rows)

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
        save_checkpoint(
            manager,
            state,
            {
                "wall_seconds": elapsed_before + time.perf_counter() - started,
                "pending_losses": _host_floats(losses).tolist(),
            },
        )

    with (
        progress,
        StopRequests(handle_signals, run.mesh) as stops,
        metrics_path.open("a") if lead else open(os.devnull, "w") as metrics_file,
    ):

        def log(row: dict[str, Any]) -> None:
            metrics_file.write(json.dumps(row) + "\n")
            metrics_file.flush()

        for step in range(start, end):
            state, aux = run.train_step(state, run.step_input(step))
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
                        # an on-policy task's own scalars (episode returns, ...)
                        **{k: float(v) for k, v in aux.items() if k not in ("loss", "grad_norm")},
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


def completed_step(workdir: str | Path, steps: int) -> int | None:
    """The last step of the run in ``workdir`` if it is complete, else ``None``: complete means
    a checkpoint of step ``steps`` (``train.steps``) and the ``summary.json`` written after it.
    A run whose last checkpoint came before its summary (killed in between) is not complete:
    ``--resume`` evaluates it and writes the summary."""
    workdir = Path(workdir)
    folder = workdir / "checkpoints"
    if not (workdir / "summary.json").is_file() or not folder.is_dir():
        return None
    last = max((int(p.name) for p in folder.iterdir() if p.name.isdigit()), default=None)
    return last if last is not None and last >= steps else None


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
    params = jax.tree.map(lambda leaf: jnp.asarray(to_host(leaf)), state["params"])
    try:
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
    write_atomic(workdir / "summary.json", json.dumps(summary, indent=2) + "\n")
    manager.close()
    return summary


def _trained_workdir(workdir: str | Path) -> Path:
    """``workdir`` as a path, if it exists and holds a ``checkpoints/`` folder (else a
    :class:`ConfigError` saying which of the two it lacks)."""
    workdir = Path(workdir)
    if not workdir.exists():
        raise ConfigError(
            f"workdir {str(workdir)!r} does not exist; give the --workdir of a trained run"
        )
    if not (workdir / "checkpoints").is_dir():
        raise ConfigError(f"workdir {str(workdir)!r} holds no checkpoints")
    return workdir


def load_checkpoint(config: Config, workdir: str | Path) -> tuple[Any, Any, int]:
    """The model, the parameters (host arrays) and the step of the latest checkpoint of a run.

    The config must match the run's ``config.yaml`` in its task, model and data keys, as for
    :func:`evaluate_checkpoint`. A workdir that does not exist or holds no checkpoints is a
    :class:`ConfigError`.
    """
    workdir = _trained_workdir(workdir)
    check_saved_config(workdir, config, evaluating=True)
    run = _run_for(config)
    manager = run.checkpoint_manager(workdir)
    step = manager.latest_step()
    if step is None:
        manager.close()
        raise ConfigError(f"workdir {str(workdir)!r} holds no checkpoints")
    state, _ = run.restore(manager, step)
    manager.close()
    params = jax.tree.map(lambda leaf: jnp.asarray(to_host(leaf)), state["params"])
    return run.model, params, step


def evaluate_checkpoint(config: Config, workdir: str | Path, *, seed: int) -> dict[str, Any]:
    """Evaluate the latest checkpoint in ``workdir`` on fresh data drawn from ``seed``.

    The config must match the run's ``config.yaml`` in its task, model and data keys (the
    ``train`` section, ``seed`` and ``target`` may differ).
    """
    workdir = _trained_workdir(workdir)
    check_saved_config(workdir, config, evaluating=True)
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
