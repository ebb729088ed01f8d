"""A PPO task for a gymnax environment: its ``data:`` settings and the :class:`~gru_jax.tasks.
Task` that the training loop runs (:func:`ppo_task`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gru_jax.tasks._base import Batch, OnPolicy, Source, Splits, Task
from gru_jax.tasks._schema import ConfigError, check_ranges, setting
from gru_jax.tasks._serving import Signature, carry_stream
from gru_jax.tasks.ppo._agent import PPOAgent, one_agent, stacked_agents
from gru_jax.tasks.ppo._env import Env, make_env
from gru_jax.tasks.ppo._ppo import ppo_update
from gru_jax.tasks.ppo._rollout import Collector, greedy_policy, init_collector, play, random_policy


@dataclasses.dataclass(frozen=True)
class PPOSettings:
    """The PPO keys of a PPO task's ``data:`` section (a task adds its environment's keys).

    The number of environments is ``train.batch_size``; each training step collects
    ``rollout_length`` steps of each, then makes ``ppo_epochs × minibatches`` optimiser updates.

    Attributes:
      rollout_length: ``T``, the steps of each environment per training step.
      ppo_epochs: passes over the rollout per training step.
      minibatches: the environments are split into this many random minibatches per pass (it
        must divide ``train.batch_size``).
      gamma: the discount.
      gae_lambda: GAE's ``λ``.
      clip_eps: the clipping of the probability ratio, ``1 ± clip_eps``.
      vf_coef: the weight of the value loss.
      ent_coef: the weight of the entropy bonus.
      reward_scale: the rewards are multiplied by this for training (the values and the
        advantages), so that the value loss does not swamp the policy's gradient where
        returns are large (CartPole's reach 100 with ``gamma`` 0.99); episode returns are
        reported unscaled.
      burn_in: ``K``, the last steps of the previous rollout re-run (without loss) before the
        rollout's streams, from the state before them: the streams then start from a state of
        the current policy. 0 (the default): from the state stored at the rollout's start.
      seeds: independent agents trained in one compiled program (``vmap`` over seeds): each
        has its own initial parameters, environments (``train.batch_size`` each), rollouts and
        optimiser state. The metric is their mean, ``summary.json`` also holds each one's
        (``value_per_seed``), and ``gru-jax export`` writes seed 0's policy.
    """

    rollout_length: int = setting(128, ge=1)
    ppo_epochs: int = setting(4, ge=1)
    minibatches: int = setting(4, ge=1)
    gamma: float = setting(0.99, ge=0, le=1)
    gae_lambda: float = setting(0.95, ge=0, le=1)
    clip_eps: float = setting(0.2, gt=0)
    vf_coef: float = setting(0.5, ge=0)
    ent_coef: float = setting(0.01, ge=0)
    reward_scale: float = setting(1.0, gt=0)
    burn_in: int = setting(0, ge=0)
    seeds: int = setting(1, ge=1)

    def validate(self) -> None:
        """The burn-in steps come from one rollout: ``burn_in <= rollout_length``."""
        if self.burn_in > self.rollout_length:
            raise ConfigError(
                f"config keys 'data.burn_in' ({self.burn_in}) and 'data.rollout_length' "
                f"({self.rollout_length}) must satisfy burn_in <= rollout_length"
            )


@dataclasses.dataclass(frozen=True)
class Game:
    """The environment of a PPO task and how its episodes are scored.

    Attributes:
      module: the task's module, named by the error when the ``rl`` extra is missing.
      env_id: the gymnax id, e.g. ``"CartPole-v1"``.
      env_params: ``data_config -> ((name, value), ...)``, the ``EnvParams`` fields the
        ``data:`` section sets.
      episode_steps: ``env -> int``, the most steps of an evaluation episode.
      success: the metric is the success rate (a positive return), not the return.
    """

    module: str
    env_id: str
    env_params: Callable[[Any], tuple[tuple[str, Any], ...]]
    episode_steps: Callable[[Env], int]
    success: bool = False

    def env(self, data: Any) -> Env:
        """The environment of a ``data:`` section (an ``ImportError`` without the extra)."""
        return make_env(self.module, self.env_id, self.env_params(data))

    def score(self, returns: jax.Array) -> jax.Array:
        """What the metric averages per episode: success (1.0 or 0.0) or the return."""
        return (returns > 0).astype(jnp.float32) if self.success else returns


def _source(game: Game, data: Any, seed: int) -> Source:
    """Example batches for ``model.init`` and the evaluation's episodes: ``inputs (B, 1,
    obs_dim)`` zeros, ``resets (B, 1)``, ``key (B, 2)`` uint32, one episode's key per row
    (``seed`` is folded in: another seed plays other episodes)."""
    check_ranges(data, "data.")  # a config built in Python is checked as a parsed one
    env = game.env(data)

    def batch(key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        keys = jax.random.split(jax.random.fold_in(key, seed), batch_size)
        return {
            "inputs": jnp.zeros((batch_size, 1, env.obs_dim), jnp.float32),
            "resets": jnp.ones((batch_size, 1), bool),
            "key": jax.random.key_data(keys),
        }

    return Source(batch=batch)


def _metric_sums(
    game: Game, model: nn.Module, params: Any, batch: Batch
) -> tuple[jax.Array, jax.Array]:
    """One greedy episode per row's key, in the agent's environment (``model.env_params``):
    the sum of their scores and their count."""
    agent = one_agent(cast(PPOAgent, model))
    env = make_env(game.module, game.env_id, agent.env_params)
    keys = jax.random.wrap_key_data(batch["key"])
    size = keys.shape[0]

    def one(params: Any) -> jax.Array:
        carry = jnp.zeros((agent.num_layers, size, agent.hidden_size), jnp.float32)
        returns, _ = play(env, greedy_policy(agent, params), carry, keys, game.episode_steps(env))
        return jnp.sum(game.score(returns))

    if cast(PPOAgent, model).seeds == 1:
        return one(params), jnp.asarray(size, jnp.float32)
    sums = jax.vmap(one)(params)  # every seed plays the same episodes
    return jnp.sum(sums), jnp.asarray(size * sums.shape[0], jnp.float32)


def _report(
    game: Game, model: nn.Module, params: Any, splits: Splits, key: jax.Array, workdir: Any
) -> dict[str, Any]:
    """With several seeds, each one's metric over 256 greedy episodes (``value_per_seed``)."""
    del workdir
    agent = cast(PPOAgent, model)
    if agent.seeds == 1:
        return {}
    batch = splits.eval.batch(key, 256)
    single = one_agent(agent)
    sums = jax.jit(jax.vmap(lambda p: _metric_sums(game, single, p, batch)[0]))(params)
    return {"value_per_seed": [float(v) / 256 for v in sums]}


