"""Recurrent PPO on ppo_memory: gru_jax's agent against the common Flax pattern, in one process.

    python benchmarks/bench_ppo.py --out benchmarks/results   # 2 seeds × 3 trainings: ~2.5 min
    python benchmarks/bench_ppo.py --quick                     # a smoke run, under a minute

Two agents, trained by the same training step of the ppo_memory task (``configs/ppo_memory.yaml``):

* ``gru_jax``: the task's own :class:`~gru_jax.tasks.ppo.PPOAgent`, whose recurrent core is
  :class:`gru_jax.linen.GRU` (the stream with ``resets=``, one step at a time by ``GRU.step``);
* ``flax``: :class:`FlaxPatternAgent`, the same encoder and heads around the recurrent core as RL
  code writes it in Flax: purejaxrl's ``ScannedRNN`` (``nn.scan`` over ``nn.GRUCell``, the state
  reset by a ``jnp.where`` at every step, time-major), with ``nn.GRUCell``'s own initialisers.
  Its rollout step is purejaxrl's too: the scan over a length-1 sequence.

Each agent's training step is the task's ``OnPolicy.update`` with the run's optimiser
(``make_optimizer``), jitted as the training loop jits it (the state donated); keys, parameters,
collectors and evaluation episodes come from the seed as in ``gru-jax train``. The runs (both
agents, seeds 0 and 1) advance in lockstep, ``--eval-every`` steps at a time, in an order rotated
from block to block so that background load hits them alike. A block is timed from its first
step to its last result (compilation before, evaluation after, neither timed); environment steps
per second = steps × ``train.batch_size`` (the environments) × ``data.rollout_length`` / seconds.
After every block each run's greedy success is evaluated as the run does (``metric_sums`` over
``train.eval_batches`` batches of the evaluation source): the success curves. Each block also
records the process's CPU seconds (cores used): gru_jax's step spreads over a second core where
one is free and the Flax pattern's hardly does, so the ratio depends on the machine's other load;
``taskset -c 0 python benchmarks/bench_ppo.py`` measures both on one core.

Writes ``ppo_flax_comparison.json``, ``.md`` and ``.png`` (the curves) into ``--out`` (default: a
temporary folder), with the machine, versions, load average and command.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

try:
    from benchmarks import harness
except ImportError:  # run as a script (its folder is on sys.path)
    import harness  # type: ignore[no-redef]

from gru_jax.linen import GRU
from gru_jax.tasks import get_task
from gru_jax.tasks.ppo import PPOAgent
from gru_jax.train import load_config, make_optimizer

NAME = "ppo_flax_comparison"
CONFIG = harness.ROOT / "configs" / "ppo_memory.yaml"
AGENTS = ("gru_jax", "flax")
AIM = 1.3  # the aim: gru_jax's environment steps per second over the Flax pattern's
TARGET = 0.9  # the config's target success
SPARE_SEED = 12345  # the warm-up run's, untimed
QUICK = (  # a smoke run: tiny sizes, a few steps
    "train.steps=4",
    "train.batch_size=8",
    "train.eval_batches=1",
    "train.warmup_steps=1",
    "data.memory_length=4",
    "data.rollout_length=5",
    "model.hidden_size=8",
)


class ScannedRNN(nn.Module):
    """purejaxrl's ``ScannedRNN`` (``purejaxrl/ppo_rnn.py``): ``nn.scan`` over ``nn.GRUCell``,
    time-major, the state zeroed by ``jnp.where`` where ``resets`` is set, at every step.

    ``(carry (B, H), (ins (T, B, I), resets (T, B))) -> (carry, ys (T, B, H))``.
    """

    features: int

    @functools.partial(
        nn.scan,
        variable_broadcast="params",
        in_axes=0,
        out_axes=0,
        split_rngs={"params": False},
    )
    @nn.compact
    def __call__(self, carry: jax.Array, x: tuple[jax.Array, jax.Array]) -> Any:
        """Applies the module."""
        rnn_state = carry
        ins, resets = x
        rnn_state = jnp.where(
            resets[:, np.newaxis],
            self.initialize_carry(ins.shape[0], self.features),
            rnn_state,
        )
        new_rnn_state, y = nn.GRUCell(features=self.features)(rnn_state, ins)
        return new_rnn_state, y

    @staticmethod
    def initialize_carry(batch_size: int, hidden_size: int) -> jax.Array:
        # Use a dummy key since the default state init fn is just zeros.
        cell = nn.GRUCell(features=hidden_size)
        return cell.initialize_carry(jax.random.PRNGKey(0), (batch_size, hidden_size))


class FlaxPatternAgent(PPOAgent):
    """:class:`PPOAgent` with :class:`ScannedRNN` as its recurrent core: the same encoder and
    heads, fields, carry ``(1, B, H)`` and calls (the stream with ``batch["resets"]``, and
    :meth:`step`), so that the task's training step and evaluation run it unchanged."""

    def setup(self) -> None:
        if self.num_layers != 1 or self.cell != "gru":
            raise ValueError("FlaxPatternAgent: one GRU layer (model.num_layers 1, cell gru)")
        self.encoder = nn.Dense(self.hidden_size)
        self.rnn = ScannedRNN(self.hidden_size)
        orthogonal = nn.initializers.orthogonal
        self.actor = nn.Dense(self.num_actions, kernel_init=orthogonal(0.01))
        self.critic = nn.Dense(1, kernel_init=orthogonal(1.0))

    def __call__(self, batch: Any, *, train: bool = False, carry: jax.Array | None = None) -> Any:
        """As :meth:`PPOAgent.__call__`: batch-major in and out, time-major inside (purejaxrl's
        layout), the layout changed where the arrays are smallest (observations, heads)."""
        del train
        obs = jnp.swapaxes(batch["inputs"], 0, 1)  # (T, B, obs_dim)
        size, length = obs.shape[1], obs.shape[0]
        resets = batch.get("resets")
        resets = jnp.zeros((length, size), bool) if resets is None else jnp.swapaxes(resets, 0, 1)
        h0 = jnp.zeros((size, self.hidden_size)) if carry is None else carry[0]
        h_n, ys = self.rnn(h0, (jnp.tanh(self.encoder(obs)), resets))
        logits, values = self._heads(ys)
        out = (jnp.swapaxes(logits, 0, 1), jnp.swapaxes(values, 0, 1))
        return out if carry is None else (out, h_n[None])

    def step(
        self, carry: jax.Array, obs: jax.Array, reset: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """As :meth:`PPOAgent.step`, the way purejaxrl's rollout acts: the scanned core over a
        sequence of one step, reset by its ``where``."""
        ins = jnp.tanh(self.encoder(obs))
        h, ys = self.rnn(carry[0], (ins[np.newaxis], reset[np.newaxis]))
        return self._heads(ys[0]), h[None]

    @nn.nowrap
    def apply(self, variables: Any, *args: Any, method: Any = None, **kwargs: Any) -> Any:
        """``Module.apply``; the package's rollout and greedy policy name ``PPOAgent.step``
        (``method=PPOAgent.step``), which runs this class's :meth:`step` here."""
        if method is PPOAgent.step:
            method = FlaxPatternAgent.step
        return super().apply(variables, *args, method=method, **kwargs)


def selects_in_scan(jaxpr: Any, inside: bool = False) -> bool:
    """Whether a ``select_n`` (a ``where``) runs inside a ``scan`` body of ``jaxpr``."""
    for eqn in jaxpr.eqns:
        if inside and eqn.primitive.name == "select_n":
            return True
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                sub = getattr(sub, "jaxpr", sub)
                scan = inside or eqn.primitive.name == "scan"
                if hasattr(sub, "eqns") and selects_in_scan(sub, scan):
                    return True
    return False


class Run:
    """One agent and seed, set up as ``gru-jax train`` sets up a run: its state, its keys, its
    evaluation episodes; ``step`` and ``metric_sums`` are the agent's jitted functions."""

    def __init__(self, agent: str, seed: int, model: Any, jitted: dict[str, Any], cfg: Any):
        self.agent, self.seed, self.model, self.jitted, self.cfg = agent, seed, model, jitted, cfg
        task = get_task(cfg.task)
        k_init, self.k_data, _, self.k_eval = jax.random.split(jax.random.key(seed), 4)
        source = task.make_source(cfg.data, seed)
        eval_source = task.make_source(cfg.data, seed + 1)
        size = cfg.train.batch_size
        batch = source.batch(jax.random.fold_in(self.k_data, 0), size)
        params = model.init({"params": k_init}, batch)
        assert task.on_policy is not None
        self.state = {
            "params": params,
            "opt_state": jitted["optimizer"].init(params),
            "step": jnp.zeros((), jnp.int32),
            "collector": task.on_policy.init(
                model, params, cfg.data, jax.random.fold_in(k_init, 1), size
            ),
        }
        self.eval_batches = [
            eval_source.batch(jax.random.fold_in(self.k_eval, i), size)
            for i in range(cfg.train.eval_batches)
        ]
        self.done = 0
        self.blocks: list[dict[str, float]] = []
        self.curve: list[tuple[int, float]] = []

    def train(self, steps: int) -> float:
        """``steps`` training steps as the loop runs them; the wall seconds (and the process's
        CPU seconds in the block: how many cores it got)."""
        step = self.jitted["step"]
        time.sleep(0.02)  # let the previous run's thread pools go idle first
        u0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        for s in range(self.done, self.done + steps):
            self.state, aux = step(self.state, jax.random.fold_in(self.k_data, s))
        jax.block_until_ready((self.state, aux))
        wall = time.perf_counter() - t0
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime
        self.done += steps
        block = {"step": self.done, "seconds": wall, "cpu_seconds": cpu}
        self.blocks.append(block | {"loss": float(aux["loss"])})
        return wall

    def evaluate(self) -> float:
        """Greedy success over the evaluation batches, as ``_Run.evaluate``; added to the curve."""
        total = count = 0.0
        for batch in self.eval_batches:
            s, c = self.jitted["metric_sums"](self.state["params"], batch)
            total, count = total + float(s), count + float(c)
        self.curve.append((self.done, total / count))
        return total / count


def build(cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both agents and their jitted training step and metric, built the same way."""
    task = get_task(cfg.task)
    on_policy = task.on_policy
    assert on_policy is not None and on_policy.updates_per_step is not None
    optimizer, _ = make_optimizer(cfg.train, updates_per_step=on_policy.updates_per_step(cfg.data))
    ours = task.make_model(cfg.model, cfg.data)
    models = {
        "gru_jax": ours,
        "flax": FlaxPatternAgent(ours.num_actions, ours.hidden_size, env_params=ours.env_params),
    }
    jitted = {}
    for name, model in models.items():

        def train_step(state: Any, key: jax.Array, model: Any = model) -> Any:
            # _Run._on_policy_step
            params, opt_state, collector, aux = on_policy.update(
                model,
                optimizer,
                state["params"],
                state["opt_state"],
                state["collector"],
                key,
                cfg.data,
            )
            new = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
            return new | {"collector": collector}, aux

        def metric_sums(params: Any, batch: Any, model: Any = model) -> Any:
            return task.metric_sums(model, params, batch)

        jitted[name] = {
            "optimizer": optimizer,
            "step": jax.jit(train_step, donate_argnums=0),
            "metric_sums": jax.jit(metric_sums),
        }
    return models, jitted


def checks(models: dict[str, Any], runs: dict[tuple[str, int], Run], cfg: Any) -> dict[str, Any]:
    """That each agent runs the core it claims (gru_jax's agent a ``gru_jax.linen.GRU``; the
    Flax agent a ``where``, ``select_n``, inside the scan of its stream), and that its stream
    with ``resets`` gives the numbers of its one-step ``step`` called as the rollout calls it."""
    size, length = 4, cfg.data.rollout_length
    k_obs, k_resets = jax.random.split(jax.random.key(7))
    out: dict[str, Any] = {}
    for name, model in models.items():
        params = runs[(name, 0)].state["params"]
        obs_dim = runs[(name, 0)].state["collector"]["obs"].shape[-1]
        stream = {
            "inputs": jax.random.normal(k_obs, (size, length, obs_dim)),
            "resets": jax.random.bernoulli(k_resets, 0.1, (size, length)),
        }
        carry = jnp.full((1, size, model.hidden_size), 0.5)
        trace = jax.make_jaxpr(lambda p, x, c, m=model: m.apply(p, x, carry=c))
        jaxpr = trace(params, stream, carry)
        (logits, values), h_n = model.apply(params, stream, carry=carry)

        def one(h: jax.Array, x: Any, p: Any = params, m: Any = model) -> Any:
            (lg, v), h = m.apply(p, h, x[0], x[1], method=PPOAgent.step)  # as the rollout does
            return h, (lg, v)

        xs = (jnp.swapaxes(stream["inputs"], 0, 1), stream["resets"].T)
        h_end, (step_logits, step_values) = jax.lax.scan(one, carry, xs)
        differences = [
            logits - jnp.swapaxes(step_logits, 0, 1),
            values - step_values.T,
            h_n - h_end,
        ]
        core = model.bind(params).rnn
        out[name] = {
            "core": f"{type(core).__module__}.{type(core).__qualname__}",
            "where_in_scan": selects_in_scan(jaxpr.jaxpr),
            "parameters": int(sum(x.size for x in jax.tree.leaves(params))),
            "stream_vs_steps_max_abs": float(max(jnp.max(jnp.abs(d)) for d in differences)),
        }
        assert out[name]["stream_vs_steps_max_abs"] < 1e-4, (name, out[name])
    assert isinstance(models["gru_jax"].bind(runs[("gru_jax", 0)].state["params"]).rnn, GRU)
    assert out["flax"]["where_in_scan"], "the Flax pattern's scan has no per-step select_n"
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def lockstep(
    runs: dict[tuple[str, int], Run], blocks: list[int], rep: int, env_steps: int
) -> float:
    """Train every run block by block, in an order rotated from block to block, evaluating
    every run after each block; the seconds spent evaluating."""
    for run in runs.values():
        run.evaluate()  # step 0
    order, spent = list(runs), 0.0
    for i, size in enumerate(blocks):
        shift = (rep * len(blocks) + i) % len(order)
        for key in order[shift:] + order[:shift]:
            runs[key].train(size)
        t0 = time.perf_counter()
        line = []
        for key in order:
            success = runs[key].evaluate()
            rate = size * env_steps / runs[key].blocks[-1]["seconds"]
            line.append(f"{key[0]}/{key[1]} {success:.3f} ({rate:,.0f}/s)")
        spent += time.perf_counter() - t0
        print(f"repeat {rep} step {runs[order[0]].done}: " + ", ".join(line), flush=True)
    return spent


def measure(args: argparse.Namespace, cfg: Any) -> dict[str, Any]:
    """Build and compile; then ``args.repeats`` times, train every run from scratch in
    lockstep blocks with evaluations between."""
    seeds = [int(s) for s in args.seeds.split(",")]
    models, jitted = build(cfg)
    env_steps = cfg.train.batch_size * cfg.data.rollout_length  # per training step
    compile_s = {}
    for name in AGENTS:  # compiled, then warmed up on a spare run, before anything is timed
        spare = Run(name, SPARE_SEED, models[name], jitted[name], cfg)
        t0 = time.perf_counter()
        jitted[name]["step"].lower(spare.state, jax.random.key(0)).compile()
        t1 = time.perf_counter()
        jitted[name]["metric_sums"].lower(spare.state["params"], spare.eval_batches[0]).compile()
        compile_s[name] = {"train_step": t1 - t0, "metric_sums": time.perf_counter() - t1}
        spare.train(2)
        spare.evaluate()
    print(f"compiled: {json.dumps(compile_s)}", flush=True)
    every, steps = args.eval_every, cfg.train.steps
    blocks = [min(every, steps - start) for start in range(0, steps, every)]
    eval_seconds, found = 0.0, {}
    repeats: list[dict[tuple[str, int], Run]] = []
    for rep in range(args.repeats):
        runs = {(a, s): Run(a, s, models[a], jitted[a], cfg) for s in seeds for a in AGENTS}
        if rep == 0:
            found = checks(models, runs, cfg)
        eval_seconds += lockstep(runs, blocks, rep, env_steps)
        repeats.append(runs)

    results: dict[str, Any] = {}
    for name in AGENTS:
        rates, per_repeat, cores = [], [], []  # block by block, seed by seed, repeat by repeat
        for runs in repeats:
            seconds = [b["seconds"] for s in seeds for b in runs[(name, s)].blocks]
            cores += [
                b["cpu_seconds"] / b["seconds"] for s in seeds for b in runs[(name, s)].blocks
            ]
            sizes = [n for _ in seeds for n in blocks]
            rates += [n * env_steps / t for n, t in zip(sizes, seconds, strict=True)]
            per_repeat.append(len(seeds) * steps * env_steps / sum(seconds))
        curves = {str(s): repeats[0][(name, s)].curve for s in seeds}
        results[name] = {
            "env_steps_per_second": spread(rates),
            "train_steps_per_second": spread([r / env_steps for r in rates]),
            "env_steps_per_second_per_repeat": [round(r, 1) for r in per_repeat],
            "cores_used": spread(cores),
            "compile_seconds": compile_s[name],
            "samples_env_steps_per_second": [round(r, 1) for r in rates],
            "success": curves,
            "same_curves_every_repeat": all(
                runs[(name, s)].curve == repeats[0][(name, s)].curve
                for runs in repeats
                for s in seeds
            ),
            "final_success": {s: c[-1][1] for s, c in curves.items()},
            "first_step_at_target": {
                s: next((t for t, v in c if v >= TARGET), None) for s, c in curves.items()
            },
            "train_loss": {
                str(s): [b["loss"] for b in repeats[0][(name, s)].blocks] for s in seeds
            },
        }
    ours, theirs = results["gru_jax"], results["flax"]
    paired = [  # each gru_jax block over the Flax block of the same repeat, seed and steps
        a / b
        for a, b in zip(
            ours["samples_env_steps_per_second"],
            theirs["samples_env_steps_per_second"],
            strict=True,
        )
    ]
    per_repeat_ratio = [
        a / b
        for a, b in zip(
            ours["env_steps_per_second_per_repeat"],
            theirs["env_steps_per_second_per_repeat"],
            strict=True,
        )
    ]
    ratio = ours["env_steps_per_second"]["median"] / theirs["env_steps_per_second"]["median"]
    learned = all(v >= TARGET for r in results.values() for v in r["final_success"].values())
    return {
        "seeds": seeds,
        "repeats": args.repeats,
        "eval_every": every,
        "env_steps_per_train_step": env_steps,
        "checks": found,
        "results": results,
        "ratio": ratio,
        "paired_ratio": spread(paired),
        "per_repeat_ratio": [round(r, 4) for r in per_repeat_ratio],
        "aim": AIM,
        "aim_met": ratio >= AIM,
        "target": TARGET,
        "both_reach_target": learned,
        "eval_seconds": eval_seconds,
    }


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    colours = {"gru_jax": "tab:blue", "flax": "tab:orange"}
    styles = ["-", "--", ":", "-."]
    for name, result in report["results"].items():
        for i, (seed, curve) in enumerate(result["success"].items()):
            steps, values = zip(*curve, strict=True)
            label = f"{name} (seed {seed})"
            ax.plot(
                steps, values, styles[i % 4], color=colours[name], marker="o", ms=3, label=label
            )
    ax.axhline(report["target"], color="grey", lw=0.8, ls="--", label=f"target {report['target']}")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance 0.5")
    ax.set_xlabel("training step")
    ax.set_ylabel("greedy success rate (evaluation episodes)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("ppo_memory: gru_jax's agent vs nn.scan(nn.GRUCell) with where")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _first(step: int | None) -> str:
    return "never" if step is None else f"step {step}"


def markdown(report: dict[str, Any]) -> str:
    res, cfg, machine = report["results"], report["settings"], report["machine"]
    seeds = [str(s) for s in report["seeds"]]
    blocks = -(-cfg["steps"] // report["eval_every"])
    samples = report["repeats"] * len(seeds) * blocks
    lines = [
        f"`{report['command']}` (commit {report['commit']}, load {report['load_before']} before, "
        f"{report['load_after']} after; {machine['cores']} cores, "
        f"{len(report['cpus_allowed'])} allowed, {machine['cpu']}; "
        f"jax {machine['versions']['jax']}, flax {machine['versions']['flax']}; "
        f"{report['wall_seconds']} s in all)",
        "",
        f"ppo_memory (MemoryChain, memory_length {cfg['memory_length']}): "
        f"{cfg['num_envs']} environments × {cfg['rollout_length']} steps per training step "
        f"({report['env_steps_per_train_step']} environment steps), {cfg['ppo_epochs']} epochs × "
        f"{cfg['minibatches']} minibatches, hidden size {cfg['hidden_size']}, "
        f"{cfg['steps']} training steps per run, seeds {', '.join(seeds)}, "
        f"{report['repeats']} training(s) from scratch each. Environment steps per second of "
        f"the training loop, timed over blocks of {report['eval_every']} training steps "
        f"({samples} per agent; both agents and seeds interleaved block by block), "
        "compilation and evaluation excluded; cores used: the process's CPU seconds over the "
        "wall seconds of a block (median), what the machine's other load left it; "
        f"success: greedy episodes of the evaluation seed ({cfg['eval_episodes']}) after the "
        "last step.",
        "",
        "| agent | env steps/s, median (min–max) | per repeat | training steps/s | cores used | "
        "compile s | " + " | ".join(f"success seed {s}" for s in seeds) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(seeds),
    ]
    for name, r in res.items():
        e, t = r["env_steps_per_second"], r["train_steps_per_second"]
        reps = r["env_steps_per_second_per_repeat"]
        cells = [
            f"{r['final_success'][s]:.3f} (first ≥ {report['target']}: "
            f"{_first(r['first_step_at_target'][s])})"
            for s in seeds
        ]
        lines.append(
            f"| {name} | {e['median']:,.0f} ({e['min']:,.0f}–{e['max']:,.0f}) | "
            f"{min(reps):,.0f}–{max(reps):,.0f} | {t['median']:.2f} | "
            f"{r['cores_used']['median']:.2f} | "
            f"{r['compile_seconds']['train_step']:.1f} | " + " | ".join(cells) + " |"
        )
    p, per = report["paired_ratio"], report["per_repeat_ratio"]
    met = "met" if report["aim_met"] else "not met"
    learned = "yes" if report["both_reach_target"] else "no"
    checks = report["checks"]
    lines += [
        "",
        f"Ratio gru_jax / flax (medians): **{report['ratio']:.3f}×**; block by block "
        f"{p['median']:.2f}× ({p['min']:.2f}–{p['max']:.2f}); per repeat "
        f"{', '.join(f'{x:.2f}×' for x in per)}. Aim ≥ {report['aim']}×: **{met}**. "
        f"Both agents at ≥ {report['target']} success at the end, every seed: {learned}; "
        "the same curves in every repeat: "
        f"{all(r['same_curves_every_repeat'] for r in res.values())}.",
        "",
        "Cores: "
        + "; ".join(
            f"{n}: `{c['core']}` ({c['parameters']} parameters; a `where` in its scan: "
            f"{c['where_in_scan']}; stream vs one step at a time, max difference "
            f"{c['stream_vs_steps_max_abs']:.1e})"
            for n, c in checks.items()
        )
        + f". gru_jax's GRU is the config's variant (reset_after {cfg['reset_after']}); "
        "`nn.GRUCell` applies the reset gate after its recurrent matmul (reset_after true).",
    ]
    if report["quick"]:
        lines += [
            "",
            "A smoke run (`--quick`): sizes too small for these numbers to mean anything.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = harness.OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few steps (smoke)")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides"
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument(
        "--repeats", type=int, default=None, help="trainings from scratch (default 3; quick 1)"
    )
    parser.add_argument("--eval-every", type=int, default=None, help="steps per timed block")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: a temp one)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, [*(QUICK if args.quick else ()), *args.set])
    if args.eval_every is None:
        args.eval_every = 2 if args.quick else 25
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.eval_every < 1 or args.repeats < 1:
        parser.error("--eval-every and --repeats must be >= 1")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_ppo_"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report = harness.report_header("bench_ppo.py") | harness.git_state()
    report["quick"] = args.quick
    report["cpus_allowed"] = sorted(os.sched_getaffinity(0))  # e.g. under taskset
    report["settings"] = {
        "config": str(args.config),
        "overrides": [*(QUICK if args.quick else ()), *args.set],
        "steps": cfg.train.steps,
        "num_envs": cfg.train.batch_size,
        "rollout_length": cfg.data.rollout_length,
        "memory_length": cfg.data.memory_length,
        "hidden_size": cfg.model.hidden_size,
        "reset_after": cfg.model.reset_after,
        "ppo_epochs": cfg.data.ppo_epochs,
        "minibatches": cfg.data.minibatches,
        "eval_episodes": cfg.train.eval_batches * cfg.train.batch_size,
    }
    report |= measure(args, cfg)
    report["load_after"] = harness.load_average()
    report["wall_seconds"] = round(time.perf_counter() - t0, 1)
    plot(report, out / f"{NAME}.png")
    harness.write_report(out / f"{NAME}.json", report, markdown(report))
    print(f"results: {out / NAME}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
