"""The gymnax environments of the PPO tasks, behind the optional ``rl`` extra.

gymnax is imported when a task first needs an environment (building its model, its data source
or its collector), not when :mod:`gru_jax.tasks` or a task's module is imported: without the
extra, the config schema and the docs still list the tasks, and building one raises a single
``ImportError`` that names the extra.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp

from gru_jax._base.extras import require_extra

EXTRA = "rl"
"""The extra that installs gymnax (and ``six``, which gymnax imports without declaring it)."""

_IMPORTS = ("gymnax", "six")


@dataclasses.dataclass(frozen=True)
class Env:
    """A gymnax environment with its parameters, and the sizes a model needs of it.

    Attributes:
      env: the ``gymnax.environments.environment.Environment``; ``env.step(key, state, action,
        params)`` returns ``(obs, state, reward, terminated, truncated, info)`` and resets an
        environment that is done (``info["final_observation"]`` is then the last observation).
      params: its ``EnvParams`` (a pytree).
      obs_dim: the size of a (flat) observation.
      num_actions: the discrete actions.
    """

    env: Any
    params: Any
    obs_dim: int
    num_actions: int

    def reset(self, keys: jax.Array) -> tuple[jax.Array, Any]:
        """``keys (E,)`` -> ``obs (E, obs_dim)`` float32 and the ``E`` environment states."""
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        return obs.astype(jnp.float32), state

    def step(
        self, keys: jax.Array, state: Any, actions: jax.Array
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, jax.Array]:
        """One step of ``E`` environments: ``keys (E,)``, their states, ``actions (E,)`` ->
        ``(obs, state, reward, terminated, truncated, final_obs)``, the observations float32
        ``(E, obs_dim)`` (the reset observation where done, the last one in ``final_obs``), the
        reward float32 ``(E,)``, the flags bool ``(E,)``."""
        obs, state, reward, terminated, truncated, info = jax.vmap(
            self.env.step, in_axes=(0, 0, 0, None)
        )(keys, state, actions, self.params)
        return (
            obs.astype(jnp.float32),
            state,
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(terminated, bool),
            jnp.asarray(truncated, bool),
            info["final_observation"].astype(jnp.float32),
        )


def make_env(module: str, env_id: str, params: tuple[tuple[str, Any], ...] = ()) -> Env:
    """The gymnax environment ``env_id`` with its default parameters updated by ``params``.

    Args:
      module: the task's module, named in the error without the extra.
      env_id: a gymnax id, e.g. ``"MemoryChain-bsuite"`` or ``"CartPole-v1"``.
      params: ``(name, value)`` pairs of ``EnvParams`` fields to change.

    Raises:
      ImportError: one line naming the ``rl`` extra when gymnax or six is missing.

    Example:
      >>> from gru_jax.tasks.ppo import make_env
      >>> env = make_env("example", "MemoryChain-bsuite", (("memory_length", 3),))
      >>> env.obs_dim, env.num_actions, env.params.memory_length
      (3, 2, 3)
    """
    require_extra(module, EXTRA, _IMPORTS)
    return _make(env_id, params)


@functools.cache
def _make(env_id: str, params: tuple[tuple[str, Any], ...]) -> Env:
    """One environment object per setting, so that jitted functions see the same one."""
    import gymnax

    env, defaults = gymnax.make(env_id)
    env_params = defaults.replace(**dict(params))
    shape = env.observation_space(env_params).shape
    return Env(env, env_params, int(shape[0]), int(env.num_actions))
