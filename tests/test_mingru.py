"""minGRU: values against an independent float64 NumPy loop, agreement of the sequential,
parallel and chunked modes (values and gradients, with lengths and h0), gradient checks,
padding invariance, segment resets (a packed row equals its segments run separately),
time-major inputs, transformations, dtypes, bad inputs, the Flax wrappers, and a smoke run of
examples/mingru_long.py.

Shapes are tiny and jitted functions are shared, so that the whole module stays fast.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import Together, randomize
from jax.test_util import check_grads
from reference import np_mingru

import gru_jax
import gru_jax.linen
import gru_jax.nnx
from gru_jax import MinGRUParams, init_mingru, linear_recurrence, mingru, mingru_cell
from gru_jax._base.linear_scan import resolve_mode
from gru_jax._mingru.sequence import LARGE_BLOCK, sequential_block

B, T, I, H = 3, 7, 4, 5
LENGTHS = np.array([T, 3, 0], np.int32)
# Segment starts for (B, T) = (3, 7) with LENGTHS: row 0 at t = 0 (replaces h0), 3 and 4
# (consecutive, and 3 is a CHUNK edge), 6 (a last segment of one step); row 1 at 2 (its last
# valid step), 4 and 5 (padding: ignored); row 2 (length 0) only in the padding.
RESETS = np.zeros((B, T), bool)
RESETS[0, [0, 3, 4, 6]] = RESETS[1, [2, 4, 5]] = RESETS[2, [0, 1]] = True
MODES = ("sequential", "parallel", "chunked")
CHUNK = 3  # does not divide T: the chunked mode pads with identity steps
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- reference


def random_params(key, candidate="linear", dtype=jnp.float64, input_size=I, hidden=H):
    """init_mingru with random non-zero biases, so that the bias blocks matter."""
    p = init_mingru(key, input_size, hidden, candidate=candidate, dtype=dtype)
    return p.replace(b_x=jax.random.normal(jax.random.fold_in(key, 1), (2 * hidden,), dtype))


@functools.cache
def _data():
    kx, kh = jax.random.split(jax.random.key(1))
    xs = jax.random.normal(kx, (B, T, I), jnp.float64)
    h0 = jax.random.normal(kh, (B, H), jnp.float64)
    return xs, h0


@pytest.fixture(scope="module")
def data():
    return _data()


@functools.partial(jax.jit, static_argnames=("mode", "reverse"))
def run(params, xs, h0, lengths, resets=None, *, mode, reverse=False):
    return mingru(
        params,
        xs,
        h0,
        seq_lengths=lengths,
        resets=resets,
        reverse=reverse,
        mode=mode,
        chunk_size=CHUNK,
    )


together = Together()
VALUE_GRID = [(mode, candidate) for candidate in ("linear", "g") for mode in MODES]


def _value_inputs(candidate):
    """``(params, [(xs, h0, lengths, resets)])``: without lengths or h0, with both, and with
    resets too."""
    xs, h0 = _data()
    params = random_params(jax.random.key(0), candidate)
    return params, [(xs, None, None, None), (xs, h0, LENGTHS, None), (xs, h0, LENGTHS, RESETS)]


@functools.cache
def _mingru_call(mode, reverse):
    """``run`` with its options bound (one object per choice, for ``run_together``)."""
    return functools.partial(run.__wrapped__, mode=mode, reverse=reverse)


@together.cases("values", [(False, *case) for case in VALUE_GRID])
@together.cases("values", [(True, mode, "g") for mode in MODES])
def _value_calls(reverse, mode, candidate):
    params, inputs = _value_inputs(candidate)
    return {k: (_mingru_call(mode, reverse), (params, *args)) for k, args in enumerate(inputs)}


@pytest.mark.parametrize(("mode", "candidate"), VALUE_GRID)
def test_values_match_numpy_reference(mode, candidate):
    """float64; float32 against the same reference is in the mode-agreement test below."""
    params, inputs = _value_inputs(candidate)
    out = together("values", False, mode, candidate)
    dtype, tol = jnp.float64, 1e-12
    for k, (xs, h, lengths, resets) in enumerate(inputs):
        ys, h_last = out[k]
        assert ys.dtype == dtype and h_last.dtype == dtype
        ys_ref, h_ref = np_mingru(params.w_x, params.b_x, candidate, xs, h, lengths, resets)
        np.testing.assert_allclose(ys, ys_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(h_last, h_ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", MODES)
def test_reverse_matches_numpy_reference(mode):
    """``reverse=True`` runs each valid prefix backward (h0 enters at the last valid step, the
    padding stays zeros, a segment runs backward from its own last step), like gru's."""
    params, inputs = _value_inputs("g")
    out = together("values", True, mode, "g")
    for k, (xs, h, lengths, resets) in enumerate(inputs):
        ys, h_last = out[k]
        ys_ref, h_ref = np_mingru(params.w_x, params.b_x, "g", xs, h, lengths, resets, True)
        np.testing.assert_allclose(ys, ys_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h_last, h_ref, rtol=1e-12, atol=1e-12)


