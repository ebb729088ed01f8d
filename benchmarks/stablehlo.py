"""The fast paths' compiled programs, compared with those of another commit.

Every change keeps the StableHLO that ``jax.jit(...).lower(...)`` gives for the core functions
at concrete shapes (CONTRIBUTING.md), unless an issue asks to change it. This script writes that
text for a fixed set of calls (``gru`` in both variants with lengths, resets, reverse,
time-major and remat, and its gradients; ``gru_stack`` and ``mingru_stack`` with dropout;
``mingru`` in every mode; the Flax ``GRU`` module) and compares it with the same calls lowered
by the code of another commit, checked out in a temporary ``git worktree``::

    python benchmarks/stablehlo.py --base d0d0d9d          # compare with that commit
    python benchmarks/stablehlo.py --write DIR             # only write this tree's texts

The texts are compared up to the names of functions (``@_scan_gru`` and the like, which moving
code may rename) and source locations. Exit status 0 when every program is the same, 1 when
any differs (the first differing lines are printed). The calls use only the public API, so the
script runs against any commit that has it.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cases() -> dict[str, Callable[[], str]]:
    """Each case's name and a function returning its StableHLO text (CPU)."""
    import jax
    import jax.numpy as jnp

    import gru_jax

    key = jax.random.key(0)
    B, T, I, H = 3, 20, 4, 8  # noqa: E741 (the docs' shape names)
    xs = jax.random.normal(key, (B, T, I))
    lengths = jnp.array([20, 7, 0])
    resets = jnp.zeros((B, T), bool).at[:, 9].set(True)

    def lower(fn: Callable[..., Any], *args: Any) -> str:
        return jax.jit(fn).lower(*args).as_text()

    def loss(run: Callable[..., Any]) -> Callable[..., Any]:
        def f(params: Any, xs: Any) -> Any:
            ys, h = run(params, xs)
            return jnp.sum(ys**2) + jnp.sum(h)

        return jax.grad(f, argnums=(0, 1))

    cases: dict[str, Callable[[], str]] = {}
    big = jax.random.normal(key, (64, 12, 32))
    for ra in (False, True):
        p = gru_jax.init_gru(key, I, H, reset_after=ra)
        tag = f"gru_ra{int(ra)}"
        variants: dict[str, Callable[..., Any]] = {
            "": lambda p, x: gru_jax.gru(p, x),
            "_lengths": lambda p, x: gru_jax.gru(p, x, seq_lengths=lengths),
            "_resets": lambda p, x: gru_jax.gru(p, x, resets=resets),
            "_reverse_lengths": lambda p, x: gru_jax.gru(p, x, seq_lengths=lengths, reverse=True),
            "_remat": lambda p, x: gru_jax.gru(p, x, remat=True),
        }
        for name, run in variants.items():
            cases[f"{tag}{name}"] = lambda run=run, p=p: lower(run, p, xs)
            cases[f"{tag}{name}_grad"] = lambda run=run, p=p: lower(loss(run), p, xs)
        # a larger batch: the stored-gates (not recomputed) derivative
        q = gru_jax.init_gru(key, 32, 32, reset_after=ra)
        cases[f"{tag}_b64_grad"] = lambda q=q: lower(loss(gru_jax.gru), q, big)
        cases[f"{tag}_time_major"] = lambda p=p: lower(
            lambda p, x: gru_jax.gru(p, x, time_major=True), p, jnp.swapaxes(xs, 0, 1)
        )

    stack = gru_jax.init_gru_stack(key, I, H, 2, bidirectional=True)
    cases["gru_stack_bi"] = lambda: lower(
        lambda p, x: gru_jax.gru_stack(p, x, seq_lengths=lengths, resets=resets), stack, xs
    )
    cases["gru_stack_bi_grad"] = lambda: lower(
        loss(lambda p, x: gru_jax.gru_stack(p, x, seq_lengths=lengths)), stack, xs
    )
    cases["gru_stack_dropout"] = lambda: lower(
        lambda p, x: gru_jax.gru_stack(p, x, dropout_rate=0.25, deterministic=False, key=key),
        stack,
        xs,
    )
    one_way = gru_jax.init_gru_stack(key, I, H, 2)
    cases["gru_stack_cell"] = lambda: lower(
        gru_jax.gru_stack_cell, one_way, jnp.zeros((2, B, H)), xs[:, 0]
    )

    m = gru_jax.init_mingru(key, I, H)
    for mode in ("sequential", "parallel", "chunked"):
        run_m = lambda p, x, mode=mode: gru_jax.mingru(p, x, mode=mode, chunk_size=8)  # noqa: E731
        run_ml = lambda p, x, mode=mode: gru_jax.mingru(  # noqa: E731
            p, x, mode=mode, seq_lengths=lengths, resets=resets, reverse=True
        )
        cases[f"mingru_{mode}"] = lambda run=run_m: lower(run, m, xs)
        cases[f"mingru_{mode}_grad"] = lambda run=run_m: lower(loss(run), m, xs)
        cases[f"mingru_{mode}_lengths_resets_reverse_grad"] = lambda run=run_ml: lower(
            loss(run), m, xs
        )
    mstack = gru_jax.init_mingru_stack(key, I, H, 2, bidirectional=True)
    cases["mingru_stack_bi_grad"] = lambda: lower(
        loss(lambda p, x: gru_jax.mingru_stack(p, x, seq_lengths=lengths)), mstack, xs
    )
    cases["mingru_cell"] = lambda: lower(gru_jax.mingru_cell, m, jnp.zeros((B, H)), xs[:, 0])

    def linen_gru() -> str:
        from gru_jax.linen import GRU

        layer = GRU(features=H, num_layers=2, dropout_rate=0.1)
        variables = layer.init(key, xs)
        return lower(lambda v, x: layer.apply(v, x, seq_lengths=lengths), variables, xs)

    cases["linen_GRU"] = linen_gru
    return cases