def random_baseline(game: Game, splits: Splits, episodes: int = 256) -> float:
    """The metric of ``game`` for uniformly random actions, over ``episodes`` episodes drawn
    from the keys of ``splits.eval`` (the evaluation source)."""
    env = game.env(splits.config)
    keys = jax.random.wrap_key_data(splits.eval.batch(jax.random.key(0), episodes)["key"])
    returns, _ = jax.jit(
        lambda k: play(
            env, random_policy(env.num_actions), jnp.zeros(()), k, game.episode_steps(env)
        )
    )(keys)
    return float(jnp.mean(game.score(returns)))


def _stream(game: Game, model: nn.Module, params: Any, data: Any) -> Signature:
    """``(carry (L, b, H), observations (b, t, obs_dim), resets (b, t)) -> (carry, logits (b, t,
    A))``: the policy, one step or a chunk of steps per call."""

    if cast(PPOAgent, model).seeds > 1:  # several seeds: seed 0's policy
        model, params = one_agent(cast(PPOAgent, model)), jax.tree.map(lambda a: a[0], params)

    def apply(carry: jax.Array, x: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        (logits, _), new = model.apply(params, {"inputs": x, "resets": resets}, carry=carry)
        return cast(jax.Array, logits), cast(jax.Array, new)

    obs_dim = game.env(data).obs_dim
    return carry_stream(model, params, (("b", "t", obs_dim), "float32"), "logits", apply)


def _init(game: Game, model: Any, params: Any, data: Any, key: jax.Array, num_envs: int) -> Any:
    del params
    if num_envs % data.minibatches:
        raise ConfigError(
            f"config keys 'train.batch_size' ({num_envs}, the environments) and "
            f"'data.minibatches' ({data.minibatches}) must satisfy batch_size % minibatches == 0"
        )
    agent, env = one_agent(model), game.env(data)
    if data.seeds == 1:
        return init_collector(agent, env, key, num_envs, data.burn_in)
    keys = jax.random.split(key, data.seeds)
    per_seed = jax.vmap(lambda k: init_collector(agent, env, k, num_envs, data.burn_in))(keys)
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), per_seed)  # (E, seeds, ...)


