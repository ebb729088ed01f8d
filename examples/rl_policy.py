"""Play MemoryChain with an exported recurrent PPO policy, with jax and gymnax alone.

Train the agent, export its step function, then play greedy episodes with it; neither flax nor
gru_jax is imported here (gymnax imports flax for its own state classes):

    .venv/bin/gru-jax train configs/ppo_memory.yaml --workdir runs/ppo_memory
    .venv/bin/gru-jax export configs/ppo_memory.yaml --workdir runs/ppo_memory \\
        --streaming --out runs/ppo_memory/policy.jax
    .venv/bin/python examples/rl_policy.py runs/ppo_memory/policy.jax --episodes 256 --seed 7

The exported function is ``(carry (L, b, H), observations (b, t, obs_dim) float32, resets (b, t)
bool) -> (carry, logits (b, t, actions))``: this script calls it once per environment step
(``t = 1``) for ``--episodes`` environments at once, starting from a zero carry with ``resets``
True, then passing each step's ``done`` as the next step's reset (gymnax restarts an
environment that is done, and the policy's state restarts from zeros with it). An episode is a
success when its last reward, the answer's, is +1; chance is 0.5.
"""

from __future__ import annotations

import argparse
import json

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from jax import export


def play(
    policy_file: str, episodes: int, seed: int, memory_length: int
) -> tuple[float, np.ndarray]:
    """The success rate of ``episodes`` greedy episodes, and every action ``(steps, episodes)``.

    Environment ``b`` is reset with ``jax.random.split(jax.random.key(seed), episodes)[b]``,
    and every environment is stepped at step ``t`` with the keys
    ``jax.random.split(jax.random.fold_in(jax.random.key(seed), t + 1), episodes)``.
    """
    with open(policy_file, "rb") as f:
        step = export.deserialize(f.read()).call
    with open(policy_file + ".json") as f:
        carry_shape = json.load(f)["inputs"][0]["shape"]  # [L, "b", H]
    env, params = gymnax.make("MemoryChain-bsuite")
    params = params.replace(memory_length=memory_length)
    env_step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    key = jax.random.key(seed)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, episodes), params)
    carry = jnp.zeros((carry_shape[0], episodes, carry_shape[2]), jnp.float32)
    resets = jnp.ones(episodes, bool)
    actions = []
    for t in range(memory_length + 1):  # one episode: the answer is the action of the last step
        carry, logits = step(carry, obs[:, None, :].astype(jnp.float32), resets[:, None])
        action = jnp.argmax(logits[:, 0], axis=-1)
        keys = jax.random.split(jax.random.fold_in(key, t + 1), episodes)
        obs, state, reward, terminated, truncated, _ = env_step(keys, state, action, params)
        resets = terminated | truncated
        actions.append(np.asarray(action))
    assert bool(jnp.all(resets)), "every episode ends after memory_length + 1 steps"
    return float(jnp.mean(reward > 0)), np.stack(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="the FILE.jax of gru-jax export --streaming")
    parser.add_argument("--episodes", type=int, default=256, help="episodes, played at once")
    parser.add_argument("--seed", type=int, default=7, help="the seed of the episodes")
    parser.add_argument(
        "--memory-length", type=int, default=50, help="the config's data.memory_length"
    )
    args = parser.parse_args()
    rate, _ = play(args.policy, args.episodes, args.seed, args.memory_length)
    print(f"success rate over {args.episodes} episodes (seed {args.seed}): {rate:.3f}")


if __name__ == "__main__":
    main()
