"""The PPO tasks (:mod:`gru_jax.tasks.ppo`): the update's streams equal the rollout's steps, a
reset is a fresh episode, GAE against a float64 loop, a short run learns, the exported policy
plays gymnax with jax alone, and without the ``rl`` extra the tasks refuse in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax.cli import main as cli_main
from gru_jax.tasks import get_task
from gru_jax.tasks.ppo import (
    PPOAgent,
    init_collector,
    ppo_batch,
    recompute,
    rollout,
    start_carry,
    taken,
)
from gru_jax.tasks.ppo_cartpole import GAME as CARTPOLE
from gru_jax.tasks.ppo_memory import GAME as MEMORY
from gru_jax.tasks.ppo_memory import MemoryData
from gru_jax.train import ModelConfig, export_run, load_checkpoint, load_config, train_and_evaluate

ROOT = Path(__file__).resolve().parent.parent
# A short MemoryChain (4 steps an episode), so that a few dozen steps learn it.
SETS = [
    "data.memory_length=3",
    "data.rollout_length=8",
    "data.minibatches=2",
    "model.hidden_size=16",
    "train.batch_size=16",
    "train.steps=60",
    "train.log_every=5",
    "train.eval_every=60",
    "train.eval_batches=2",
    "train.checkpoint_every=60",
]


# ------------------------------------------------------------------ the update's streams


@pytest.mark.parametrize(
    ("cell", "num_layers", "burn_in"), [("gru", 1, 0), ("mingru", 2, 0), ("gru", 2, 3)]
)
def test_the_update_stream_equals_the_rollout_steps(cell, num_layers, burn_in):
    """CartPole's episodes end at random steps: each environment's rollout re-run as one
    stream with resets, from the stored state (or after the burn-in steps), gives the values and
    log-probabilities that the rollout computed one step at a time, over two rollouts (the
    second starts inside episodes, from a non-zero state)."""
    settings = get_task("ppo_cartpole").data_config(burn_in=burn_in)
    config = ModelConfig(hidden_size=8, num_layers=num_layers, cell=cell)
    agent = get_task("ppo_cartpole").make_model(config, settings)
    env = CARTPOLE.env(settings)
    collector = init_collector(agent, env, jax.random.key(0), 8, burn_in)
    example = {"inputs": jnp.zeros((8, 1, 4), jnp.float32), "resets": jnp.ones((8, 1), bool)}
    params = agent.init(jax.random.key(1), example)

    @jax.jit
    def check(collector, key):
        trajectory, after, last_value = rollout(agent, params, env, collector, key, 40)
        batch = ppo_batch(trajectory, last_value, collector, settings)
        log_probs, values = recompute(agent, params, batch)
        return trajectory, batch, after, taken(log_probs, batch["actions"]), values

    for i in range(2):
        trajectory, batch, collector, log_probs, values = check(collector, jax.random.key(2 + i))
        np.testing.assert_allclose(log_probs, batch["log_probs"], atol=1e-5)
        np.testing.assert_allclose(values, trajectory["values"].T, atol=1e-5)
        starts = np.asarray(batch["resets"])
        assert starts[:, 1:].sum() >= 8 and len({tuple(r) for r in starts}) > 1  # uneven ends
        if burn_in:  # the stored steps re-run with the same parameters: the stored state
            np.testing.assert_allclose(
                start_carry(agent, params, collector), collector["carry"].swapaxes(0, 1), atol=1e-5
            )
    assert not np.allclose(collector["carry"], 0.0)


def test_a_reset_is_a_fresh_episode():
    """A reset at step t: the same logits and actions from t on as an episode started there,
    over a stream and one step at a time, whatever the state before."""
    agent = PPOAgent(num_actions=3, hidden_size=8, num_layers=2)
    obs = jax.random.normal(jax.random.key(0), (4, 12, 5), jnp.float32)
    resets = jnp.zeros((4, 12), bool).at[:, 5].set(True)
    params = agent.init(jax.random.key(1), {"inputs": obs, "resets": resets})
    before = jax.random.normal(jax.random.key(2), (2, 4, 8), jnp.float32)
    apply = jax.jit(agent.apply)
    (logits, _), _ = apply(params, {"inputs": obs, "resets": resets}, carry=before)
    (fresh, _), _ = apply(params, {"inputs": obs[:, 5:]}, carry=jnp.zeros_like(before))
    np.testing.assert_allclose(logits[:, 5:], fresh, atol=1e-6)
    carry, stepped = before, []
    for t in range(12):
        (out, _), carry = agent.apply(params, carry, obs[:, t], resets[:, t], method=PPOAgent.step)
        stepped.append(out)
    stepped = jnp.stack(stepped[5:], axis=1)
    np.testing.assert_allclose(stepped, fresh, atol=1e-5)
    assert (jnp.argmax(stepped, -1) == jnp.argmax(fresh, -1)).all()
    assert not np.allclose(logits[:, :5], apply(params, {"inputs": obs})[0][:, :5])


# ------------------------------------------------------------------------------- GAE


def _gae_reference(rewards, values, last, terminated, truncated, finals, gamma, lam):
    """A float64 loop, environment by environment, backwards from the rollout's end."""
    steps, envs = rewards.shape
    advantages = np.zeros((steps, envs))
    for e in range(envs):
        following = 0.0
        for t in reversed(range(steps)):
            if terminated[t, e]:  # no value after a termination
                delta, link = rewards[t, e] - values[t, e], 0.0
            elif truncated[t, e]:  # a time limit: bootstrap from the final observation
                delta, link = rewards[t, e] + gamma * finals[t, e] - values[t, e], 0.0
            else:
                after = values[t + 1, e] if t + 1 < steps else last[e]
                delta, link = rewards[t, e] + gamma * after - values[t, e], 1.0
            following = delta + gamma * lam * link * following
            advantages[t, e] = following
    return advantages, advantages + values