def test_candidate_g_is_positive_and_matches_its_definition():
    v = jnp.linspace(-6.0, 6.0, 25)
    p = MinGRUParams(
        w_x=jnp.zeros((1, 50)),
        b_x=jnp.concatenate([jnp.full(25, 50.0), v]),  # z = σ(50) = 1: h' = h̃
        candidate="g",
    )
    h = mingru_cell(p, jnp.zeros((1, 25)), jnp.zeros((1, 1)))
    np.testing.assert_allclose(h[0], jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v)), rtol=1e-6)
    assert bool((h > 0).all())


# ----------------------------------------------------------------------------- modes agree

LONG_B, LONG_T, LONG_I, LONG_H = 3, 150, 4, 8
LONG_LENGTHS = jnp.array([LONG_T, 71, 0])


def _long_loss(params, xs, h0, mode):
    ys, h_last = mingru(params, xs, h0, seq_lengths=LONG_LENGTHS, mode=mode, chunk_size=16)
    return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(h_last**2), (ys, h_last)


long_value_and_grad = jax.jit(
    jax.value_and_grad(_long_loss, argnums=(0, 1, 2), has_aux=True), static_argnames="mode"
)


def test_all_modes_agree_in_float32_values_and_gradients():
    """float32, T=150, lengths (incl. 0), h0: every mode within 1e-5 of the sequential mode
    (values, h_last and the gradients for params, xs and h0), and of the float64 reference.
    (The "g" candidate's gradients are checked numerically in float64 below.)"""
    candidate = "linear"
    key = jax.random.key(2)
    params = random_params(key, candidate, jnp.float32, LONG_I, LONG_H)
    xs = jax.random.normal(jax.random.fold_in(key, 2), (LONG_B, LONG_T, LONG_I), jnp.float32)
    h0 = jax.random.normal(jax.random.fold_in(key, 3), (LONG_B, LONG_H), jnp.float32)
    results = jax.jit(lambda *a: {m: long_value_and_grad(*a, m) for m in MODES})(params, xs, h0)
    ys_ref, h_ref = np_mingru(params.w_x, params.b_x, candidate, xs, h0, LONG_LENGTHS)
    (_, (ys, h_last)), _ = results["sequential"]
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_last, h_ref, rtol=1e-5, atol=1e-5)
    base = jax.tree.leaves(results["sequential"])
    for mode in ("parallel", "chunked"):
        for a, b in zip(jax.tree.leaves(results[mode]), base, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(abs(b).max())))


