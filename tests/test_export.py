"""``jax.export`` with symbolic batch and time dimensions: ``gru`` (both variants, reverse,
lengths, resets, time-major), ``gru_stack``, ``mingru`` in every mode and the linen and NNX
modules export, survive ``serialize()``/``deserialize()`` and give the jitted function's outputs
at concrete sizes; the plans of concrete shapes are pinned, so the jitted fast paths stay.

The sizes include 1, primes, and both sides of the lengths that the symbolic plans use: the GRU's
chunk of ``SYMBOLIC_CHUNK = 32`` steps and the minGRU's blocks of ``SMALL_BLOCK = 16`` (and the
``chunk_size`` of its chunked mode, here 16).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import export

import gru_jax
import gru_jax.linen
import gru_jax.nnx
from gru_jax._base.linear_scan import resolve_mode
from gru_jax._gru.plan import SYMBOLIC_CHUNK, Plan, plan
from gru_jax._mingru.sequence import SMALL_BLOCK, sequential_block

I, H = 3, 8
KEY = jax.random.key(0)
# (B, T): 1, primes, and T on both sides of 16 and of 32 (and over 2·32), for the cases whose
# arrangement depends on them; one size (primes past both) for the others
SIZES = [(1, 1), (3, 13), (2, 17), (5, 67)]
FEW = [(3, 37)]
THRESHOLDS = {
    "gru-before-lengths-reverse",
    "mingru-auto-lengths-resets",
    "mingru-chunked-lengths-resets",
}
assert SYMBOLIC_CHUNK == 32 and SMALL_BLOCK == 16


def _xs(b: int, t: int, time_major: bool = False) -> jax.Array:
    shape = (t, b, I) if time_major else (b, t, I)
    return jax.random.normal(jax.random.fold_in(KEY, 100 * b + t), shape, jnp.float32)


def _lengths(b: int, t: int) -> jax.Array:
    return (jnp.arange(b, dtype=jnp.int32) * 5 + t) % (t + 1)  # 0 ... T, the full length first


def _resets(b: int, t: int) -> jax.Array:
    return (jnp.arange(t)[None, :] % 5 == jnp.arange(b)[:, None] % 3) & jnp.ones((b, 1), bool)


def _roundtrip(fn: Callable[..., Any], *specs: jax.ShapeDtypeStruct) -> export.Exported:
    exported = export.export(jax.jit(fn))(*specs)
    return export.deserialize(exported.serialize())


SYMBOLS = dict(zip(("b", "t"), export.symbolic_shape("b, t"), strict=True))  # one scope


def _spec(text: str, dtype: Any = jnp.float32) -> jax.ShapeDtypeStruct:
    """``"b, t, 3"`` -> a spec whose ``b`` and ``t`` are the shared symbols."""
    dims = [part.strip() for part in text.split(",")]
    shape = tuple(SYMBOLS[d] if d in SYMBOLS else int(d) for d in dims)
    return jax.ShapeDtypeStruct(shape, dtype)


def _agree(exported: export.Exported, fn: Callable[..., Any], *sizes: tuple[Any, ...]) -> None:
    """The artifact and the jitted function give the same outputs at each concrete size (all
    sizes and both sides compiled as one program)."""
    results = jax.jit(lambda sizes: [(exported.call(*a), fn(*a)) for a in sizes])(list(sizes))
    for got, want in results:
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


# Each case: (function of (xs[, extra]), the symbolic specs, the concrete arguments of (B, T)).
def _gru_cases() -> dict[str, tuple[Callable[..., Any], tuple[Any, ...], Callable[..., Any]]]:
    cases = {}
    before = gru_jax.init_gru(KEY, I, H)
    after = gru_jax.init_gru(KEY, I, H, reset_after=True)
    cases["gru-before-lengths-reverse"] = (
        lambda xs, n: gru_jax.gru(before, xs, seq_lengths=n, reverse=True),
        (_spec("b, t, 3"), _spec("b", jnp.int32)),
        lambda b, t: (_xs(b, t), _lengths(b, t)),
    )
    cases["gru-before-resets"] = (
        lambda xs, r: gru_jax.gru(before, xs, resets=r),
        (_spec("b, t, 3"), _spec("b, t", jnp.bool_)),
        lambda b, t: (_xs(b, t), _resets(b, t)),
    )
    cases["gru-after-lengths-resets-reverse"] = (
        lambda xs, n, r: gru_jax.gru(after, xs, seq_lengths=n, resets=r, reverse=True),
        (_spec("b, t, 3"), _spec("b", jnp.int32), _spec("b, t", jnp.bool_)),
        lambda b, t: (_xs(b, t), _lengths(b, t), _resets(b, t)),
    )
    p = gru_jax.init_gru(KEY, I, H)
    cases["gru-time-major-lengths"] = (
        lambda xs, n: gru_jax.gru(p, xs, seq_lengths=n, time_major=True),
        (_spec("t, b, 3"), _spec("b", jnp.int32)),
        lambda b, t: (_xs(b, t, time_major=True), _lengths(b, t)),
    )
    cases["gru-batch-only"] = (
        lambda xs: gru_jax.gru(p, xs),
        (_spec("b, 13, 3"),),
        lambda b, t: (_xs(b, 13),),
    )
    cases["gru-time-only"] = (
        lambda xs: gru_jax.gru(p, xs),
        (_spec("2, t, 3"),),
        lambda b, t: (_xs(2, t),),
    )
    stack = gru_jax.init_gru_stack(KEY, I, H, 2, bidirectional=True)
    cases["gru_stack-bidirectional-lengths-resets"] = (
        lambda xs, n, r: gru_jax.gru_stack(stack, xs, seq_lengths=n, resets=r),
        (_spec("b, t, 3"), _spec("b", jnp.int32), _spec("b, t", jnp.bool_)),
        lambda b, t: (_xs(b, t), _lengths(b, t), _resets(b, t)),
    )
    m = gru_jax.init_mingru(KEY, I, H, candidate="g")
    for mode in ("auto", "chunked"):  # "auto" is "sequential" on CPU
        cases[f"mingru-{mode}-lengths-resets"] = (
            lambda xs, n, r, mode=mode: gru_jax.mingru(
                m, xs, seq_lengths=n, resets=r, mode=mode, chunk_size=16
            ),
            (_spec("b, t, 3"), _spec("b", jnp.int32), _spec("b, t", jnp.bool_)),
            lambda b, t: (_xs(b, t), _lengths(b, t), _resets(b, t)),
        )
    cases["mingru-parallel-batch-only-reverse"] = (
        lambda xs, n: gru_jax.mingru(m, xs, seq_lengths=n, mode="parallel", reverse=True),
        (_spec("b, 13, 3"), _spec("b", jnp.int32)),
        lambda b, t: (_xs(b, 13), _lengths(b, 13)),
    )
    mstack = gru_jax.init_mingru_stack(KEY, I, H, 2, bidirectional=True)
    cases["mingru_stack-bidirectional-lengths"] = (
        lambda xs, n: gru_jax.mingru_stack(mstack, xs, seq_lengths=n),
        (_spec("b, t, 3"), _spec("b", jnp.int32)),
        lambda b, t: (_xs(b, t), _lengths(b, t)),
    )
    return cases


# The cases' parameters are drawn on first use, not when the module is collected.
CASES = functools.cache(_gru_cases)
NAMES = [
    "gru-after-lengths-resets-reverse",
    "gru-batch-only",
    "gru-before-lengths-reverse",
    "gru-before-resets",
    "gru-time-major-lengths",
    "gru-time-only",
    "gru_stack-bidirectional-lengths-resets",
    "mingru-auto-lengths-resets",
    "mingru-chunked-lengths-resets",
    "mingru-parallel-batch-only-reverse",
    "mingru_stack-bidirectional-lengths",
]


def test_every_case_is_run():
    assert sorted(CASES()) == NAMES and THRESHOLDS <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_functions_export_with_symbolic_dimensions(name: str):
    fn, specs, concrete = CASES()[name]
    exported = _roundtrip(fn, *specs)
    _agree(exported, fn, *(concrete(b, t) for b, t in (SIZES if name in THRESHOLDS else FEW)))


def test_the_gradient_exports_too():
    p = gru_jax.init_gru(KEY, I, H, reset_after=True)

    def loss(p: gru_jax.GRUParams, xs: jax.Array, n: jax.Array) -> jax.Array:
        ys, h = gru_jax.gru(p, xs, seq_lengths=n)
        return jnp.sum(ys**2) + jnp.sum(jnp.sin(h))

    grad = jax.grad(loss)
    params_spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), p)
    exported = _roundtrip(grad, params_spec, _spec("b, t, 3"), _spec("b", jnp.int32))
    _agree(exported, grad, *((p, _xs(b, t), _lengths(b, t)) for b, t in FEW))


def test_parallel_mingru_refuses_a_symbolic_length():
    m = gru_jax.init_mingru(KEY, I, H)
    with pytest.raises(ValueError, match=r"mingru: mode='parallel' needs a known number of steps"):
        export.export(jax.jit(lambda xs: gru_jax.mingru(m, xs, mode="parallel")))(_spec("b, t, 3"))


@pytest.mark.parametrize("kind", ["linen GRU", "nnx MinGRU"])  # the others: same calls
def test_modules_export(kind: str):
    xs0 = _xs(2, 5)
    if kind.startswith("linen"):
        cls = gru_jax.linen.GRU if kind.endswith("GRU") else gru_jax.linen.MinGRUStack
        layer: nn.Module = cls(H, num_layers=2, bidirectional=True)
        variables = layer.init(KEY, xs0)

        def fn(xs: jax.Array, n: jax.Array) -> Any:
            return layer.apply(variables, xs, seq_lengths=n)

    else:
        rngs = nnx.Rngs(0)
        module = (
            gru_jax.nnx.GRU(I, H, num_layers=2, rngs=rngs)
            if kind.endswith("GRU")
            else gru_jax.nnx.MinGRU(I, H, rngs=rngs)
        )
        module.eval()
        graphdef, state = nnx.split(module)

        def fn(xs: jax.Array, n: jax.Array) -> Any:
            return nnx.merge(graphdef, state)(xs, seq_lengths=n)

    exported = _roundtrip(fn, _spec("b, t, 3"), _spec("b", jnp.int32))
    _agree(exported, fn, *((_xs(b, t), _lengths(b, t)) for b, t in FEW))


# ------------------------------------------------------------- the plans of concrete shapes


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        # (T, N, I, H): fwd_chunk, recompute, train_chunk on XLA:CPU
        ((1, 8, 3, 8), (0, False, 1)),
        ((100, 8, 64, 128), (100, True, 100)),
        ((512, 1, 64, 128), (512, True, 512)),
        ((4096, 8, 64, 128), (128, True, 128)),
        ((1000, 64, 128, 256), (20, False, 20)),
        ((300, 100, 32, 32), (10, True, 10)),
    ],
)
def test_concrete_plans_are_unchanged(shape: tuple[int, int, int, int], expected: tuple):
    """The plans the jitted paths take at concrete shapes (what the benchmarks measured)."""
    steps, batch, i, h = shape
    got = plan(steps, batch, i, h, reset_after=False, backend="cpu")
    assert (got.fwd_chunk, got.recompute, got.train_chunk) == expected
    assert isinstance(got, Plan) and not got.hoist
    accelerator = plan(steps, batch, i, h, reset_after=True, backend="gpu")
    assert (accelerator.fwd_chunk, accelerator.hoist, accelerator.recompute) == (0, True, False)


def test_concrete_mingru_choices_are_unchanged():
    assert sequential_block(32, 2, 32) == 16 and sequential_block(8, 64, 128) == 128
    assert resolve_mode("auto", 4096, "cpu") == "sequential"
    assert resolve_mode("auto", 63, "gpu") == "sequential"
    assert resolve_mode("auto", 64, "gpu") == "parallel"