def _update(
    game: Game,
    model: Any,
    optimizer: Any,
    params: Any,
    opt_state: Any,
    collector: Collector,
    key: jax.Array,
    data: Any,
) -> Any:
    agent, env = one_agent(model), game.env(data)

    def update(params: Any, opt_state: Any, collector: Collector, key: jax.Array) -> Any:
        return ppo_update(
            agent, env, data, optimizer, params, opt_state, collector, key, success=game.success
        )

    if data.seeds == 1:
        return update(params, opt_state, collector, key)
    # One update per seed, vmapped: the optimiser's moments are stacked like the parameters;
    # its step count is shared (every seed makes the same number of updates).
    if any(
        isinstance(s, optax.ApplyIfFiniteState)
        for s in jax.tree.leaves(
            opt_state, is_leaf=lambda x: isinstance(x, optax.ApplyIfFiniteState)
        )
    ):
        raise ConfigError(
            f"config key 'data.seeds' ({data.seeds}) needs 'train.skip_nonfinite' to be 0: "
            "skipped steps would differ between the seeds"
        )
    opt_axes = jax.tree.map(lambda a: 0 if jnp.ndim(a) else None, opt_state)
    seeds_first = jax.tree.map(lambda a: jnp.moveaxis(a, 1, 0), collector)
    keys = jax.random.split(key, data.seeds)
    params, opt_state, seeds_first, aux = jax.vmap(
        update, in_axes=(0, opt_axes, 0, 0), out_axes=(0, opt_axes, 0, 0)
    )(params, opt_state, seeds_first, keys)
    collector = jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), seeds_first)
    return params, opt_state, collector, {name: jnp.mean(v) for name, v in aux.items()}


def ppo_task(
    name: str,
    data_config: type,
    game: Game,
    metric: str,
    baseline: Callable[[Splits], float],
) -> Task:
    """The :class:`~gru_jax.tasks.Task` that trains a :class:`PPOAgent` on ``game`` with PPO.

    Args:
      name: the task's name.
      data_config: its ``data:`` dataclass, a subclass of :class:`PPOSettings`.
      game: the environment and its scoring.
      metric: the metric's name (higher is better), measured on greedy episodes.
      baseline: ``splits -> float``, the metric of a trivial policy.
    """
    return Task(
        name=name,
        data_config=data_config,
        metric=metric,
        higher_is_better=True,
        make_source=lambda data, seed: _source(game, data, seed),
        make_model=lambda model, data: stacked_agents(
            PPOAgent.from_config(
                model,
                num_actions=game.env(data).num_actions,
                env_params=game.env_params(data),
                seeds=data.seeds,
            )
        ),
        loss=None,
        metric_sums=lambda model, params, batch: _metric_sums(game, model, params, batch),
        baseline=baseline,
        report=lambda model, params, splits, key, workdir: _report(
            game, model, params, splits, key, workdir
        ),
        stream=lambda model, params, data: _stream(game, model, params, data),
        on_policy=OnPolicy(
            init=lambda model, params, data, key, n: _init(game, model, params, data, key, n),
            update=lambda *args: _update(game, *args),
            updates_per_step=lambda data: data.ppo_epochs * data.minibatches,
        ),
    )
