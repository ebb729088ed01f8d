"""The recurrent actor-critic of the PPO tasks: :class:`PPOAgent`."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gru_jax.tasks._base import Batch, RecurrentModel


class PPOAgent(RecurrentModel):
    """Encoder (Dense, tanh) → recurrent stack → actor (action logits) and critic (value).

    The recurrent stack is the ``model:`` section's
    (:meth:`~gru_jax.tasks.RecurrentModel.recurrent_layer`: a GRU or a minGRU by
    ``model.cell``, ``model.num_layers`` layers of ``model.hidden_size``). Two ways to run it,
    which give the same numbers:

    * over a stream, ``model.apply(params, {"inputs": obs (B, T, obs_dim), "resets": (B, T)},
      carry=h0)`` -> ``((logits (B, T, A), values (B, T)), h_n (L, B, H))``: the PPO update,
      which re-runs each environment's rollout as one sequence with ``resets`` at episode
      starts; without ``carry`` it returns ``(logits, values)`` from the zero state;
    * one step at a time, :meth:`step`: the rollouts, which act in many environments at once.

    A reset at a step means the state before that step is zeros (a fresh episode). The model
    runs deterministically (no dropout: ``model.dropout_rate`` has no effect here).

    Attributes:
      num_actions: ``A``, the environment's discrete actions.
      hidden_size: the recurrent layer's state size, also the encoder's width
        (``model.hidden_size``); its other options are
        :class:`~gru_jax.tasks.RecurrentModel`'s keyword-only fields.
      env_params: the ``(name, value)`` fields of the gymnax ``EnvParams`` of the environment
        the agent acts in, which its evaluation plays (e.g. ``(("memory_length", 50),)``);
        they change no parameter.
      seeds: how many independent agents the parameters hold, stacked on a leading axis
        (``data.seeds``): ``stacked_agents`` makes such a model, ``one_agent`` the
        agent each of them is. 1, the default: one agent.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax.tasks.ppo import PPOAgent
      >>> agent = PPOAgent(num_actions=2, hidden_size=8)
      >>> batch = {"inputs": jnp.zeros((4, 5, 3)), "resets": jnp.zeros((4, 5), bool)}
      >>> params = agent.init(jax.random.key(0), batch)
      >>> (logits, values), h_n = agent.apply(params, batch, carry=jnp.zeros((1, 4, 8)))
      >>> logits.shape, values.shape, h_n.shape
      ((4, 5, 2), (4, 5), (1, 4, 8))
      >>> (logits, values), h = agent.apply(
      ...     params, h_n, jnp.zeros((4, 3)), jnp.ones(4, bool), method=PPOAgent.step)
      >>> logits.shape, values.shape, h.shape
      ((4, 2), (4,), (1, 4, 8))
    """

    num_actions: int
    hidden_size: int
    env_params: tuple[tuple[str, Any], ...] = ()
    seeds: int = 1

    def setup(self) -> None:
        self.encoder = nn.Dense(self.hidden_size)
        self.rnn = self.recurrent_layer(return_carry=True)
        orthogonal = nn.initializers.orthogonal
        # Small policy logits at first (near-uniform actions), unit-scale values.
        self.actor = nn.Dense(self.num_actions, kernel_init=orthogonal(0.01))
        self.critic = nn.Dense(1, kernel_init=orthogonal(1.0))

    def _heads(self, ys: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.actor(ys), self.critic(ys)[..., 0]

    def __call__(self, batch: Batch, *, train: bool = False, carry: jax.Array | None = None) -> Any:
        """``(logits (B, T, A), values (B, T))`` over ``batch["inputs"] (B, T, obs_dim)`` with
        ``batch["resets"] (B, T)`` if any; given a ``carry (L, B, H)``, ``((logits, values),
        new carry)``. ``train`` is accepted for the training loop and changes nothing."""
        del train  # deterministic: PPO's ratios compare the same function before and after
        xs = jnp.tanh(self.encoder(batch["inputs"]))
        ys, h_n = self.rnn(xs, resets=batch.get("resets"), initial_carry=carry, deterministic=True)
        out = self._heads(ys)
        return out if carry is None else (out, h_n)

    def step(
        self, carry: jax.Array, obs: jax.Array, reset: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """One step of ``B`` environments: ``carry (L, B, H)``, ``obs (B, obs_dim)``, ``reset
        (B,)`` bool (True where ``obs`` starts an episode: the carry is zeroed first) ->
        ``((logits (B, A), values (B,)), new carry (L, B, H))``."""
        keep = 1.0 - reset.astype(carry.dtype)
        carry = self.rnn.step(carry * keep[None, :, None], jnp.tanh(self.encoder(obs)))
        return self._heads(carry[-1]), carry


def stacked_agents(agent: PPOAgent) -> PPOAgent:
    """``agent.seeds`` independent copies of ``agent`` in one module: ``init`` draws each one's
    parameters with its own key and stacks them on a leading axis (``nn.vmap``); the PPO task
    trains them in one compiled program, each with its own environments and optimiser state."""
    if agent.seeds == 1:
        return agent
    stacked = nn.vmap(
        PPOAgent,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=None,
        axis_size=agent.seeds,
    )
    return stacked(**_fields(agent))


def one_agent(agent: PPOAgent) -> PPOAgent:
    """The single agent of which ``agent`` stacks ``agent.seeds`` (``agent`` itself if one)."""
    return (
        agent
        if agent.seeds == 1 and type(agent) is PPOAgent
        else PPOAgent(**_fields(agent) | {"seeds": 1})
    )


def _fields(agent: PPOAgent) -> dict[str, Any]:
    skip = ("parent", "name")
    return {
        f.name: getattr(agent, f.name)
        for f in dataclasses.fields(PPOAgent)
        if f.init and f.name not in skip
    }
