"""Generalised advantage estimation (Schulman et al., 2016) over a rollout with episode ends."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    *,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and returns of a time-major rollout, ``(T, E)`` each.

    ``δ_t = r_t + γ (1 - terminated_t) v'_t - v_t`` and ``A_t = δ_t + γ λ (1 - done_t)
    A_{t+1}`` (``A_T = 0``), returns ``A_t + v_t``. ``next_values`` holds ``v'_t``, the value
    of the observation after step ``t`` in the same episode: ``values[t + 1]`` inside an
    episode, the value of the rollout's next observation at its last step, and the value of the
    final observation where the episode was truncated (a time limit: its return goes on, so it
    is bootstrapped); where it terminated it is not used. ``done`` (terminated or truncated)
    stops the sum at the episode's end.

    Args:
      rewards: ``(T, E)`` float, the reward of each step.
      values: ``(T, E)`` float, the critic's value of each step's observation.
      next_values: ``(T, E)`` float, ``v'_t`` as above.
      terminated: ``(T, E)`` bool, the episode ended at step ``t`` (no bootstrap).
      done: ``(T, E)`` bool, the episode ended at step ``t``, terminated or truncated.
      gamma: the discount ``γ``.
      lam: GAE's ``λ``.

    Returns:
      ``(advantages, returns)``, ``(T, E)`` each.

    Example:
      >>> import jax.numpy as jnp
      >>> from gru_jax.tasks.ppo import gae
      >>> r = jnp.array([[0.0], [1.0], [0.0]])
      >>> v = jnp.zeros((3, 1))
      >>> stop = jnp.array([[False], [True], [False]])
      >>> adv, ret = gae(r, v, v, stop, stop, gamma=0.5, lam=1.0)
      >>> adv[:, 0].tolist()
      [0.5, 1.0, 0.0]
    """
    cont = 1.0 - terminated.astype(values.dtype)
    deltas = rewards + gamma * cont * next_values - values
    chain = gamma * lam * (1.0 - done.astype(values.dtype))

    def back(carry: jax.Array, step: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        delta, link = step
        advantage = delta + link * carry
        return advantage, advantage

    _, advantages = jax.lax.scan(back, jnp.zeros_like(values[0]), (deltas, chain), reverse=True)
    return advantages, advantages + values
