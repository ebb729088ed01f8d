"""Recurrent PPO on CartPole-v1, from gymnax: a fully observable control task.

Push a cart left or right to keep its pole upright: reward 1 per step, the episode terminates
when the pole falls or the cart leaves the track and is truncated after 500 steps (a time limit,
across which the advantages are bootstrapped). The observation (position, velocity, angle,
angular velocity) is the whole state, so the recurrent state is not needed: the task checks the
PPO machinery on a problem without memory.

The agent is :class:`gru_jax.tasks.ppo.PPOAgent` trained by PPO (:mod:`gru_jax.tasks.ppo`); the
``data:`` section holds the PPO settings. Metric: the mean return of greedy episodes on the
evaluation seed's episodes (higher is better, at most 500). Baseline: the mean return of
uniformly random actions over 256 of those episodes (≈ 22). Needs the ``rl`` extra (gymnax).
"""

from __future__ import annotations

import dataclasses

from gru_jax.tasks.ppo import Game, PPOSettings, ppo_task, random_baseline


@dataclasses.dataclass(frozen=True)
class CartPoleData(PPOSettings):
    """The ``data:`` section of a ppo_cartpole config: the PPO settings
    (:class:`~gru_jax.tasks.ppo.PPOSettings`); the environment keeps gymnax's defaults."""


GAME = Game(
    module="gru_jax.tasks.ppo_cartpole",
    env_id="CartPole-v1",
    env_params=lambda data: (),
    episode_steps=lambda env: int(env.params.max_steps_in_episode),
)
"""CartPole-v1 with gymnax's defaults (500 steps at most); scored by the return."""

TASK = ppo_task(
    name="ppo_cartpole",
    data_config=CartPoleData,
    game=GAME,
    metric="return",
    baseline=lambda splits: random_baseline(GAME, splits),
)
"""CartPole by recurrent PPO as a :class:`~gru_jax.tasks.Task`: metric ``return``, baseline the
random policy's return."""

__all__ = ["GAME", "TASK", "CartPoleData"]
