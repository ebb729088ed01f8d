"""The training loop's on-policy hook (:class:`gru_jax.tasks.OnPolicy`), on a task that needs no
environment library: a two-armed bandit learned by REINFORCE, whose per-environment state (the
reward each environment has collected) is carried from step to step in the collector."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest

from gru_jax.tasks import OnPolicy, Source, Task, register_task
from gru_jax.train import Config, TrainConfig, parse_config, train_and_evaluate


@dataclasses.dataclass(frozen=True)
class BanditData:
    better_arm: int = 1


class Policy(nn.Module):
    @nn.compact
    def __call__(self, batch: Any, *, train: bool = False) -> jax.Array:
        return nn.Dense(2)(batch["inputs"][:, 0, :])  # (B, 2) logits


def _source(data: BanditData, seed: int) -> Source:
    del data, seed
    return Source(batch=lambda key, n: {"inputs": jnp.ones((n, 1, 1))})


def _init(model, params, data, key, num_envs):
    return {"collected": jnp.zeros((num_envs,)), "pulls": jnp.zeros((num_envs,), jnp.int32)}


def _update(model, optimizer, params, opt_state, collector, key, data):
    num_envs = collector["collected"].shape[0]
    batch = {"inputs": jnp.ones((num_envs, 1, 1))}
    actions = jax.random.categorical(key, model.apply(params, batch))
    rewards = (actions == data.better_arm).astype(jnp.float32)

    def loss_fn(params):
        logp = jax.nn.log_softmax(model.apply(params, batch))
        chosen = jnp.take_along_axis(logp, actions[:, None], axis=1)[:, 0]
        return -jnp.mean((rewards - 0.5) * chosen)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    collector = {"collected": collector["collected"] + rewards, "pulls": collector["pulls"] + 1}
    aux = {
        "loss": loss,
        "grad_norm": optax.tree.norm(grads),
        "mean_reward": jnp.mean(rewards),
        "collected": jnp.mean(collector["collected"]),
    }
    return optax.apply_updates(params, updates), opt_state, collector, aux


def _metric_sums(model, params, batch):
    p_better = jax.nn.softmax(model.apply(params, batch))[:, 1]
    return jnp.sum(p_better), jnp.asarray(p_better.size, jnp.float32)


TASK = Task(
    name="test_bandit",
    data_config=BanditData,
    metric="p_better",
    higher_is_better=True,
    make_source=_source,
    make_model=lambda model, data: Policy(),
    loss=None,
    metric_sums=_metric_sums,
    baseline=lambda splits: 0.5,
    on_policy=OnPolicy(init=_init, update=_update),
)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    """TASK registered for this module's tests only (the registry is the process's)."""
    from gru_jax import tasks

    saved = dict(tasks._REGISTERED)
    register_task(TASK)
    yield
    tasks._REGISTERED.clear()
    tasks._REGISTERED.update(saved)


def _config(steps: int) -> Config:
    config = parse_config({"task": "test_bandit", "seed": 3})
    train = TrainConfig(
        steps=steps,
        batch_size=8,
        learning_rate=0.1,
        warmup_steps=0,
        log_every=2,
        eval_every=4,
        eval_batches=1,
        checkpoint_every=3,
    )
    return dataclasses.replace(config, train=train)


def _rows(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _timeless(rows: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in ("wall_seconds", "steps_per_second")}
        for row in rows
    ]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    return train_and_evaluate(_config(8), workdir), workdir


def test_an_on_policy_task_trains_and_logs_its_own_scalars(straight):
    summary, workdir = straight
    assert summary["metric"] == "p_better" and summary["value"] > 0.6
    logged = [row for row in _rows(workdir) if "loss" in row]
    assert [row["step"] for row in logged] == [2, 4, 6, 8]
    assert all({"mean_reward", "collected", "grad_norm"} <= set(row) for row in logged)
    # the collector was carried from step to step: 8 steps of 0/1 rewards per environment
    assert 0 < logged[-1]["collected"] <= 8


def test_a_resumed_on_policy_run_is_the_run_straight_through(straight, tmp_path):
    summary, workdir = straight
    config = _config(8)
    assert train_and_evaluate(config, tmp_path, stop_after=5) is None
    resumed = train_and_evaluate(config, tmp_path, resume=True)
    assert resumed["value"] == summary["value"]
    assert _timeless(_rows(tmp_path)) == _timeless(_rows(workdir))