def test_long_sequence_4096_modes_agree():
    key = jax.random.key(4)
    params = random_params(key, "linear", jnp.float32, 2, 4)
    xs = jax.random.normal(key, (2, 4096, 2), jnp.float32)
    h0 = jnp.ones((2, 4), jnp.float32)
    out = {m: jax.jit(functools.partial(mingru, mode=m))(params, xs, h0) for m in MODES[:2]}
    for mode in ("parallel",):  # "chunked" is an associative scan in blocks of 256: covered
        for a, b in zip(out[mode], out["sequential"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_sequential_large_blocks_agree_with_parallel():
    """A heavy projection selects the large blocks of "sequential" (T padded from 200 to 256)."""
    b, t, i, h = 2, 200, 64, 256
    assert sequential_block(b, i, h) == LARGE_BLOCK
    params = random_params(jax.random.key(15), "linear", jnp.float32, i, h)
    xs = jax.random.normal(jax.random.key(16), (b, t, i), jnp.float32)
    lengths = jnp.array([t, 130])
    f = jax.jit(mingru, static_argnames="mode")
    out = {m: f(params, xs, seq_lengths=lengths, mode=m) for m in ("sequential", "parallel")}
    for a, c in zip(out["sequential"], out["parallel"], strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("resets", [None, RESETS], ids=["no_resets", "resets_reverse"])
@pytest.mark.parametrize("mode", MODES)
def test_check_grads_float64_both_modes_of_autodiff(data, mode, resets):
    """With resets, forward mode also checks that a reset step's ``a`` has a zero tangent;
    that case runs in ``reverse`` (its permutations of the steps are differentiated too)."""
    xs, h0 = data
    params = random_params(jax.random.key(5), "g")

    @jax.jit
    def f(params, xs, h0):
        ys, h_last = run(params, xs, h0, LENGTHS, resets, mode=mode, reverse=resets is not None)
        return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(h_last**2)

    check_grads(f, (params, xs, h0), order=1, modes=("rev", "fwd"), atol=1e-6, rtol=1e-6)


def test_second_order_gradients_of_the_parallel_scan():
    """Higher orders go through the custom JVP of the associative scan."""
    a = jax.nn.sigmoid(jax.random.normal(jax.random.key(6), (5, 2), jnp.float64))
    b = jax.random.normal(jax.random.key(7), (5, 2), jnp.float64)
    f = jax.jit(lambda a, b: jnp.sum(linear_recurrence(a, b, mode="parallel") ** 3))
    check_grads(f, (a, b), order=2, modes=("rev", "fwd"), atol=1e-6, rtol=1e-6)


PADDING_GRID = [(mode, with_resets) for with_resets in (False, True) for mode in MODES]
JUNK = np.array([np.nan, np.inf, -np.inf, 1e30])[np.arange(I)]  # a non-finite value per feature


@functools.cache
def _padding_grad(mode):
    def loss(params, xs, h0, resets):
        ys, h = mingru(
            params, xs, h0, seq_lengths=LENGTHS, resets=resets, mode=mode, chunk_size=CHUNK
        )
        return jnp.sum(ys**2) + jnp.sum(h), (ys, h)

    return jax.grad(loss, argnums=(0, 1, 2), has_aux=True)


def _padding_inputs(with_resets):
    xs, h0 = _data()
    valid = (np.arange(T) < LENGTHS[:, None])[..., None]
    clean = np.where(valid, xs, 0.0)
    dirty = np.where(valid, xs, JUNK)
    resets_dirty = RESETS if with_resets else None
    resets_clean = RESETS & valid[..., 0] if with_resets else None
    params = random_params(jax.random.key(7))
    return valid, (params, clean, h0, resets_clean), (params, dirty, h0, resets_dirty)


@together.cases("padding", PADDING_GRID)
def _padding_calls(mode, with_resets):
    _, clean, dirty = _padding_inputs(with_resets)
    return {"clean": (_padding_grad(mode), clean), "dirty": (_padding_grad(mode), dirty)}


@pytest.mark.parametrize(
    ("mode", "with_resets"),
    PADDING_GRID,
    ids=[f"{m}-{'resets' if r else 'no_resets'}" for m, r in PADDING_GRID],
)
def test_padding_never_changes_values_or_gradients(mode, with_resets):
    """NaN/Inf in the padding change nothing; with resets, neither do resets in the padding
    (the clean run has them removed)."""
    valid, _, _ = _padding_inputs(with_resets)
    out = together("padding", mode, with_resets)
    g_clean, out_clean = out["clean"]
    g_dirty, out_dirty = out["dirty"]
    dirty_leaves, clean_leaves = (
        jax.tree.leaves((g_dirty, out_dirty)),
        jax.tree.leaves((g_clean, out_clean)),
    )
    for a, b in zip(dirty_leaves, clean_leaves, strict=True):
        np.testing.assert_array_equal(a, b)
    assert bool((g_dirty[1] * ~valid == 0).all())  # no gradient flows into the padding


# ----------------------------------------------------------------------------- semantics


def test_equals_python_loop_of_mingru_cell(data):
    xs, h0 = data
    params = random_params(jax.random.key(8), "g")
    ys, h_last = mingru(params, xs, h0)
    h, expected = h0, []
    for t in range(T):
        h = mingru_cell(params, h, xs[:, t])
        expected.append(h)
    np.testing.assert_allclose(ys, jnp.stack(expected, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_last, h, rtol=1e-12, atol=1e-12)


def test_batch_shapes_and_vmap(data):
    xs, h0 = data
    params = random_params(jax.random.key(9))

    def seq(p, x, h, n):
        return run(p, x, h, n, mode="sequential")

    ys, h_last = seq(params, xs, h0, LENGTHS)
    # One unbatched (T, I) sequence at a time, vmapped, equals the batched call.
    ys_v, h_v = jax.vmap(seq, in_axes=(None, 0, 0, 0))(params, xs, h0, LENGTHS)
    np.testing.assert_allclose(ys_v, ys, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_v, h_last, rtol=1e-12, atol=1e-12)
    # Several batch dims, and vmap over parameters (an ensemble of 2).
    xs4, h04 = xs.reshape(1, B, T, I), h0.reshape(1, B, H)
    ys2, h2 = seq(params, xs4, h04, LENGTHS.reshape(1, B))
    assert ys2.shape == (1, B, T, H) and h2.shape == (1, B, H)
    np.testing.assert_allclose(ys2[0], ys, rtol=1e-12, atol=1e-12)
    ensemble = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), params)
    ys_e, _ = jax.vmap(seq, in_axes=(0, None, None, None))(ensemble, xs, h0, LENGTHS)
    np.testing.assert_allclose(ys_e[0], ys, rtol=1e-12, atol=1e-12)


def test_second_call_does_not_recompile(data):
    xs, h0 = data
    params = random_params(jax.random.key(10))
    traces = []

    @jax.jit
    def f(params, xs, h0, lengths):
        traces.append(1)
        return mingru(params, xs, h0, seq_lengths=lengths)

    f(params, xs, h0, jnp.array([5, 1, 0]))
    f(params, xs + 1.0, h0 * 2.0, jnp.array([2, 4, 7]))
    assert len(traces) == 1 and f._cache_size() == 1


@pytest.mark.parametrize("mode", MODES)
def test_lengths_under_jit_are_traced_and_clamped(data, mode):
    """Documented: under jit a length above T acts as T, a negative one as 0 (also where T is
    padded to whole blocks, as in "chunked" here)."""
    xs, h0 = data
    params = random_params(jax.random.key(11))
    f = jax.jit(lambda n: mingru(params, xs, h0, seq_lengths=n, mode=mode, chunk_size=CHUNK))
    big, ref = (
        f(jnp.array([T + 3, -2, 3])),
        np_mingru(params.w_x, params.b_x, "linear", xs, h0, [T, 0, 3]),
    )
    for a, b in zip(big, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_empty_sequence_and_zero_lengths_return_h0(mode):
    params = random_params(jax.random.key(12))
    h0 = jnp.ones((B, H), jnp.float64)
    ys, h = mingru(params, jnp.zeros((B, 0, I), jnp.float64), h0, mode=mode)
    assert ys.shape == (B, 0, H)
    np.testing.assert_array_equal(h, h0)
    ys, h = mingru(params, jnp.ones((B, T, I)), h0, seq_lengths=[0, 0, 0], mode=mode)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(ys, 0.0)
    ys, h = mingru(
        params, jnp.zeros((0, B, I)), h0, resets=np.zeros((0, B), bool), time_major=True, mode=mode
    )
    assert ys.shape == (0, B, H)
    np.testing.assert_array_equal(h, h0)


@pytest.mark.parametrize(
    ("xs_dtype", "p_dtype", "h0_dtype", "out_dtype"),
    [
        (jnp.float32, jnp.float32, None, jnp.float32),
        (jnp.bfloat16, jnp.bfloat16, None, jnp.bfloat16),
        (jnp.bfloat16, jnp.bfloat16, jnp.bfloat16, jnp.bfloat16),
        (jnp.float64, jnp.float64, jnp.float64, jnp.float64),
        (jnp.bfloat16, jnp.float32, None, jnp.float32),
    ],
)
def test_dtypes_follow_promotion(xs_dtype, p_dtype, h0_dtype, out_dtype):
    # Dtypes are decided while tracing: abstract evaluation shows them (nothing compiles).
    p = jax.eval_shape(lambda key: init_mingru(key, I, H, dtype=p_dtype), jax.random.key(0))
    xs = jax.ShapeDtypeStruct((B, T, I), xs_dtype)
    h0 = None if h0_dtype is None else jax.ShapeDtypeStruct((B, H), h0_dtype)
    ys, h = jax.eval_shape(lambda p, xs, h0: mingru(p, xs, h0, mode="parallel"), p, xs, h0)
    assert ys.dtype == out_dtype and h.dtype == out_dtype
    h_cell = jax.ShapeDtypeStruct((B, H), xs_dtype)
    x_cell = jax.ShapeDtypeStruct((B, I), xs_dtype)
    assert jax.eval_shape(mingru_cell, p, h_cell, x_cell).dtype == out_dtype


def test_bfloat16_is_close_to_float32():
    p32 = random_params(jax.random.key(13), dtype=jnp.float32)
    p16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), p32)
    xs = jax.random.normal(jax.random.key(14), (B, 24, I), jnp.float32)
    f = jax.jit(mingru)
    ys32, _ = f(p32, xs)
    ys16, _ = f(p16, xs.astype(jnp.bfloat16))
    np.testing.assert_allclose(ys16.astype(jnp.float32), ys32, atol=5e-2)


def test_linear_recurrence_and_auto_mode():
    a = jnp.array([[0.5], [0.25], [1.0]])
    b = jnp.array([[1.0], [-2.0], [0.0]])
    for mode in (*MODES, "auto"):
        f = jax.jit(functools.partial(linear_recurrence, mode=mode, chunk_size=2))
        np.testing.assert_allclose(f(a, b, jnp.array([4.0]))[:, 0], [3.0, -1.25, -1.25])
    assert resolve_mode("auto", 16384, "cpu") == "sequential"
    assert resolve_mode("auto", 4096, "gpu") == "parallel"
    assert resolve_mode("auto", 8, "gpu") == "sequential"
    assert resolve_mode("chunked", 8, "cpu") == "chunked"


def test_init_mingru():
    p = init_mingru(jax.random.key(0), 64, 32, dtype=jnp.bfloat16)
    assert p.w_x.shape == (64, 64) and p.b_x.shape == (64,) and p.w_x.dtype == jnp.bfloat16
    p = init_mingru(jax.random.key(0), 64, 32)
    limit = np.sqrt(6 / (64 + 32))  # Glorot uniform per (I, H) block
    assert float(abs(p.w_x).max()) <= limit and float(abs(p.w_x).max()) > 0.9 * limit
    assert not np.allclose(p.w_x[:, :32], p.w_x[:, 32:])
    np.testing.assert_array_equal(p.b_x, 0.0)
    assert jax.tree.structure(p) == jax.tree.structure(p.replace(b_x=p.b_x + 1))
    assert jax.tree.structure(p) != jax.tree.structure(p.replace(candidate="g"))
    with pytest.raises(ValueError, match="init_mingru: hidden_size must be a positive int; got 0"):
        init_mingru(jax.random.key(0), 3, 0)
    with pytest.raises(ValueError, match=r"candidate must be one of \('linear', 'g'\); got 'log'"):
        init_mingru(jax.random.key(0), 3, 2, candidate="log")
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype; got int32"):
        init_mingru(jax.random.key(0), 3, 2, dtype=jnp.int32)


# ----------------------------------------------------------------------------- resets, time-major

# Packed rows, (B, T) = (6, 20), chunk_size 4 (edges at 4, 8, ...), and the sequential mode's
# blocks of 16 (edges at 16): the starts of every segment, with lengths.
P_B, P_T, P_I, P_H, P_CHUNK = 6, 20, 3, 4, 4
P_LENGTHS = np.array([20, 13, 20, 0, 18, 9], np.int32)
P_RESETS = np.zeros((P_B, P_T), bool)
P_RESETS[0, [0, 3, 4, 5, 11, 12]] = True  # t = 0 replaces h0; 3-5 around a chunk edge
P_RESETS[1, [1, 8, 12, 15, 17]] = True  # 12: the last valid step; 15, 17: padding
P_RESETS[2, :] = True  # every step: segments of one step
P_RESETS[3, [0, 2]] = True  # length 0: all padding
P_RESETS[4, [7, 8, 15, 16, 17]] = True  # around a chunk edge and a sequential block edge
assert sequential_block(P_B, P_I, P_H) == 16


def _segments(resets, lengths):
    """``(row, start, end, from_h0)`` of every segment of every row's valid prefix."""
    out = []
    for row, n in enumerate(int(v) for v in lengths):
        cuts = [0, *(t for t in range(1, n) if resets[row, t]), n] if n else []
        for k, (start, end) in enumerate(itertools.pairwise(cuts)):
            out.append((row, start, end, k == 0 and not resets[row, 0]))
    return out


def _segment_loss(ys, h_last):
    return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(h_last**2)


def _packed_loss(params, xs, h0, lengths, resets, mode, time_major=False):
    ys, h_last = mingru(
        params,
        xs,
        h0,
        seq_lengths=lengths,
        resets=resets,
        time_major=time_major,
        mode=mode,
        chunk_size=P_CHUNK,
    )
    return _segment_loss(ys, h_last), (ys, h_last)


def _split_loss(params, xs, h0, mode):
    """The same loss with P_RESETS' segments run separately: one sequence each, from zeros (or
    from h0 for a row's first segment without a reset at 0), as the rows of one batch without
    resets; then put back in place."""
    segs = _segments(P_RESETS, P_LENGTHS)
    seg_len = np.array([e - s for _, s, e, _ in segs], np.int32)
    longest = int(seg_len.max())
    rows = np.array([r for r, *_ in segs])
    steps = np.array([[min(s + j, e - 1) for j in range(longest)] for _, s, e, _ in segs])
    from_h0 = np.array([f for *_, f in segs])[:, None]
    h_start = jnp.where(from_h0, h0[rows], 0.0)
    ys_seg, h_seg = mingru(
        params,
        xs[rows[:, None], steps],
        h_start,
        seq_lengths=seg_len,
        mode=mode,
        chunk_size=P_CHUNK,
    )
    where = [(k, j, r, s + j) for k, (r, s, e, _) in enumerate(segs) for j in range(e - s)]
    k, j, r, t = (np.array(v) for v in zip(*where, strict=True))
    ys = jnp.zeros((P_B, P_T, P_H), ys_seg.dtype).at[r, t].set(ys_seg[k, j])
    last = np.array(
        [max((k for k, seg in enumerate(segs) if seg[0] == b), default=0) for b in range(P_B)]
    )
    h_last = jnp.where((P_LENGTHS > 0)[:, None], h_seg[last], h0)
    return _segment_loss(ys, h_last), (ys, h_last)


_packed_grad = jax.value_and_grad(_packed_loss, argnums=(0, 1, 2), has_aux=True)
_split_grad = jax.value_and_grad(_split_loss, argnums=(0, 1, 2), has_aux=True)


@functools.cache
def _packed():
    key = jax.random.key(30)
    params = random_params(key, "g", jnp.float64, P_I, P_H)
    xs = jax.random.normal(jax.random.fold_in(key, 2), (P_B, P_T, P_I), jnp.float64)
    h0 = jax.random.normal(jax.random.fold_in(key, 3), (P_B, P_H), jnp.float64)
    return params, xs, h0


@functools.cache
def _packed_call(mode, time_major=False):
    return functools.partial(_packed_grad, mode=mode, time_major=time_major)


@functools.cache
def _split_call(mode):
    return functools.partial(_split_grad, mode=mode)


@functools.cache
def _vmapped_rows(mode):
    """Unbatched (T, I) rows with resets (T,), time-major, vmapped over the rows."""
    one = functools.partial(mingru, mode=mode, chunk_size=P_CHUNK, time_major=True)
    return jax.vmap(lambda p, x, h, n, r: one(p, x, h, seq_lengths=n, resets=r), (None, 0, 0, 0, 0))


@together.cases("packed", MODES)
def _packed_calls(mode):
    params, xs, h0 = _packed()
    # A reset at t = 0 replaces h0: even a NaN/Inf there must reach no value or gradient.
    bad_h0 = h0.at[0].set(jnp.nan).at[2].set(jnp.inf)
    xs_tm = jnp.moveaxis(xs.reshape(2, 3, P_T, P_I), 2, 0)  # (T, 2, 3, I)
    resets_tm = np.moveaxis(P_RESETS.reshape(2, 3, P_T), 2, 0)
    time_major = (params, xs_tm, h0.reshape(2, 3, P_H), P_LENGTHS.reshape(2, 3), resets_tm)
    return {
        "packed": (_packed_call(mode), (params, xs, h0, P_LENGTHS, P_RESETS)),
        "bad h0": (_packed_call(mode), (params, xs, bad_h0, P_LENGTHS, P_RESETS)),
        "split": (_split_call(mode), (params, xs, h0)),
        "time-major": (_packed_call(mode, True), time_major),
        "rows": (_vmapped_rows(mode), (params, xs, h0, P_LENGTHS, P_RESETS)),
    }


@pytest.mark.parametrize("mode", MODES)
def test_packed_row_equals_its_segments_run_separately(mode):
    """Values, h_last and the gradients for params, xs and h0, float64, to 1e-9; the values
    also against the NumPy reference."""
    params, xs, h0 = _packed()
    out = together("packed", mode)
    got, want = out["packed"], out["split"]
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    (_, (ys, h_last)), (_, g_xs, g_h0) = got
    ys_ref, h_ref = np_mingru(params.w_x, params.b_x, "g", xs, h0, P_LENGTHS, P_RESETS)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_last, h_ref, rtol=1e-12, atol=1e-12)
    # A reset at t = 0 cuts h0 off (rows 0, 2); a length of 0 passes it through (row 3).
    np.testing.assert_array_equal(np.asarray(g_h0)[[0, 2]], 0.0)
    np.testing.assert_allclose(g_h0[3], 2 * h0[3], rtol=1e-12)
    assert bool((g_xs[1, 13:] == 0).all()) and bool((g_xs[3] == 0).all())
    # A reset at t = 0 replaces h0: even a NaN/Inf there reaches no value or gradient.
    for a, b in zip(jax.tree.leaves(out["bad h0"]), jax.tree.leaves(got), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_time_major_equals_batch_major(mode):
    """(T, *B, I) with two batch dims, resets (T, *B) and lengths: values and gradients equal
    those of the batch-major call; an unbatched (T, I) row, vmapped, too."""
    out = together("packed", mode)
    (_, (ys, h_last)), (g_params, g_xs, g_h0) = out["packed"]
    (_, (ys_tm, h_tm)), (gp_tm, gx_tm, gh_tm) = out["time-major"]
    assert ys_tm.shape == (P_T, 2, 3, P_H) and h_tm.shape == (2, 3, P_H)
    tol = {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(jnp.moveaxis(ys_tm, 0, 2).reshape(ys.shape), ys, **tol)
    np.testing.assert_allclose(h_tm.reshape(h_last.shape), h_last, **tol)
    np.testing.assert_allclose(jnp.moveaxis(gx_tm, 0, 2).reshape(g_xs.shape), g_xs, **tol)
    np.testing.assert_allclose(gh_tm.reshape(g_h0.shape), g_h0, **tol)
    for a, b in zip(jax.tree.leaves(gp_tm), jax.tree.leaves(g_params), strict=True):
        np.testing.assert_allclose(a, b, **tol)
    ys_v, h_v = out["rows"]
    np.testing.assert_allclose(ys_v, ys, **tol)
    np.testing.assert_allclose(h_v, h_last, **tol)


def test_resets_none_adds_nothing_to_the_trace_and_time_major_no_transpose(data):
    """``resets=None`` is the code path without resets (no extra ops: checked against the
    previous commit's jaxprs when resets were added), and the time-major forward pass has no
    transpose at all."""
    xs, h0 = data
    params = random_params(jax.random.key(31))
    for mode in MODES:

        def trace(xs, mode=mode, **kwargs):
            fn = functools.partial(mingru, mode=mode, chunk_size=CHUNK, **kwargs)
            return str(jax.make_jaxpr(lambda x: fn(params, x, h0, seq_lengths=LENGTHS))(xs))

        plain, with_resets = trace(xs), trace(xs, resets=RESETS)
        assert trace(xs, resets=None) == plain
        assert plain.count("select_n") < with_resets.count("select_n")
        time_major = trace(jnp.swapaxes(xs, 0, 1), resets=RESETS.T, time_major=True)
        assert "transpose[" in with_resets and "transpose[" not in time_major


# ----------------------------------------------------------------------------- bad inputs

# Well-formed parameters and inputs for the bad-input cases (NumPy: nothing compiles when the
# module is collected; their values never matter, the checks look at shapes and dtypes).
P32 = MinGRUParams(w_x=np.zeros((I, 2 * H), np.float32), b_x=np.zeros(2 * H, np.float32))
XS = np.zeros((2, T, I), np.float32)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"xs": jnp.zeros((I,))},
            ValueError,
            r"mingru: xs must have shape \(T, I\) or \(\*B, T, I\) with I = 4; got \(4,\)",
        ),
        (
            {"xs": jnp.zeros((2, T, I + 1))},
            ValueError,
            r"xs must have shape .* with I = 4; got \(2, 7, 5\)",
        ),
        (
            {"xs": jnp.zeros((2, T, I), jnp.int32)},
            TypeError,
            "xs must have a floating-point dtype; got int32",
        ),
        (
            {"h0": jnp.zeros((2, H + 1))},
            ValueError,
            r"h0 must have shape \(\*B, H\) = \(2, 5\); got \(2, 6\)",
        ),
        (
            {"h0": jnp.zeros((H,))},
            ValueError,
            r"h0 must have shape \(\*B, H\) = \(2, 5\); got \(5,\)",
        ),
        (
            {"h0": jnp.zeros((2, H), jnp.int32)},
            TypeError,
            "h0 must have a floating-point dtype; got int32",
        ),
        (
            {"seq_lengths": jnp.array([1, 2, 3])},
            ValueError,
            r"seq_lengths must have the batch shape of xs, \(2,\); got \(3,\)",
        ),
        (
            {"seq_lengths": jnp.array([1.0, 2.0])},
            TypeError,
            "seq_lengths must have an integer dtype; got float",
        ),
        (
            {"seq_lengths": np.array([1, T + 1])},
            ValueError,
            r"seq_lengths must lie in \[0, T\] = \[0, 7\]; got values in \[1, 8\]",
        ),
        (
            {"mode": "log"},
            ValueError,
            r"mingru: mode must be one of \('auto', 'sequential', 'parallel', 'chunked'\); got 'log'",
        ),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int; got 0"),
        (
            {"resets": jnp.zeros((2, T - 1), bool)},
            ValueError,
            r"mingru: resets must have shape \(\*B, T\) = \(2, 7\); got \(2, 6\)",
        ),
        (
            {"resets": jnp.zeros((T, 2), bool)},
            ValueError,
            r"mingru: resets must have shape \(\*B, T\) = \(2, 7\); got \(7, 2\)",
        ),
        (
            {"resets": jnp.zeros((T, 2), bool), "time_major": True},  # xs read as (T=2, B=7)
            ValueError,
            r"mingru: resets must have shape \(T, \*B\) = \(2, 7\); got \(7, 2\)",
        ),
        (
            {"resets": jnp.zeros((2, T), jnp.int32)},
            TypeError,
            "mingru: resets must have dtype bool; got int32",
        ),
        ({"resets": [[0, 1] * 3 + [0]] * 2}, TypeError, "mingru: resets must have dtype bool"),
        ({"time_major": 1}, TypeError, "mingru: time_major must be a bool; got int"),
        ({"params": {"w_x": 1}}, TypeError, "params must be a MinGRUParams; got dict"),
        (
            {"params": P32.replace(w_x=jnp.zeros((I, 9)))},
            ValueError,
            r"params.w_x must have shape \(I, 2H\); got \(4, 9\)",
        ),
        (
            {"params": P32.replace(b_x=jnp.zeros(3))},
            ValueError,
            r"params.b_x must have shape \(2H,\) = \(10,\); got \(3,\)",
        ),
        ({"params": P32.replace(candidate="exp")}, ValueError, "candidate must be one of"),
    ],
)
def test_bad_inputs_raise_at_trace_time(kwargs, error, match):
    args = {"params": P32, "xs": XS} | kwargs
    params, xs = args.pop("params"), args.pop("xs")
    h0 = args.pop("h0", None)
    with pytest.raises(error, match=match):
        mingru(params, xs, h0, **args)
    if "seq_lengths" not in kwargs or error is TypeError or "batch shape" in match:
        traced = jax.jit(lambda p, x, h: mingru(p, x, h, **args))
        with pytest.raises(error, match=match):
            traced.trace(params, xs, h0)


