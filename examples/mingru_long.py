"""minGRU against the full GRU on a long-range task: time to a target MSE at T = 4096.

Run it with::

    python examples/mingru_long.py --config configs/mingru_long.yaml [--set seq_len=1024 ...]

The task is the adding problem (:func:`gru_jax.tasks.adding.adding_batch`): each step's input is
``(value, marker)``, values U[0, 1], one marker in each half of the sequence; the target is the
sum of the two marked values. Predicting 1 always gives MSE 2/12 ≈ 0.167; reaching a low MSE
needs memory across thousands of steps.

Both models are a recurrent layer of ``hidden_size`` followed by a linear read-out of its last
state, trained with the same Optax optimiser (Adam, global-norm clipping) on the same batches:

* ``minGRU``: :class:`gru_jax.linen.MinGRU` (``mode`` from the config; ``"auto"`` is the
  sequential scan on CPU and the parallel scan on GPU/TPU);
* ``GRU``: :class:`gru_jax.linen.GRU`, the full GRU.

With ``chrono: true`` (the default) both start with the "chrono" update-gate bias of the
library's ``chrono=T`` keyword, ``b_z = −log U(1, T − 1)``, so that at initialisation each unit
remembers over a random horizon of up to ``T`` steps (Tallec & Ollivier, 2018; see
docs/long-memory.md); with a zero bias, ``z = 0.5`` forgets everything within a few dozen steps.

Each model trains until its MSE on a fixed evaluation batch falls below ``target_mse``, or its
wall-clock budget (``mingru_budget_s`` / ``gru_budget_s``) or ``max_steps`` runs out. Training
time counts only the training steps (the first one's compilation reported apart), not the
evaluations. The script prints a table and writes it, with the loss curves, as JSON to
``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gru_jax.linen import GRU, MinGRU
from gru_jax.tasks.adding import adding_batch
from gru_jax.train import ConfigError, load_settings, setting


@dataclasses.dataclass(frozen=True)
class LongConfig:
    """The experiment's settings (configs/mingru_long.yaml), each with its range."""

    seq_len: int = setting(4096, ge=2)  # T; one marked value in each half
    batch: int = setting(32, ge=1)  # B per training step
    hidden_size: int = setting(32, ge=1)  # H, both models
    learning_rate: float = setting(1e-2, gt=0)  # Adam
    grad_clip: float = setting(1.0, gt=0)  # global-norm clipping
    target_mse: float = setting(0.01, gt=0)  # baseline (predict 1): 2/12 ≈ 0.167
    eval_batch: int = setting(256, ge=1)  # size of the fixed evaluation batch
    eval_every: int = setting(25, ge=1)  # steps between evaluations
    max_steps: int = setting(2000, ge=1)  # per model
    mingru_budget_s: float = setting(120.0, ge=0)  # wall-clock training budget, seconds
    gru_budget_s: float = setting(300.0, ge=0)
    mode: str = setting("auto", one_of=("auto", "sequential", "parallel", "chunked"))  # minGRU
    chrono: bool = setting(True)  # chrono=seq_len for both models (needs seq_len >= 3)
    seed: int = setting(0, ge=0, le=2**32 - 1)


class Regressor(nn.Module):
    """A recurrent layer, then a linear read-out of its last state: ``(B, T, 2) -> (B,)``."""

    kind: str  # "minGRU" or "GRU"
    hidden_size: int
    mode: str = "auto"
    chrono: int | None = None  # T_max of the update-gate bias, or None for zero biases

    @nn.compact
    def __call__(self, xs: jax.Array) -> jax.Array:
        if self.kind == "minGRU":
            layer = MinGRU(self.hidden_size, mode=self.mode, return_carry=True, chrono=self.chrono)
            _, h_last = layer(xs)
        else:
            _, h_n = GRU(self.hidden_size, return_carry=True, chrono=self.chrono)(xs)
            h_last = h_n[-1]
        return nn.Dense(1)(h_last)[..., 0]


