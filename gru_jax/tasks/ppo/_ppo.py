"""One PPO training step (Schulman et al., 2017): a rollout, its advantages, then epochs of
clipped-objective updates on minibatches of environments, each re-running its environments'
whole rollout as one stream per environment with ``resets``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from gru_jax.tasks.ppo._agent import PPOAgent
from gru_jax.tasks.ppo._env import Env
from gru_jax.tasks.ppo._gae import gae
from gru_jax.tasks.ppo._rollout import Collector, rollout, start_carry


def ppo_batch(
    trajectory: dict[str, jax.Array],
    last_value: jax.Array,
    collector: Collector,
    settings: Any,
) -> dict[str, jax.Array]:
    """What the updates train on, batch-major (the environments on axis 0): ``obs (E, T,
    obs_dim)``, ``resets``, ``actions``, ``log_probs``, ``advantages`` and ``returns`` ``(E,
    T)``, and the state the streams start from: the collector's ``carry (E, L, H)`` of the
    rollout's start, or its burn-in steps (``burn_obs``, ``burn_resets``, ``burn_carry``).

    Args:
      trajectory: :func:`rollout`'s trajectory, time-major.
      last_value: ``(E,)``, the value of the observation after the rollout.
      collector: the collector the rollout started from.
      settings: the ``data:`` section (``gamma``, ``gae_lambda``, ``reward_scale``).
    """
    values = trajectory["values"]
    following = jnp.concatenate([values[1:], last_value[None]])
    truncated, terminated = trajectory["truncated"], trajectory["terminated"]
    advantages, returns = gae(
        trajectory["rewards"] * settings.reward_scale,
        values,
        jnp.where(truncated, trajectory["final_values"], following),
        terminated,
        terminated | truncated,
        gamma=settings.gamma,
        lam=settings.gae_lambda,
    )
    names = ("obs", "resets", "actions", "log_probs")
    batch = {name: jnp.swapaxes(trajectory[name], 0, 1) for name in names}
    batch["advantages"] = advantages.T
    batch["returns"] = returns.T
    start = ("burn_obs", "burn_resets", "burn_carry") if "burn_obs" in collector else ("carry",)
    return batch | {name: collector[name] for name in start}


def recompute(
    agent: PPOAgent, params: Any, batch: dict[str, jax.Array]
) -> tuple[jax.Array, jax.Array]:
    """The ``agent``'s log-probabilities ``(E, T, A)`` and values ``(E, T)`` with ``params`` over
    a :func:`ppo_batch` ``batch``: each environment's rollout as one stream with its ``resets``,
    from the state at the rollout's start (after the burn-in steps, re-run with ``params``)."""
    carry = start_carry(agent, params, batch)
    stream = {"inputs": batch["obs"], "resets": batch["resets"]}
    (logits, values), _ = agent.apply(params, stream, carry=carry)
    return jax.nn.log_softmax(logits), values


def taken(log_probs: jax.Array, actions: jax.Array) -> jax.Array:
    """Of the policy's ``log_probs (..., A)``, those of the ``actions (...)`` taken: ``(...)``."""
    return jnp.take_along_axis(log_probs, actions[..., None], -1)[..., 0]


def ppo_loss(
    params: Any, agent: PPOAgent, batch: dict[str, jax.Array], settings: Any
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The clipped surrogate objective, the value loss and the entropy bonus of a minibatch.

    ``loss = -mean(min(ρ Â, clip(ρ, 1 ± clip_eps) Â)) + vf_coef · ½ mean((v - R)²) - ent_coef ·
    entropy``, ``ρ`` the probability ratio of the taken action, ``Â`` the advantages normalised
    over the minibatch.

    Args:
      params: the parameters being trained.
      agent: the model.
      batch: a minibatch of :func:`ppo_batch` (some environments, all steps).
      settings: the ``data:`` section (``clip_eps``, ``vf_coef``, ``ent_coef``).

    Returns:
      The loss and ``{"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"}``.
    """
    log_probs, values = recompute(agent, params, batch)
    log_ratio = taken(log_probs, batch["actions"]) - batch["log_probs"]
    ratio = jnp.exp(log_ratio)
    advantages = batch["advantages"]
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    clipped = jnp.clip(ratio, 1.0 - settings.clip_eps, 1.0 + settings.clip_eps)
    policy_loss = -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))
    value_loss = 0.5 * jnp.mean((values - batch["returns"]) ** 2)
    entropy = -jnp.mean(jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))
    loss = policy_loss + settings.vf_coef * value_loss - settings.ent_coef * entropy
    return loss, {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": jnp.mean(ratio - 1.0 - log_ratio),
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > settings.clip_eps).astype(jnp.float32)),
    }


def ppo_update(
    agent: PPOAgent,
    env: Env,
    settings: Any,
    optimizer: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    collector: Collector,
    key: jax.Array,
    *,
    success: bool = False,
) -> tuple[Any, Any, Collector, dict[str, jax.Array]]:
    """One training step: a rollout of ``settings.rollout_length`` steps with ``params``, then
    ``settings.ppo_epochs`` passes over the environments in ``settings.minibatches`` random
    minibatches, one optimiser update each.

    Args:
      agent: the model.
      env: the environments.
      settings: the ``data:`` section (:class:`PPOSettings`).
      optimizer: the run's Optax transformation.
      params: the parameters.
      opt_state: the optimiser's state.
      collector: where the last rollout stopped.
      key: the PRNG key of the rollout and the minibatches.
      success: also report ``success_rate``, the fraction of the ended episodes with a
        positive return (MemoryChain's right answers).

    Returns:
      ``(params, opt_state, collector, aux)``; ``aux`` holds the means over the updates of
      ``loss``, ``grad_norm`` and :func:`ppo_loss`'s parts, and the episodes that ended in the
      rollout: ``episodes`` and their mean ``episode_return`` (0 where none ended).
    """
    num_envs = collector["obs"].shape[0]
    k_rollout, k_epochs = jax.random.split(key)
    trajectory, after, last_value = rollout(
        agent, params, env, collector, k_rollout, settings.rollout_length
    )
    batch = ppo_batch(trajectory, last_value, collector, settings)
    size = num_envs // settings.minibatches

    def minibatch(state: tuple[Any, Any], rows: jax.Array) -> tuple[tuple[Any, Any], Any]:
        params, opt_state = state
        part = jax.tree.map(lambda x: x[rows], batch)
        grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)
        (loss, logs), grads = grad_fn(params, agent, part, settings)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), logs | {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    def epoch(state: tuple[Any, Any], k: jax.Array) -> tuple[tuple[Any, Any], Any]:
        order = jax.random.permutation(k, num_envs)[: size * settings.minibatches]
        return jax.lax.scan(minibatch, state, order.reshape(settings.minibatches, size))

    keys = jax.random.split(k_epochs, settings.ppo_epochs)
    (params, opt_state), logs = jax.lax.scan(epoch, (params, opt_state), keys)
    aux = {name: jnp.mean(value) for name, value in logs.items()}
    done = trajectory["terminated"] | trajectory["truncated"]
    ended = jnp.sum(done)
    per = jnp.maximum(ended, 1).astype(jnp.float32)
    returns = trajectory["episode_returns"]
    aux["episodes"] = ended.astype(jnp.float32)
    aux["episode_return"] = jnp.sum(returns) / per
    if success:
        aux["success_rate"] = jnp.sum(done & (returns > 0)) / per
    return params, opt_state, after, aux