def test_gae_equals_a_float64_loop_at_episode_boundaries():
    rng = np.random.default_rng(0)
    steps, envs = 12, 4
    terminated = np.zeros((steps, envs), bool)
    truncated = np.zeros((steps, envs), bool)
    terminated[3, 0] = truncated[8, 0] = True  # both inside one environment's rollout
    truncated[5, 1] = terminated[11, 1] = True
    terminated[6, 2] = truncated[6, 2] = True  # both at once: a termination
    finals = np.where(truncated, rng.normal(size=(steps, envs)), 0.0)
    trajectory = {
        "obs": np.zeros((steps, envs, 1)),
        "resets": np.zeros((steps, envs), bool),
        "actions": np.zeros((steps, envs), np.int32),
        "log_probs": np.zeros((steps, envs)),
        "rewards": rng.normal(size=(steps, envs)),
        "values": rng.normal(size=(steps, envs)),
        "terminated": terminated,
        "truncated": truncated,
        "final_values": finals,
    }
    last = rng.normal(size=envs)
    settings = MemoryData(gamma=0.9, gae_lambda=0.8)
    as32 = {
        k: jnp.asarray(v, jnp.float32 if v.dtype == np.float64 else v.dtype)
        for k, v in trajectory.items()
    }
    batch = ppo_batch(
        as32, jnp.asarray(last, jnp.float32), {"carry": jnp.zeros((envs, 1, 2))}, settings
    )
    want_adv, want_ret = _gae_reference(
        trajectory["rewards"], trajectory["values"], last, terminated, truncated, finals, 0.9, 0.8
    )
    np.testing.assert_allclose(batch["advantages"], want_adv.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch["returns"], want_ret.T, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------- training and export


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 60-step ppo_memory run at memory_length 3, through the training loop."""
    workdir = tmp_path_factory.mktemp("ppo") / "run"
    summary = train_and_evaluate(load_config(ROOT / "configs/ppo_memory.yaml", SETS), workdir)
    return workdir, summary


def test_a_short_run_learns_to_remember(memory_run):
    workdir, summary = memory_run
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "success_rate" in r]
    assert {"loss", "grad_norm", "episode_return", "entropy", "approx_kl"} <= set(train[0])
    assert train[0]["success_rate"] < 0.8 and train[-1]["success_rate"] > 0.9
    assert train[-1]["episode_return"] > train[0]["episode_return"]
    assert summary["baseline"] == 0.5 and summary["value"] >= 0.9, summary


def _drive(step, env, num_envs: int, steps: int, key: jax.Array):
    """A gymnax loop, one policy call per step: zero carry, resets True at first, then each
    step's done as the next step's reset. ``step(carry, obs (E, obs_dim), resets (E,)) ->
    (carry, logits (E, A))``; returns the logits, actions and rewards ``(steps, E, ...)``."""
    obs, state = env.reset(jax.random.split(key, num_envs))
    carry = jnp.zeros((1, num_envs, 16), jnp.float32)
    resets = jnp.ones(num_envs, bool)
    got = []
    for t in range(steps):
        carry, logits = step(carry, obs, resets)
        action = jnp.argmax(logits, axis=-1)
        keys = jax.random.split(jax.random.fold_in(key, t + 1), num_envs)
        obs, state, reward, terminated, truncated, _ = env.step(keys, state, action)
        resets = terminated | truncated
        got.append((logits, action, reward))
    return [np.stack(x) for x in zip(*got, strict=True)]


def test_the_exported_policy_plays_gymnax(memory_run, tmp_path):
    """``gru-jax export --streaming``: (carry, observations, resets) -> (carry, logits); driven
    one step per call through three episodes of 16 environments on a key training never used,
    it acts as the model's own one-step rollout does, and answers right."""
    workdir, _ = memory_run
    config = load_config(ROOT / "configs/ppo_memory.yaml", SETS)
    out = tmp_path / "policy.jax"
    described = export_run(config, workdir, out, streaming=True)
    assert [i["name"] for i in described["inputs"]] == ["carry", "inputs", "resets"]
    assert described["inputs"][1] == {"name": "inputs", "shape": ["b", "t", 3], "dtype": "float32"}
    assert [o["name"] for o in described["outputs"]] == ["carry", "logits"]
    assert described["outputs"][1]["shape"] == ["b", "t", 2]
    exported = jax.export.deserialize(out.read_bytes())

    def step(carry, obs, resets):
        carry, logits = exported.call(carry, obs[:, None], resets[:, None])
        return carry, logits[:, 0]

    model, params, _ = load_checkpoint(config, workdir)
    one_step = jax.jit(lambda c, o, r: model.apply(params, c, o, r, method=PPOAgent.step))

    def own(carry, obs, resets):
        (logits, _), carry = one_step(carry, obs, resets)
        return carry, logits

    env = MEMORY.env(config.data)
    key = jax.random.key(987)
    logits, actions, rewards = _drive(step, env, 16, 12, key)
    want_logits, want_actions, _ = _drive(own, env, 16, 12, key)
    np.testing.assert_allclose(logits, want_logits, atol=1e-5)
    assert (actions == want_actions).all()
    answers = rewards[3::4]  # the last step of each of the three episodes
    assert (answers != 0).all() and (answers > 0).mean() >= 0.9

    # examples/rl_policy.py: the same with jax and gymnax alone, in a fresh process
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['rl_policy.py', {str(out)!r}, '--episodes', '64', '--memory-length', '3']\n"
        f"runpy.run_path({str(ROOT / 'examples/rl_policy.py')!r}, run_name='__main__')\n"
        "assert 'gru_jax' not in sys.modules, 'imported gru_jax'\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    rate = float(run.stdout.split(":")[-1])
    assert rate >= 0.9, run.stdout


# --------------------------------------------------------------------- the data and the extra


def test_the_evaluation_seed_plays_other_episodes():
    task = get_task("ppo_memory")
    data = MemoryData(memory_length=3)
    keys = [task.make_source(data, seed).batch(jax.random.key(0), 8)["key"] for seed in (0, 1)]
    assert keys[0].dtype == jnp.uint32 and keys[0].shape == (8, 2)
    assert not np.array_equal(keys[0], keys[1])


def test_without_the_rl_extra_the_task_refuses_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "gymnax", None)  # as if not installed
    task = get_task("ppo_memory")  # the module and its data section need no gymnax
    with pytest.raises(ImportError) as raised:
        task.make_model(ModelConfig(), task.data_config())
    message = str(raised.value)
    assert "\n" not in message and "'rl'" in message and "pip install 'gru-jax[rl]'" in message
    capsys.readouterr()
    argv = ["train", str(ROOT / "configs/ppo_memory.yaml"), "--workdir", str(tmp_path / "run")]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"gru-jax: error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_a_minibatch_count_that_does_not_divide_the_environments_is_one_line(tmp_path, capsys):
    argv = ["train", str(ROOT / "configs/ppo_memory.yaml"), "--workdir", str(tmp_path)]
    capsys.readouterr()
    assert cli_main([*argv, "--set", "train.batch_size=6", "--set", "data.minibatches=4"]) == 2
    assert capsys.readouterr().err == (
        "gru-jax: error: config keys 'train.batch_size' (6, the environments) and "
        "'data.minibatches' (4) must satisfy batch_size % minibatches == 0\n"
    )