def test_traced_bad_resets_raise_at_trace_time():
    f = jax.jit(lambda r: mingru(P32, XS, resets=r))
    with pytest.raises(TypeError, match="mingru: resets must have dtype bool; got int32"):
        f.trace(jnp.zeros((2, T), jnp.int32))
    with pytest.raises(
        ValueError, match=r"resets must have shape \(\*B, T\) = \(2, 7\); got \(2,\)"
    ):
        f.trace(jnp.zeros((2,), bool))
    f.trace(jnp.zeros((2, T), bool))  # fine


def test_cell_bad_inputs():
    with pytest.raises(ValueError, match=r"mingru_cell: x must have shape \(\*B, I\) with I = 4"):
        mingru_cell(P32, jnp.zeros((2, H)), jnp.zeros((2, I + 1)))
    with pytest.raises(ValueError, match=r"mingru_cell: h must have shape .* = \(2, 5\); got"):
        mingru_cell(P32, jnp.zeros((3, H)), jnp.zeros((2, I)))


# ----------------------------------------------------------------------------- Flax wrappers


@pytest.fixture(scope="module")
def xs32():
    return jax.random.normal(jax.random.key(20), (B, T, I), jnp.float32)


@pytest.mark.parametrize("candidate", ["linear", "g"])
def test_linen_mingru_equals_pure_function_and_shares_tree_with_cell(candidate, xs32):
    layer = gru_jax.linen.MinGRU(H, candidate=candidate, mode="parallel", return_carry=True)
    variables = randomize(layer.init(jax.random.key(0), xs32), jax.random.key(1))
    assert jax.tree.map(jnp.shape, variables["params"]) == {"w_x": (I, 2 * H), "b_x": (2 * H,)}
    params = MinGRUParams(**variables["params"], candidate=candidate)
    h0 = 0.3 * jnp.ones((B, H), jnp.float32)
    ys, h_last = layer.apply(variables, xs32, seq_lengths=LENGTHS, initial_carry=h0)
    ys_ref, h_ref = mingru(params, xs32, h0, seq_lengths=LENGTHS, mode="parallel")
    np.testing.assert_array_equal(ys, ys_ref)
    np.testing.assert_array_equal(h_last, h_ref)
    only_ys = gru_jax.linen.MinGRU(H, candidate=candidate)
    np.testing.assert_allclose(only_ys.apply(variables, xs32), mingru(params, xs32)[0], atol=1e-6)

    # The cell in nn.RNN, on the very same parameter tree.
    rnn = nn.RNN(gru_jax.linen.MinGRUCell(H, candidate=candidate), return_carry=True)
    carry, ys_cell = rnn.apply(
        {"params": {"cell": variables["params"]}}, xs32, initial_carry=h0, seq_lengths=LENGTHS
    )
    valid = (jnp.arange(T) < LENGTHS[:, None])[..., None]
    np.testing.assert_allclose(jnp.where(valid, ys_cell, 0), ys_ref, rtol=1e-5, atol=1e-6)
    # Flax's RNN does not return h0 for a zero length (LENGTHS[2]); compare the others.
    np.testing.assert_allclose(carry[:2], h_ref[:2], rtol=1e-5, atol=1e-6)