def train(kind: str, cfg: LongConfig, budget_s: float) -> dict[str, Any]:
    """Train one model to ``target_mse``; return its timings and curve."""
    key = jax.random.key(cfg.seed)
    k_init, _, k_eval, k_data = jax.random.split(key, 4)  # (the second key is no longer used)
    t_len, hidden = cfg.seq_len, cfg.hidden_size
    model = Regressor(kind, hidden, cfg.mode, chrono=t_len if cfg.chrono else None)
    eval_set = adding_batch(k_eval, cfg.eval_batch, t_len)
    params = model.init(k_init, eval_set["inputs"][:1])
    optimizer = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.learning_rate))
    opt_state = optimizer.init(params)

    def mse(params, batch):
        return jnp.mean((model.apply(params, batch["inputs"]) - batch["targets"]) ** 2)

    @jax.jit
    def train_step(params, opt_state, step):
        batch = adding_batch(jax.random.fold_in(k_data, step), cfg.batch, t_len)
        loss, grads = jax.value_and_grad(mse)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    evaluate = jax.jit(mse)
    start = time.perf_counter()
    params, opt_state, loss = jax.block_until_ready(train_step(params, opt_state, 0))
    compile_s = time.perf_counter() - start  # the first step: compilation plus one step
    jax.block_until_ready(evaluate(params, eval_set))
    train_s, steps, curve, reached = 0.0, 1, [], None
    while True:
        if steps % cfg.eval_every == 0 or steps == 1:
            eval_mse = float(evaluate(params, eval_set))
            curve.append({"step": steps, "train_s": round(train_s, 3), "eval_mse": eval_mse})
            if eval_mse < cfg.target_mse:
                reached = {"step": steps, "train_s": train_s, "eval_mse": eval_mse}
                break
            print(
                f"  {kind:6s} step {steps:5d}  {train_s:7.1f} s  train mse {float(loss):.4f}"
                f"  eval mse {eval_mse:.4f}",
                flush=True,
            )
        if steps >= cfg.max_steps or train_s >= budget_s:
            break
        start = time.perf_counter()
        params, opt_state, loss = jax.block_until_ready(train_step(params, opt_state, steps))
        train_s += time.perf_counter() - start
        steps += 1
    step_ms = 1e3 * train_s / max(steps - 1, 1)
    return {
        "model": kind,
        "params": sum(a.size for a in jax.tree.leaves(params)),
        "first_step_s": compile_s,
        "steps": steps,
        "train_s": train_s,
        "ms_per_step": step_ms,
        "reached_target": reached is not None,
        "time_to_target_s": None if reached is None else reached["train_s"],
        "steps_to_target": None if reached is None else reached["step"],
        "final_eval_mse": curve[-1]["eval_mse"],
        "curve": curve,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file (see configs/mingru_long.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    try:
        cfg = load_settings(LongConfig, args.config, args.set)
    except ConfigError as e:
        print(f"mingru_long: error: {e}", file=sys.stderr)
        return 2
    if cfg.chrono and cfg.seq_len < 3:
        print(
            f"mingru_long: error: chrono: true needs seq_len >= 3 (it passes chrono=seq_len); "
            f"got seq_len={cfg.seq_len}",
            file=sys.stderr,
        )
        return 2

    device = jax.devices()[0]
    load_before = _load_average()
    print(
        f"jax {jax.__version__} on {device.platform} ({device.device_kind}); adding problem "
        f"T={cfg.seq_len} B={cfg.batch} H={cfg.hidden_size}; target eval MSE < "
        f"{cfg.target_mse} (baseline {2 / 12:.3f})",
        flush=True,
    )
    results = [
        train("minGRU", cfg, cfg.mingru_budget_s),
        train("GRU", cfg, cfg.gru_budget_s),
    ]
    print(
        f"\n{'model':7s} {'params':>7s} {'ms/step':>8s} {'steps':>6s} {'train s':>8s} "
        f"{'final mse':>9s}  time to target"
    )
    for r in results:
        target = (
            f"{r['time_to_target_s']:.1f} s ({r['steps_to_target']} steps)"
            if r["reached_target"]
            else f"not reached in {r['train_s']:.0f} s"
        )
        print(
            f"{r['model']:7s} {r['params']:7d} {r['ms_per_step']:8.1f} {r['steps']:6d} "
            f"{r['train_s']:8.1f} {r['final_eval_mse']:9.4f}  {target}"
        )
    fast, slow = results
    if fast["reached_target"] and slow["reached_target"]:
        print(
            f"minGRU reached the target {slow['time_to_target_s'] / fast['time_to_target_s']:.1f}"
            "x sooner than the GRU"
        )
    per_step = slow["ms_per_step"] / fast["ms_per_step"]
    print(f"per training step, minGRU is {per_step:.1f}x faster than the GRU")
    if args.out:
        summary = {
            "config": dataclasses.asdict(cfg),
            "jax": jax.__version__,
            "device": f"{device.platform} ({device.device_kind})",
            "machine": platform.machine(),
            "cpu_count": _cpu_count(),
            "load_average_before": load_before,
            "load_average_after": _load_average(),
            "results": results,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1, default=_jsonable))
        print(f"wrote {args.out}")
    return 0


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _load_average() -> list[float] | None:
    import os

    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return float(value)


if __name__ == "__main__":
    sys.exit(main())