def test_burn_in_fits_in_a_rollout():
    with pytest.raises(ValueError, match=r"burn_in <= rollout_length"):
        load_config(ROOT / "configs/ppo_memory.yaml", ["data.burn_in=60"])


# --------------------------------------------------------------------- several seeds


def test_seeds_in_one_program_are_independent_runs():
    """``data.seeds=2``: one vmapped update equals each seed's own update on its slice of the
    parameters, optimiser moments, environments and key (nothing couples the seeds, not even
    the optimiser's gradient clipping); the seeds start from different parameters."""
    from gru_jax.tasks.ppo import ppo_update
    from gru_jax.tasks.ppo._agent import one_agent
    from gru_jax.train import make_optimizer

    config = load_config(ROOT / "configs/ppo_memory.yaml", [*SETS, "data.seeds=2"])
    task, data = get_task("ppo_memory"), config.data
    model = task.make_model(config.model, data)
    batch = task.make_source(data, 0).batch(jax.random.key(0), 16)
    params = model.init({"params": jax.random.key(1)}, batch)
    updates = data.ppo_epochs * data.minibatches
    optimizer, _ = make_optimizer(config.train, updates_per_step=updates)
    opt_state = optimizer.init(params)
    collector = task.on_policy.init(model, params, data, jax.random.key(2), 16)
    key = jax.random.key(3)
    got = jax.jit(lambda *a: task.on_policy.update(model, optimizer, *a, key, data))(
        params, opt_state, collector
    )
    leaves = jax.tree.leaves(params)
    assert all(leaf.shape[0] == 2 for leaf in leaves)
    assert not all(np.allclose(leaf[0], leaf[1]) for leaf in leaves)  # their own initialisation

    agent, env = one_agent(model), MEMORY.env(data)
    for seed, k in enumerate(jax.random.split(key, 2)):
        mine = jax.tree.map(lambda a, i=seed: a[i] if jnp.ndim(a) else a, (params, opt_state))
        own = jax.tree.map(lambda a, i=seed: a[:, i], collector)
        want = jax.jit(
            lambda p, o, c, k: ppo_update(agent, env, data, optimizer, p, o, c, k, success=True)
        )(*mine, own, k)
        got_params, got_opt, got_collector, _ = got
        pick = jax.tree.map(lambda a, i=seed: a[i] if jnp.ndim(a) else a, (got_params, got_opt))
        for g, w in zip(jax.tree.leaves(pick), jax.tree.leaves(want[:2]), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        for g, w in zip(
            jax.tree.leaves(jax.tree.map(lambda a, i=seed: a[:, i], got_collector)),
            jax.tree.leaves(want[2]),
            strict=True,
        ):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_seeds_with_skipped_steps_is_one_config_error():
    """``data.seeds > 1`` with ``train.skip_nonfinite > 0``: the seeds would skip different
    steps, so the step refuses, naming both keys, before anything compiles."""
    from gru_jax.train import ConfigError, make_optimizer

    config = load_config(
        ROOT / "configs/ppo_memory.yaml", [*SETS, "data.seeds=2", "train.skip_nonfinite=2"]
    )
    task, data = get_task("ppo_memory"), config.data
    model = task.make_model(config.model, data)
    batch = task.make_source(data, 0).batch(jax.random.key(0), 16)
    params = model.init({"params": jax.random.key(1)}, batch)
    optimizer, _ = make_optimizer(config.train)
    collector = task.on_policy.init(model, params, data, jax.random.key(2), 16)
    with pytest.raises(ConfigError, match=r"'data.seeds' \(2\) needs 'train.skip_nonfinite'"):
        task.on_policy.update(
            model, optimizer, params, optimizer.init(params), collector, jax.random.key(3), data
        )