def test_linen_dtypes_jit_and_errors(xs32):
    layer = gru_jax.linen.MinGRU(H, dtype=jnp.bfloat16)
    variables = layer.init(jax.random.key(0), xs32)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
    assert jax.jit(layer.apply)(variables, xs32).dtype == jnp.bfloat16
    cell = gru_jax.linen.MinGRUCell(H)
    carry = cell.initialize_carry(jax.random.key(0), (B, I))
    assert carry.shape == (B, H) and cell.num_feature_axes == 1
    variables = gru_jax.linen.MinGRU(H).init(jax.random.key(0), xs32)
    with pytest.raises(ValueError, match=r"MinGRU: inputs must have I = 4 features .*; got 3"):
        gru_jax.linen.MinGRU(H).apply(variables, jnp.ones((B, T, 3)))
    with pytest.raises(ValueError, match=r"MinGRU: xs must have shape \(T, I\) or \(\*B, T, I\)"):
        gru_jax.linen.MinGRU(H).apply(variables, jnp.ones((I,)))
    with pytest.raises(ValueError, match=r"mingru: h0 must have shape \(\*B, H\) = \(3, 5\)"):
        gru_jax.linen.MinGRU(H).apply(variables, xs32, initial_carry=jnp.zeros((1, B, H)))
    with pytest.raises(ValueError, match="MinGRU: candidate must be one of"):
        gru_jax.linen.MinGRU(H, candidate="x").init(jax.random.key(0), xs32)


