"""Recurrent PPO on gymnax environments: what the tasks :mod:`gru_jax.tasks.ppo_memory` and
:mod:`gru_jax.tasks.ppo_cartpole` share.

The agent (:class:`PPOAgent`) is an encoder, the ``model:`` section's recurrent stack (a GRU or
a minGRU) and actor and critic heads. A training step (:func:`ppo_update`) acts in
``train.batch_size`` environments at once for ``data.rollout_length`` steps, one step of the
stack per step (:meth:`PPOAgent.step`, with the state zeroed where an episode starts), then
makes ``data.ppo_epochs`` passes of clipped-objective updates over random minibatches of
environments. Each update re-runs its environments' whole rollout as one stream per
environment, with ``resets`` at the episode starts, from the state stored at the rollout's
start (:func:`recompute`): no padding, and no per-step selection. Advantages are GAE
(:func:`gae`), bootstrapped across a time limit but not across a termination.

The environments come from gymnax, which the ``rl`` extra installs (``pip install
'gru-jax[rl]'``); without it, building a PPO task raises one ``ImportError`` naming the extra.
"""

# The code is in private modules, one job each: _env (gymnax, behind the extra), _agent (the
# model), _gae, _rollout (the collector, rollouts and whole episodes), _ppo (the loss and the
# training step) and _task (the data settings and the Task).
from gru_jax.tasks.ppo._agent import PPOAgent
from gru_jax.tasks.ppo._env import EXTRA, Env, make_env
from gru_jax.tasks.ppo._gae import gae
from gru_jax.tasks.ppo._ppo import ppo_batch, ppo_loss, ppo_update, recompute, taken
from gru_jax.tasks.ppo._rollout import (
    Collector,
    Policy,
    greedy_policy,
    init_collector,
    play,
    random_policy,
    rollout,
    start_carry,
)
from gru_jax.tasks.ppo._task import Game, PPOSettings, ppo_task, random_baseline

__all__ = [
    "EXTRA",
    "Collector",
    "Env",
    "Game",
    "PPOAgent",
    "PPOSettings",
    "Policy",
    "gae",
    "greedy_policy",
    "init_collector",
    "make_env",
    "play",
    "ppo_batch",
    "ppo_loss",
    "ppo_task",
    "ppo_update",
    "random_baseline",
    "random_policy",
    "recompute",
    "rollout",
    "start_carry",
    "taken",
]
