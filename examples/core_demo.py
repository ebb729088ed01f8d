"""The GRU core on random data: jit, vmap and grad, with shapes and timings.

Run it with ``make core-demo`` or::

    python examples/core_demo.py --config configs/core_demo.yaml [--set hidden_size=64 ...]

It builds parameters with ``init_gru``, runs ``gru`` on one example vmapped over a batch (the core
works on one sequence; ``jax.vmap`` adds the batch), checks that this equals the batched call,
then times the jitted forward pass and the jitted gradient of a loss for both variants, and a
bidirectional ``gru_stack``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import gru_jax
from gru_jax.train import ConfigError, load_settings, setting


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The demo's settings (configs/core_demo.yaml), each with its range."""

    batch: int = setting(16, ge=1)  # B
    seq_len: int = setting(128, ge=1)  # T
    input_size: int = setting(32, ge=1)  # I
    hidden_size: int = setting(128, ge=1)  # H
    num_layers: int = setting(2, ge=1)  # for the stack part of the demo
    repeats: int = setting(20, ge=1)  # timed calls per measurement (median reported)
    seed: int = setting(0, ge=0, le=2**32 - 1)


def median_ms(fn, *args, repeats: int) -> tuple[float, float]:
    """(first call incl. compile, median of later calls) in milliseconds."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * first, 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file of shapes (see configs/core_demo.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        cfg = load_settings(DemoConfig, args.config, args.set)
    except ConfigError as e:
        print(f"core_demo: error: {e}", file=sys.stderr)
        return 2

    b, t, i, h = cfg.batch, cfg.seq_len, cfg.input_size, cfg.hidden_size
    key_p, key_x, key_s = jax.random.split(jax.random.key(cfg.seed), 3)
    xs = jax.random.normal(key_x, (b, t, i))
    lengths = jax.random.randint(key_s, (b,), 1, t + 1)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; B={b} T={t} I={i} H={h}")

    for reset_after in (False, True):
        params = gru_jax.init_gru(key_p, i, h, reset_after=reset_after)
        # One sequence at a time, vmapped over the batch, jitted.
        forward = jax.jit(
            jax.vmap(lambda p, x, n: gru_jax.gru(p, x, seq_lengths=n), in_axes=(None, 0, 0))
        )

        def loss(params, xs, lengths):
            ys, _ = gru_jax.gru(params, xs, seq_lengths=lengths)
            return jnp.mean(ys**2)

        grad = jax.jit(jax.grad(loss))
        fwd_first, fwd_ms = median_ms(forward, params, xs, lengths, repeats=cfg.repeats)
        grad_first, grad_ms = median_ms(grad, params, xs, lengths, repeats=cfg.repeats)
        ys, h_last = forward(params, xs, lengths)
        batched_ys, _ = gru_jax.gru(params, xs, seq_lengths=lengths)
        err = float(jnp.max(jnp.abs(ys - batched_ys)))
        print(
            f"gru reset_after={reset_after!s:5}: xs {xs.shape} -> ys {ys.shape}, "
            f"h_last {h_last.shape}; vmap vs batched max|diff| {err:.1e}"
        )
        print(
            f"  forward  {fwd_ms:8.2f} ms median (first call {fwd_first:7.1f} ms with compile)\n"
            f"  gradient {grad_ms:8.2f} ms median (first call {grad_first:7.1f} ms with compile)"
        )

    stack = gru_jax.init_gru_stack(key_p, i, h, cfg.num_layers, bidirectional=True)
    run_stack = jax.jit(lambda p, x, n: gru_jax.gru_stack(p, x, seq_lengths=n))
    first, ms = median_ms(run_stack, stack, xs, lengths, repeats=cfg.repeats)
    ys, h_n = run_stack(stack, xs, lengths)
    print(
        f"gru_stack L={cfg.num_layers} bidirectional: ys {ys.shape}, h_n {h_n.shape}; "
        f"forward {ms:.2f} ms median (first call {first:.1f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
