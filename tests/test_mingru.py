"""minGRU: values against an independent float64 NumPy loop, agreement of the sequential,
parallel and chunked modes (values and gradients, with lengths and h0), gradient checks,
padding invariance, transformations, dtypes, bad inputs, the Flax wrappers, and a smoke run of
examples/mingru_long.py.

Shapes are tiny and jitted functions are shared, so that the whole module stays fast.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import randomize
from jax.test_util import check_grads

import gru_jax
import gru_jax.linen
import gru_jax.nnx
from gru_jax import MinGRUParams, init_mingru, mingru, mingru_cell
from gru_jax._mingru import LARGE_BLOCK, linear_recurrence, resolve_mode, sequential_block

B, T, I, H = 3, 7, 4, 5
LENGTHS = np.array([T, 3, 0], np.int32)
MODES = ("sequential", "parallel", "chunked")
CHUNK = 3  # does not divide T: the chunked mode pads with identity steps
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- reference


def np_mingru(w_x, b_x, candidate, xs, h0, lengths):
    """Float64 loop of the equations, one example and one step at a time.

    z = σ(x W_z + b_z); v = x W_h + b_h; h̃ = v, or g(v) = v + 0.5 (v ≥ 0) / σ(v) (v < 0);
    h' = (1 − z) h + z h̃. Past its length an example's state is frozen and its output zero.
    """
    w_x, b_x, xs = (np.asarray(a, np.float64) for a in (w_x, b_x, xs))
    batch, steps, _ = xs.shape
    hidden = w_x.shape[1] // 2
    h0 = np.zeros((batch, hidden)) if h0 is None else np.asarray(h0, np.float64)
    lengths = [steps] * batch if lengths is None else [int(n) for n in lengths]
    ys, h_last = np.zeros((batch, steps, hidden)), np.zeros((batch, hidden))
    for b in range(batch):
        h = h0[b].copy()
        for t in range(lengths[b]):
            pre = xs[b, t] @ w_x + b_x
            z = 1.0 / (1.0 + np.exp(-pre[:hidden]))
            v = pre[hidden:]
            if candidate == "g":
                v = np.array([u + 0.5 if u >= 0 else 1.0 / (1.0 + np.exp(-u)) for u in v])
            h = (1.0 - z) * h + z * v
            ys[b, t] = h
        h_last[b] = h
    return ys, h_last


def random_params(key, candidate="linear", dtype=jnp.float64, input_size=I, hidden=H):
    """init_mingru with random non-zero biases, so that the bias blocks matter."""
    p = init_mingru(key, input_size, hidden, candidate=candidate, dtype=dtype)
    return p.replace(b_x=jax.random.normal(jax.random.fold_in(key, 1), (2 * hidden,), dtype))


@pytest.fixture(scope="module")
def data():
    kx, kh = jax.random.split(jax.random.key(1))
    xs = jax.random.normal(kx, (B, T, I), jnp.float64)
    h0 = jax.random.normal(kh, (B, H), jnp.float64)
    return xs, h0


@functools.partial(jax.jit, static_argnames=("mode",))
def run(params, xs, h0, lengths, *, mode):
    return mingru(params, xs, h0, seq_lengths=lengths, mode=mode, chunk_size=CHUNK)


@pytest.mark.parametrize("candidate", ["linear", "g"])
@pytest.mark.parametrize("mode", MODES)
def test_values_match_numpy_reference(data, mode, candidate):
    """float64; float32 against the same reference is in the mode-agreement test below."""
    xs, h0 = data
    params = random_params(jax.random.key(0), candidate)
    dtype, tol = jnp.float64, 1e-12
    for h, lengths in ((None, None), (h0, LENGTHS)):
        ys, h_last = run(params, xs, h, lengths, mode=mode)
        assert ys.dtype == dtype and h_last.dtype == dtype
        ys_ref, h_ref = np_mingru(params.w_x, params.b_x, candidate, xs, h, lengths)
        np.testing.assert_allclose(ys, ys_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(h_last, h_ref, rtol=tol, atol=tol)


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
    results = {m: long_value_and_grad(params, xs, h0, m) for m in MODES}
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


@pytest.mark.parametrize("mode", MODES)
def test_check_grads_float64_both_modes_of_autodiff(data, mode):
    xs, h0 = data
    params = random_params(jax.random.key(5), "g")

    @jax.jit
    def f(params, xs, h0):
        ys, h_last = mingru(params, xs, h0, seq_lengths=LENGTHS, mode=mode, chunk_size=CHUNK)
        return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(h_last**2)

    check_grads(f, (params, xs, h0), order=1, modes=("rev", "fwd"), atol=1e-6, rtol=1e-6)


def test_second_order_gradients_of_the_parallel_scan():
    """Higher orders go through the custom JVP of the associative scan."""
    a = jax.nn.sigmoid(jax.random.normal(jax.random.key(6), (5, 2), jnp.float64))
    b = jax.random.normal(jax.random.key(7), (5, 2), jnp.float64)
    f = jax.jit(lambda a, b: jnp.sum(linear_recurrence(a, b, mode="parallel") ** 3))
    check_grads(f, (a, b), order=2, modes=("rev", "fwd"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_padding_never_changes_values_or_gradients(data, mode):
    xs, h0 = data
    params = random_params(jax.random.key(7))
    valid = (jnp.arange(T) < LENGTHS[:, None])[..., None]
    clean = jnp.where(valid, xs, 0.0)
    dirty = jnp.where(valid, xs, jnp.array([jnp.nan, jnp.inf, -jnp.inf, 1e30])[jnp.arange(I)])

    def loss(params, xs, h0):
        ys, h = run(params, xs, h0, LENGTHS, mode=mode)
        return jnp.sum(ys**2) + jnp.sum(h), (ys, h)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))
    (g_clean, out_clean), (g_dirty, out_dirty) = grad(params, clean, h0), grad(params, dirty, h0)
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
    p = init_mingru(jax.random.key(0), I, H, dtype=p_dtype)
    xs = jnp.ones((B, T, I), xs_dtype)
    h0 = None if h0_dtype is None else jnp.zeros((B, H), h0_dtype)
    ys, h = mingru(p, xs, h0, mode="parallel")
    assert ys.dtype == out_dtype and h.dtype == out_dtype
    assert mingru_cell(p, jnp.zeros((B, H), xs_dtype), xs[:, 0]).dtype == out_dtype


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


# ----------------------------------------------------------------------------- bad inputs

P32 = init_mingru(jax.random.key(0), I, H)
XS = jnp.zeros((2, T, I), jnp.float32)


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