@pytest.mark.parametrize("candidate", ["linear", "g"])
def test_nnx_mingru_equals_pure_function(candidate, xs32):
    layer = gru_jax.nnx.MinGRU(I, H, candidate=candidate, return_carry=True, rngs=nnx.Rngs(0))
    params = random_params(jax.random.key(21), candidate, jnp.float32)
    layer.load_mingru_params(params)
    tree = nnx.to_pure_dict(nnx.state(layer, nnx.Param))
    assert jax.tree.map(jnp.shape, tree) == {"w_x": (I, 2 * H), "b_x": (2 * H,)}
    np.testing.assert_array_equal(layer.mingru_params.w_x, params.w_x)
    h0 = 0.3 * jnp.ones((B, H), jnp.float32)
    ys, h_last = nnx.jit(lambda m, x: m(x, seq_lengths=LENGTHS, initial_carry=h0))(layer, xs32)
    ys_ref, h_ref = mingru(params, xs32, h0, seq_lengths=LENGTHS)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-6, atol=1e-7)  # jit vs eager: rounding only
    np.testing.assert_allclose(h_last, h_ref, rtol=1e-6, atol=1e-7)

    cell = gru_jax.nnx.MinGRUCell(I, H, candidate=candidate, rngs=nnx.Rngs(1))
    cell.load_mingru_params(params)
    rnn = nnx.RNN(cell, return_carry=True)
    carry, ys_cell = rnn(xs32, initial_carry=h0, seq_lengths=LENGTHS)
    valid = (jnp.arange(T) < LENGTHS[:, None])[..., None]
    np.testing.assert_allclose(jnp.where(valid, ys_cell, 0), ys_ref, rtol=1e-5, atol=1e-6)
    # Flax's RNN does not return h0 for a zero length (LENGTHS[2]); compare the others.
    np.testing.assert_allclose(carry[:2], h_ref[:2], rtol=1e-5, atol=1e-6)
    assert cell.initialize_carry((B, I)).shape == (B, H)