_LOC = re.compile(r"\s*loc\([^()]*(\([^()]*\))*[^()]*\)")
_SYMBOL = re.compile(r"@[\w$.\-]+")


def normalise(text: str) -> str:
    """The text up to function names and source locations."""
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("#loc"):
            continue
        line = _LOC.sub("", line)
        lines.append(_SYMBOL.sub("@F", line.rstrip()))
    return "\n".join(lines) + "\n"


def write(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, make in _cases().items():
        (out / f"{name}.mlir").write_text(make())


def compare(base: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tree, ours, theirs = Path(tmp, "tree"), Path(tmp, "ours"), Path(tmp, "theirs")
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for path, out in ((ROOT, ours), (tree, theirs)):
                env = {**os.environ, "PYTHONPATH": str(path), "JAX_PLATFORMS": "cpu"}
                subprocess.run(
                    [sys.executable, __file__, "--write", str(out)], env=env, cwd=path, check=True
                )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
        differ = 0
        for path in sorted(ours.glob("*.mlir")):
            a = normalise((theirs / path.name).read_text())
            b = normalise(path.read_text())
            if a == b:
                print(f"same       {path.stem}")
                continue
            differ += 1
            print(f"DIFFERENT  {path.stem}")
            diff = difflib.unified_diff(a.splitlines(), b.splitlines(), base, "this tree", n=1)
            print("\n".join(list(diff)[:40]))
        total = len(list(ours.glob("*.mlir")))
    print(f"{differ} of {total} programs differ from {base}")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--base", help="a commit to compare with, e.g. HEAD~1")
    group.add_argument("--write", type=Path, help="write this tree's texts into DIR")
    args = parser.parse_args()
    if args.write:
        write(args.write)
        return 0
    return compare(args.base)


if __name__ == "__main__":
    sys.exit(main())
