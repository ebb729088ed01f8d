"""Acting in many environments at once: the collector that a PPO task carries from one training
step to the next, the rollout that fills it, and whole greedy (or random) episodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp

from gru_jax.tasks.ppo._agent import PPOAgent
from gru_jax.tasks.ppo._env import Env

Collector = dict[str, Any]
"""What a PPO task carries between training steps, every leaf with the environments on axis 0:
``env_state``, ``obs (E, obs_dim)`` (the next observation), ``reset (E,)`` (it starts an
episode), ``carry (E, L, H)`` (the state before it, not yet reset), ``episode_return (E,)``;
with burn-in also ``burn_obs (E, K, obs_dim)``, ``burn_resets (E, K)`` and ``burn_carry (E, L,
H)``: the last ``K`` steps of the previous rollout and the state before them."""

Policy = Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[jax.Array, Any]]
"""``(carry, obs (B, obs_dim), reset (B,), keys (B,)) -> (actions (B,), carry)``."""


def init_collector(
    agent: PPOAgent, env: Env, key: jax.Array, num_envs: int, burn_in: int = 0
) -> Collector:
    """``num_envs`` environments just reset with keys from ``key``, the zero state.

    Args:
      agent: the model (its ``num_layers`` and ``hidden_size`` shape the carry).
      env: the environments.
      key: the PRNG key of the resets.
      num_envs: ``E``.
      burn_in: ``K``, the steps of the previous rollout re-run before each update's streams.

    Example:
      >>> import jax
      >>> from gru_jax.tasks.ppo import PPOAgent, init_collector, make_env
      >>> env = make_env("example", "MemoryChain-bsuite", (("memory_length", 3),))
      >>> c = init_collector(PPOAgent(2, 8), env, jax.random.key(0), 4)
      >>> c["obs"].shape, c["carry"].shape, c["reset"].tolist()
      ((4, 3), (4, 1, 8), [True, True, True, True])
    """
    obs, state = env.reset(jax.random.split(key, num_envs))
    carry = jnp.zeros((num_envs, agent.num_layers, agent.hidden_size), jnp.float32)
    collector: Collector = {
        "env_state": state,
        "obs": obs,
        "reset": jnp.ones(num_envs, bool),
        "carry": carry,
        "episode_return": jnp.zeros(num_envs, jnp.float32),
    }
    if burn_in:
        collector["burn_obs"] = jnp.zeros((num_envs, burn_in, env.obs_dim), jnp.float32)
        collector["burn_resets"] = jnp.ones((num_envs, burn_in), bool)
        collector["burn_carry"] = carry
    return collector


def start_carry(agent: PPOAgent, params: Any, collector: Collector) -> jax.Array:
    """The state ``(L, E, H)`` before a rollout's first step: the ``collector``'s carry, or,
    with burn-in, the state after the ``agent`` re-ran its stored last steps with ``params`` (a
    state of the current policy, not of the one that acted) from the state before them."""
    if "burn_obs" not in collector:
        return jnp.swapaxes(collector["carry"], 0, 1)
    batch = {"inputs": collector["burn_obs"], "resets": collector["burn_resets"]}
    _, carry = agent.apply(params, batch, carry=jnp.swapaxes(collector["burn_carry"], 0, 1))
    return cast(jax.Array, jax.lax.stop_gradient(carry))


def rollout(
    agent: PPOAgent,
    params: Any,
    env: Env,
    collector: Collector,
    key: jax.Array,
    length: int,
) -> tuple[dict[str, jax.Array], Collector, jax.Array]:
    """``length`` steps of the ``E`` environments, sampling actions from the policy.

    Args:
      agent: the model.
      params: its parameters.
      env: the environments.
      collector: where the last rollout stopped (:func:`init_collector`).
      key: the PRNG key of the actions and the environments' steps.
      length: ``T``, the steps.

    Returns:
      ``(trajectory, collector, last_value)``: the trajectory time-major, ``(T, E)`` each unless
      said: ``obs (T, E, obs_dim)`` (the observation acted on), ``resets`` (it started an
      episode), ``actions``, ``log_probs``, ``values``, ``rewards``, ``terminated``,
      ``truncated``, ``final_values`` (the value of the final observation where truncated, else
      0), ``episode_returns`` (the return of the episode that ended at the step, else 0) and,
      with burn-in, ``carries (T, L, E, H)`` (the state before each step's reset); the
      collector where it stops; ``last_value (E,)``, the value of its next observation.
    """
    num_envs = collector["obs"].shape[0]

    def act(carry: jax.Array, obs: jax.Array, reset: jax.Array) -> Any:
        return agent.apply(params, carry, obs, reset, method=PPOAgent.step)

    def one(state: tuple[Any, ...], k: jax.Array) -> tuple[tuple[Any, ...], dict[str, Any]]:
        env_state, obs, reset, carry, returns = state
        k_act, k_env = jax.random.split(k)
        (logits, value), new_carry = act(carry, obs, reset)
        action = jax.random.categorical(k_act, logits)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
        next_obs, env_state, reward, terminated, truncated, final_obs = env.step(
            jax.random.split(k_env, num_envs), env_state, action
        )
        no_reset = jnp.zeros(num_envs, bool)
        final_value = jax.lax.cond(  # a time limit's bootstrap: only where one was reached
            jnp.any(truncated),
            lambda: act(new_carry, final_obs, no_reset)[0][1],
            lambda: jnp.zeros(num_envs, value.dtype),
        )
        done = terminated | truncated
        returns = returns + reward
        record = {
            "obs": obs,
            "resets": reset,
            "actions": action,
            "log_probs": log_prob,
            "values": value,
            "rewards": reward,
            "terminated": terminated,
            "truncated": truncated,
            "final_values": jnp.where(truncated, final_value, 0.0),
            "episode_returns": jnp.where(done, returns, 0.0),
        }
        if "burn_obs" in collector:
            record["carries"] = carry
        next_state = (env_state, next_obs, done, new_carry, jnp.where(done, 0.0, returns))
        return next_state, record

    start = (
        collector["env_state"],
        collector["obs"],
        collector["reset"],
        start_carry(agent, params, collector),
        collector["episode_return"],
    )
    end, trajectory = jax.lax.scan(one, start, jax.random.split(key, length))
    env_state, obs, reset, carry, returns = end
    (_, last_value), _ = act(carry, obs, reset)
    after: Collector = {
        "env_state": env_state,
        "obs": obs,
        "reset": reset,
        "carry": jnp.swapaxes(carry, 0, 1),
        "episode_return": returns,
    }
    if "burn_obs" in collector:
        burn_in = collector["burn_obs"].shape[1]
        after["burn_obs"] = jnp.swapaxes(trajectory["obs"][length - burn_in :], 0, 1)
        after["burn_resets"] = jnp.swapaxes(trajectory["resets"][length - burn_in :], 0, 1)
        after["burn_carry"] = jnp.swapaxes(trajectory.pop("carries")[length - burn_in], 0, 1)
    return trajectory, after, last_value


def greedy_policy(agent: PPOAgent, params: Any) -> Policy:
    """The ``agent`` with ``params`` acting greedily (the most likely action), from its carry
    ``(L, B, H)``: a :data:`Policy` for :func:`play`."""

    def policy(carry: Any, obs: jax.Array, reset: jax.Array, keys: jax.Array) -> Any:
        del keys
        (logits, _), carry = agent.apply(params, carry, obs, reset, method=PPOAgent.step)
        return jnp.argmax(logits, axis=-1), carry

    return policy


def random_policy(num_actions: int) -> Policy:
    """Uniformly random actions among ``num_actions`` (the carry is passed through untouched):
    a :data:`Policy` for :func:`play`."""

    def policy(carry: Any, obs: jax.Array, reset: jax.Array, keys: jax.Array) -> Any:
        del obs, reset
        draw = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, 1), (), 0, num_actions))
        return draw(keys), carry

    return policy


def play(
    env: Env, policy: Policy, carry: Any, keys: jax.Array, steps: int
) -> tuple[jax.Array, jax.Array]:
    """One episode per key, at most ``steps`` steps: the return of each, and every action.

    Environment ``b`` is reset with ``split(keys[b], steps + 1)[0]`` and stepped at step ``t``
    with ``[t + 1]`` (an environment loop outside JAX can repeat it exactly); ``reset`` is True
    at the first step only. Rewards after an episode's end (the environment has reset itself)
    are not counted.

    Args:
      env: the environments.
      policy: ``(carry, obs, reset, keys) -> (actions, carry)``, e.g. :func:`greedy_policy`.
      carry: the policy's state at first (zeros ``(L, B, H)`` for the agent).
      keys: ``(B,)`` PRNG keys, one episode each.
      steps: the most steps of an episode.

    Returns:
      ``(returns (B,), actions (steps, B))``.
    """
    step_keys = jax.vmap(lambda k: jax.random.split(k, steps + 1))(keys)
    obs, env_state = env.reset(step_keys[:, 0])
    size = keys.shape[0]

    def one(state: tuple[Any, ...], t: jax.Array) -> tuple[tuple[Any, ...], jax.Array]:
        env_state, obs, reset, carry, total, alive = state
        keys_t = step_keys[:, t + 1]
        action, carry = policy(carry, obs, reset, keys_t)
        obs, env_state, reward, terminated, truncated, _ = env.step(keys_t, env_state, action)
        total = total + jnp.where(alive, reward, 0.0)
        alive = alive & ~(terminated | truncated)
        return (env_state, obs, jnp.zeros(size, bool), carry, total, alive), action

    total, alive = jnp.zeros(size, jnp.float32), jnp.ones(size, bool)
    start = (env_state, obs, jnp.ones(size, bool), carry, total, alive)
    end, actions = jax.lax.scan(one, start, jnp.arange(steps))
    return end[4], actions
