"""Recurrent PPO on bsuite's MemoryChain (Osband et al., 2020), from gymnax.

An episode has ``memory_length + 1`` steps. Its first observation shows a context bit
(``±1``), and the agent must answer it with its action at the last step, ``memory_length``
steps later: reward +1 for the right action, -1 for the wrong one, 0 at every other step. An
observation is ``[time left, query, context]``; gymnax returns the observation from before each
step, so the context shows in the first two observations, the query (always 0: one bit) in the
last one. Only a policy that remembers the bit across the whole episode beats chance.

The agent is :class:`gru_jax.tasks.ppo.PPOAgent` trained by PPO (:mod:`gru_jax.tasks.ppo`); the
``data:`` section holds ``memory_length`` and the PPO settings. Metric: the success rate of
greedy episodes (the most likely action at each step) on the evaluation seed's episodes (higher
is better). Baseline: 0.5, the success rate of chance (a policy that ignores the context, such
as the uniformly random one, is right half of the time). Needs the ``rl`` extra (gymnax).
"""

from __future__ import annotations

import dataclasses

from gru_jax.tasks._schema import setting
from gru_jax.tasks.ppo import Game, PPOSettings, ppo_task


@dataclasses.dataclass(frozen=True)
class MemoryData(PPOSettings):
    """The ``data:`` section of a ppo_memory config: the PPO settings
    (:class:`~gru_jax.tasks.ppo.PPOSettings`) and the environment's.

    Attributes:
      memory_length: the steps between the context and the answer (gymnax's
        ``EnvParams.memory_length``); an episode has ``memory_length + 1`` steps.
    """

    memory_length: int = setting(50, ge=1)


GAME = Game(
    module="gru_jax.tasks.ppo_memory",
    env_id="MemoryChain-bsuite",
    env_params=lambda data: (("memory_length", data.memory_length),),
    episode_steps=lambda env: int(env.params.memory_length) + 1,
    success=True,
)
"""MemoryChain-bsuite with gymnax's default ``num_bits`` (1) and ``max_steps_in_episode``,
``memory_length`` from the ``data:`` section; scored by success (a positive return)."""

TASK = ppo_task(
    name="ppo_memory",
    data_config=MemoryData,
    game=GAME,
    metric="success",
    baseline=lambda splits: 0.5,  # chance: a policy blind to the context is right half the time
)
"""MemoryChain by recurrent PPO as a :class:`~gru_jax.tasks.Task`: metric ``success``, baseline
0.5 (chance)."""

__all__ = ["GAME", "TASK", "MemoryData"]