def test_nnx_errors_and_dtype(xs32):
    layer = gru_jax.nnx.MinGRU(I, H, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert layer(xs32).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match=r"expected MinGRUParams with input_size=4, hidden_size=5"):
        layer.load_mingru_params(init_mingru(jax.random.key(0), I, H + 1))
    with pytest.raises(TypeError, match="params must be a MinGRUParams; got dict"):
        layer.load_mingru_params({"w_x": 1})
    with pytest.raises(ValueError, match="MinGRU: mode must be one of"):
        gru_jax.nnx.MinGRU(I, H, mode="fast", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="MinGRU: hidden_features must be a positive int; got 0"):
        gru_jax.nnx.MinGRU(I, 0, rngs=nnx.Rngs(0))


# ----------------------------------------------------------------------------- the example


def test_long_sequence_example_smoke_run(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mingru_long", ROOT / "examples/mingru_long.py")
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mingru_long", example)  # flax modules need it registered
    spec.loader.exec_module(example)
    overrides = ["seq_len=32", "batch=4", "hidden_size=4", "eval_batch=8", "eval_every=2"]
    overrides += ["max_steps=3", "mingru_budget_s=60", "gru_budget_s=60"]
    args = ["--config", str(ROOT / "configs/mingru_long.yaml"), "--out", str(tmp_path / "r.json")]
    for item in overrides:
        args += ["--set", item]
    assert example.main(args) == 0
    assert (tmp_path / "r.json").exists()
