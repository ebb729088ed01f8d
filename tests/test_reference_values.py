"""Compare ``gru_jax`` against the independent float64 NumPy reference in ``reference.py``.

All parameters carry random non-zero biases so that bias placement is exercised.
Shapes are tiny (T<=7, B<=3, I,H<=5) and jitted functions are shared module-wide so
that the number of compilations stays small.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax import GRUParams, gru, gru_cell, gru_stack, init_gru, init_gru_stack

try:
    from tests.reference import np_gru, np_gru_cell, np_gru_stack
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from reference import np_gru, np_gru_cell, np_gru_stack

B, T, D_IN, H = 3, 6, 4, 5

# Tolerances (rtol = atol) per dtype.
TOL = {
    jnp.dtype(jnp.float64): 1e-10,
    jnp.dtype(jnp.float32): 1e-5,
    jnp.dtype(jnp.bfloat16): 2e-2,
}

# Length sets for B = 3 rows; include 0 and T.
LENGTH_SETS = [
    np.array([0, 3, T], dtype=np.int32),
    np.array([T, 1, 4], dtype=np.int32),
    np.array([5, T, 0], dtype=np.int32),
    np.array([T, T, T], dtype=np.int32),
]


# ----------------------------------------------------------------------------- helpers


def to_np(a):
    """Any (JAX / NumPy, any float dtype incl. bfloat16) array -> float64 NumPy array."""
    a = jnp.asarray(a)
    if a.dtype == jnp.bfloat16:
        a = a.astype(jnp.float32)
    return np.asarray(a, dtype=np.float64)


def randomize_biases(p, seed):
    rng = np.random.default_rng(seed)
    three_h = p.b_x.shape[0]
    dtype = p.w_x.dtype
    return p.replace(
        b_x=jnp.asarray(rng.uniform(-1.0, 1.0, size=(three_h,)), dtype=dtype),
        b_h=jnp.asarray(rng.uniform(-1.0, 1.0, size=(three_h,)), dtype=dtype),
    )


def make_params(seed, input_size=D_IN, hidden_size=H, *, reset_after=False, dtype=jnp.float64):
    p = init_gru(
        jax.random.PRNGKey(seed), input_size, hidden_size, reset_after=reset_after, dtype=dtype
    )
    return randomize_biases(p, seed + 1000)


def make_stack(seed, num_layers=2, *, bidirectional=False, reset_after=False, dtype=jnp.float64):
    params = init_gru_stack(
        jax.random.PRNGKey(seed),
        D_IN,
        H,
        num_layers,
        bidirectional=bidirectional,
        reset_after=reset_after,
        dtype=dtype,
    )
    return tuple(
        tuple(randomize_biases(p, seed + 100 * li + d + 1) for d, p in enumerate(layer))
        for li, layer in enumerate(params)
    )


def np_params(p):
    return (to_np(p.w_x), to_np(p.w_h), to_np(p.b_x), to_np(p.b_h), p.reset_after)


def np_stack_params(params):
    return [[np_params(p) for p in layer] for layer in params]


def make_inputs(seed, batch=(B,), *, dtype=jnp.float64, hidden=H, leading=()):
    rng = np.random.default_rng(seed)
    xs = jnp.asarray(rng.normal(size=(*batch, T, D_IN)), dtype=dtype)
    h0 = jnp.asarray(rng.uniform(-1.0, 1.0, size=(*leading, *batch, hidden)), dtype=dtype)
    return xs, h0


def assert_close(actual, expected, dtype=jnp.float64, tol=None):
    tol = TOL[jnp.dtype(dtype)] if tol is None else tol
    np.testing.assert_allclose(to_np(actual), np.asarray(expected), rtol=tol, atol=tol)


def assert_tree_equal(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_tree_finite(a):
    for leaf in jax.tree_util.tree_leaves(a):
        assert np.all(np.isfinite(np.asarray(leaf)))


def pad_with(xs, lengths, kind):
    """Overwrite padded positions (t >= length) of xs (B, T, D_IN) with zeros or NaN/Inf."""
    out = np.array(xs, dtype=np.float64)
    junk = np.resize(np.array([np.nan, np.inf, -np.inf]), out.shape[-1])
    for b, length in enumerate(np.asarray(lengths)):
        out[b, int(length) :] = 0.0 if kind == "zero" else junk
    return jnp.asarray(out, dtype=xs.dtype)


# ------------------------------------------------------------- shared jitted functions

gru_cell_j = jax.jit(gru_cell)
gru_j = jax.jit(gru, static_argnames=("reverse", "unroll", "remat"))
gru_stack_j = jax.jit(
    gru_stack, static_argnames=("dropout_rate", "deterministic", "unroll", "remat")
)


@functools.partial(jax.jit, static_argnames=("reverse", "unroll", "remat"))
def gru_loss_grads(params, xs, h0, seq_lengths, cy, ch, reverse=False, unroll=1, remat=False):
    def loss(p, x, h):
        ys, h_last = gru(
            p, x, h, seq_lengths=seq_lengths, reverse=reverse, unroll=unroll, remat=remat
        )
        return jnp.sum(ys * cy) + jnp.sum(h_last * ch), (ys, h_last)

    (_, (ys, h_last)), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(
        params, xs, h0
    )
    return ys, h_last, grads


@jax.jit
def gru_stack_loss_grads(params, xs, h0, seq_lengths, cy, ch):
    def loss(p, x, h):
        ys, h_n = gru_stack(p, x, h, seq_lengths=seq_lengths)
        return jnp.sum(ys * cy) + jnp.sum(h_n * ch), (ys, h_n)

    (_, (ys, h_n)), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(
        params, xs, h0
    )
    return ys, h_n, grads


# ------------------------------------------------------------------------ init / structure


@pytest.mark.parametrize("reset_after", [False, True])
def test_init_gru_structure(reset_after):
    p = init_gru(jax.random.PRNGKey(0), D_IN, H, reset_after=reset_after, dtype=jnp.float64)
    assert isinstance(p, GRUParams)
    assert p.reset_after is reset_after
    assert p.w_x.shape == (D_IN, 3 * H) and p.w_h.shape == (H, 3 * H)
    assert p.b_x.shape == (3 * H,) and p.b_h.shape == (3 * H,)
    leaves = jax.tree_util.tree_leaves(p)
    assert len(leaves) == 4  # reset_after is static, not a leaf
    assert all(leaf.dtype == jnp.float64 for leaf in leaves)
    # keyword construction and replace round-trip
    q = GRUParams(w_x=p.w_x, w_h=p.w_h, b_x=p.b_x, b_h=p.b_h, reset_after=reset_after)
    assert_tree_equal(p, q)
    r = q.replace(b_x=p.b_x + 1.0)
    assert r.reset_after is reset_after
    np.testing.assert_array_equal(np.asarray(r.b_x), np.asarray(p.b_x) + 1.0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_init_gru_stack_structure(bidirectional):
    d = 2 if bidirectional else 1
    params = init_gru_stack(
        jax.random.PRNGKey(0), D_IN, H, 3, bidirectional=bidirectional, reset_after=True
    )
    assert len(params) == 3
    for li, layer in enumerate(params):
        assert len(layer) == d
        for p in layer:
            assert isinstance(p, GRUParams)
            assert p.reset_after is True
            assert p.w_x.shape == ((D_IN if li == 0 else d * H), 3 * H)
            assert p.w_h.shape == (H, 3 * H)
            assert p.w_x.dtype == jnp.float32


# -------------------------------------------------------------------------------- cell


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_gru_cell_matches_reference(reset_after, batched):
    p = make_params(1, reset_after=reset_after)
    rng = np.random.default_rng(11)
    lead = (B,) if batched else ()
    h = jnp.asarray(rng.uniform(-1, 1, size=(*lead, H)))
    x = jnp.asarray(rng.normal(size=(*lead, D_IN)))
    out = gru_cell_j(p, h, x)
    assert out.shape == (*lead, H) and out.dtype == jnp.float64
    assert_close(out, np_gru_cell(*np_params(p)[:4], to_np(h), to_np(x), reset_after))


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_cell_gate_semantics(reset_after):
    """Saturate gates through their biases and check the spec equations directly.

    Catches a flipped z convention, and b_hn inside/outside the reset product.
    """
    p = make_params(2, reset_after=reset_after)
    w_x, w_h, b_x, b_h, _ = np_params(p)
    rng = np.random.default_rng(22)
    h = rng.uniform(-1, 1, size=(B, H))
    x = rng.normal(size=(B, D_IN))
    z_blk, r_blk, n_blk = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)

    def run(z_bias, r_bias):
        bx = b_x.copy()
        bx[z_blk] = z_bias
        bx[r_blk] = r_bias
        q = p.replace(b_x=jnp.asarray(bx))
        return np.asarray(gru_cell_j(q, jnp.asarray(h), jnp.asarray(x)))

    xn = x @ w_x[:, n_blk] + b_x[n_blk]
    # z -> 0: the state is kept (z weights the candidate, not the old state)
    np.testing.assert_allclose(run(-60.0, 0.3), h, rtol=1e-12, atol=1e-12)
    # z -> 1, r -> 0: pure candidate with the hidden contribution reset
    expected = np.tanh(xn) if reset_after else np.tanh(xn + b_h[n_blk])
    np.testing.assert_allclose(run(60.0, -60.0), expected, rtol=1e-12, atol=1e-12)
    # z -> 1, r -> 1: candidate with the full hidden contribution (both variants agree)
    expected = np.tanh(xn + h @ w_h[:, n_blk] + b_h[n_blk])
    np.testing.assert_allclose(run(60.0, 60.0), expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ gru


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gru_matches_reference(reset_after, reverse, with_h0, with_lengths):
    p = make_params(3, reset_after=reset_after)
    xs, h0 = make_inputs(33)
    h0 = h0 if with_h0 else None
    lengths = LENGTH_SETS[0] if with_lengths else None
    ys, h_last = gru_j(p, xs, h0, seq_lengths=lengths, reverse=reverse)
    assert ys.shape == (B, T, H) and h_last.shape == (B, H)
    assert ys.dtype == jnp.float64 and h_last.dtype == jnp.float64
    ref_ys, ref_h = np_gru(
        *np_params(p)[:4],
        to_np(xs),
        None if h0 is None else to_np(h0),
        lengths,
        reverse,
        reset_after,
    )
    assert_close(ys, ref_ys)
    assert_close(h_last, ref_h)


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", LENGTH_SETS, ids=lambda v: "-".join(map(str, v)))
def test_gru_seq_lengths(reset_after, reverse, lengths):
    p = make_params(4, reset_after=reset_after)
    xs, h0 = make_inputs(44)
    ys, h_last = gru_j(p, xs, h0, seq_lengths=lengths, reverse=reverse)
    ref_ys, ref_h = np_gru(*np_params(p)[:4], to_np(xs), to_np(h0), lengths, reverse, reset_after)
    assert_close(ys, ref_ys)
    assert_close(h_last, ref_h)
    ys = np.asarray(ys)
    for b, length in enumerate(lengths):
        assert np.all(ys[b, length:] == 0.0)  # padded outputs are exactly zero
        if length == 0:
            np.testing.assert_array_equal(np.asarray(h_last[b]), np.asarray(h0[b]))


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_gru_unbatched(reset_after, reverse, with_h0):
    p = make_params(5, reset_after=reset_after)
    xs, h0 = make_inputs(55, batch=())
    h0 = h0 if with_h0 else None
    ys, h_last = gru_j(p, xs, h0, reverse=reverse)
    assert ys.shape == (T, H) and h_last.shape == (H,)
    ref_ys, ref_h = np_gru(
        *np_params(p)[:4],
        to_np(xs)[None],
        None if h0 is None else to_np(h0)[None],
        None,
        reverse,
        reset_after,
    )
    assert_close(ys, ref_ys[0])
    assert_close(h_last, ref_h[0])


@pytest.mark.parametrize("reverse", [False, True])
def test_gru_unbatched_scalar_length(reverse):
    """For an unbatched (T, D_IN) input, seq_lengths has shape () (= batch shape)."""
    p = make_params(6, reset_after=reverse)
    xs, h0 = make_inputs(66, batch=())
    length = np.array(4, dtype=np.int32)
    ys, h_last = gru_j(p, xs, h0, seq_lengths=length, reverse=reverse)
    assert ys.shape == (T, H) and h_last.shape == (H,)
    ref_ys, ref_h = np_gru(
        *np_params(p)[:4],
        to_np(xs)[None],
        to_np(h0)[None],
        length[None],
        reverse,
        p.reset_after,
    )
    assert_close(ys, ref_ys[0])
    assert_close(h_last, ref_h[0])


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gru_extra_batch_dims(reset_after, reverse, with_lengths):
    p = make_params(7, reset_after=reset_after)
    xs, h0 = make_inputs(77, batch=(2, 3))
    lengths = np.array([[0, 3, T], [T, 1, 5]], dtype=np.int32) if with_lengths else None
    ys, h_last = gru_j(p, xs, h0, seq_lengths=lengths, reverse=reverse)
    assert ys.shape == (2, 3, T, H) and h_last.shape == (2, 3, H)
    ref_ys, ref_h = np_gru(
        *np_params(p)[:4],
        to_np(xs).reshape(6, T, D_IN),
        to_np(h0).reshape(6, H),
        None if lengths is None else lengths.reshape(6),
        reverse,
        reset_after,
    )
    assert_close(ys, ref_ys.reshape(2, 3, T, H))
    assert_close(h_last, ref_h.reshape(2, 3, H))


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "lengths",
    [np.array([4, 0, T], dtype=np.int32), np.array([1, 5, 2], dtype=np.int32)],
    ids=lambda v: "-".join(map(str, v)),
)
def test_gru_padding_invariance(reset_after, reverse, lengths):
    """NaN/Inf in padded positions must not change ys, h_last or any gradient."""
    p = make_params(8, reset_after=reset_after)
    xs, h0 = make_inputs(88)
    rng = np.random.default_rng(888)
    cy = jnp.asarray(rng.normal(size=(B, T, H)))
    ch = jnp.asarray(rng.normal(size=(B, H)))
    xs_zero = pad_with(xs, lengths, "zero")
    xs_junk = pad_with(xs, lengths, "junk")
    assert not np.all(np.isfinite(np.asarray(xs_junk)))

    ys0, h0_last, g0 = gru_loss_grads(p, xs_zero, h0, lengths, cy, ch, reverse=reverse)
    ys1, h1_last, g1 = gru_loss_grads(p, xs_junk, h0, lengths, cy, ch, reverse=reverse)
    assert_tree_finite((ys1, h1_last, g1))
    assert_tree_equal((ys0, h0_last, g0), (ys1, h1_last, g1))

    # values still agree with the reference, and padding gets zero gradient
    ref_ys, ref_h = np_gru(
        *np_params(p)[:4], to_np(xs_zero), to_np(h0), lengths, reverse, reset_after
    )
    assert_close(ys1, ref_ys)
    assert_close(h1_last, ref_h)
    g_xs = np.asarray(g1[1])
    for b, length in enumerate(lengths):
        assert np.all(g_xs[b, length:] == 0.0)
        assert np.any(g_xs[b, :length] != 0.0) or length == 0


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_reverse_semantics(reset_after):
    """reverse=True == flip the valid prefix, run forward, flip the outputs back."""
    p = make_params(9, reset_after=reset_after)
    xs, h0 = make_inputs(99)
    lengths = np.array([T, 4, 0], dtype=np.int32)
    ys_rev, h_rev = gru_j(p, xs, h0, seq_lengths=lengths, reverse=True)

    xs_np = np.asarray(xs)
    flipped = np.zeros_like(xs_np)
    for b, length in enumerate(lengths):
        flipped[b, :length] = xs_np[b, :length][::-1]
    ys_fwd, h_fwd = gru_j(p, jnp.asarray(flipped), h0, seq_lengths=lengths, reverse=False)
    ys_fwd = np.asarray(ys_fwd)
    expected = np.zeros_like(ys_fwd)
    for b, length in enumerate(lengths):
        expected[b, :length] = ys_fwd[b, :length][::-1]

    np.testing.assert_allclose(np.asarray(ys_rev), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(h_rev), np.asarray(h_fwd), rtol=1e-12, atol=1e-12)
    for b, length in enumerate(lengths):
        assert np.all(np.asarray(ys_rev)[b, length:] == 0.0)
    # Off-by-one guard: the first reverse step consumes x[L-1] from h0, so the output
    # at t = L-1 is one cell step from h0 on x[L-1].
    for b, length in enumerate(lengths):
        if length:
            one = np_gru_cell(
                *np_params(p)[:4], to_np(h0[b]), to_np(xs[b, length - 1]), reset_after
            )
            assert_close(ys_rev[b, length - 1], one)


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_gru_gradients_match_finite_differences(reset_after, reverse):
    """JAX gradients (params, xs, h0) vs central differences of the NumPy reference."""
    p = make_params(10, reset_after=reset_after)
    xs, h0 = make_inputs(1010)
    lengths = np.array([T, 0, 3], dtype=np.int32)
    rng = np.random.default_rng(10101)
    cy = rng.normal(size=(B, T, H))
    ch = rng.normal(size=(B, H))
    _, _, (g_p, g_xs, g_h0) = gru_loss_grads(
        p, xs, h0, lengths, jnp.asarray(cy), jnp.asarray(ch), reverse=reverse
    )

    base = {
        "w_x": to_np(p.w_x),
        "w_h": to_np(p.w_h),
        "b_x": to_np(p.b_x),
        "b_h": to_np(p.b_h),
        "xs": to_np(xs),
        "h0": to_np(h0),
    }

    def f(v):
        ys, h_last = np_gru(
            v["w_x"],
            v["w_h"],
            v["b_x"],
            v["b_h"],
            v["xs"],
            v["h0"],
            lengths,
            reverse,
            reset_after,
        )
        return np.sum(ys * cy) + np.sum(h_last * ch)

    eps = 1e-6
    got = {"w_x": g_p.w_x, "w_h": g_p.w_h, "b_x": g_p.b_x, "b_h": g_p.b_h, "xs": g_xs, "h0": g_h0}
    for name, value in base.items():
        num = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus = dict(base, **{name: value.copy()})
            minus = dict(base, **{name: value.copy()})
            plus[name][idx] += eps
            minus[name][idx] -= eps
            num[idx] = (f(plus) - f(minus)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(got[name]), num, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_gru_unroll_remat_consistent(reset_after, reverse):
    p = make_params(11, reset_after=reset_after)
    xs, h0 = make_inputs(1111)
    lengths = LENGTH_SETS[1]
    rng = np.random.default_rng(111)
    cy = jnp.asarray(rng.normal(size=(B, T, H)))
    ch = jnp.asarray(rng.normal(size=(B, H)))
    base = gru_loss_grads(p, xs, h0, lengths, cy, ch, reverse=reverse)
    for unroll, remat in [(3, True)]:
        other = gru_loss_grads(
            p, xs, h0, lengths, cy, ch, reverse=reverse, unroll=unroll, remat=remat
        )
        for a, b in zip(
            jax.tree_util.tree_leaves(base), jax.tree_util.tree_leaves(other), strict=True
        ):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------- gru_stack


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gru_stack_matches_reference(bidirectional, reset_after, with_h0, with_lengths):
    d = 2 if bidirectional else 1
    params = make_stack(12, 2, bidirectional=bidirectional, reset_after=reset_after)
    xs, h0 = make_inputs(1212, leading=(2 * d,))
    h0 = h0 if with_h0 else None
    lengths = LENGTH_SETS[0] if with_lengths else None
    ys, h_n = gru_stack_j(params, xs, h0, seq_lengths=lengths)
    assert ys.shape == (B, T, d * H) and h_n.shape == (2 * d, B, H)
    assert ys.dtype == jnp.float64 and h_n.dtype == jnp.float64
    ref_ys, ref_h = np_gru_stack(
        np_stack_params(params), to_np(xs), None if h0 is None else to_np(h0), lengths
    )
    assert_close(ys, ref_ys)
    assert_close(h_n, ref_h)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_stack_hn_order_and_layer_wiring(reset_after):
    """Explicit torch-order check built from single-direction ``gru`` calls."""
    params = make_stack(13, 2, bidirectional=True, reset_after=reset_after)
    xs, h0 = make_inputs(1313, leading=(4,))
    lengths = LENGTH_SETS[2]
    ys, h_n = gru_stack_j(params, xs, h0, seq_lengths=lengths)
    inp = xs
    for li in range(2):
        yf, hf = gru_j(params[li][0], inp, h0[2 * li], seq_lengths=lengths, reverse=False)
        yb, hb = gru_j(params[li][1], inp, h0[2 * li + 1], seq_lengths=lengths, reverse=True)
        assert_close(h_n[2 * li], hf)
        assert_close(h_n[2 * li + 1], hb)
        inp = jnp.concatenate([yf, yb], axis=-1)
    assert_close(ys, inp)
    assert_close(ys[..., :H], yf)  # forward features first


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gru_stack_single_layer_equals_gru(reset_after, with_lengths):
    params = make_stack(14, 1, bidirectional=False, reset_after=reset_after)
    xs, h0 = make_inputs(1414, leading=(1,))
    lengths = LENGTH_SETS[0] if with_lengths else None
    ys, h_n = gru_stack_j(params, xs, h0, seq_lengths=lengths)
    ys_g, h_g = gru_j(params[0][0], xs, h0[0], seq_lengths=lengths)
    assert ys.shape == (B, T, H) and h_n.shape == (1, B, H)
    assert_close(ys, ys_g)
    assert_close(h_n[0], h_g)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_stack_unbatched_and_extra_batch_dims(bidirectional):
    d = 2 if bidirectional else 1
    params = make_stack(15, 2, bidirectional=bidirectional, reset_after=bidirectional)
    sp = np_stack_params(params)
    # unbatched (T, D_IN)
    xs, h0 = make_inputs(1515, batch=(), leading=(2 * d,))
    ys, h_n = gru_stack_j(params, xs, h0)
    assert ys.shape == (T, d * H) and h_n.shape == (2 * d, H)
    ref_ys, ref_h = np_gru_stack(sp, to_np(xs)[None], to_np(h0)[:, None], None)
    assert_close(ys, ref_ys[0])
    assert_close(h_n, ref_h[:, 0])
    # extra batch dims (2, 3, T, D_IN) with lengths (2, 3)
    xs, h0 = make_inputs(1516, batch=(2, 3), leading=(2 * d,))
    lengths = np.array([[0, 3, T], [T, 1, 5]], dtype=np.int32)
    ys, h_n = gru_stack_j(params, xs, h0, seq_lengths=lengths)
    assert ys.shape == (2, 3, T, d * H) and h_n.shape == (2 * d, 2, 3, H)
    ref_ys, ref_h = np_gru_stack(
        sp, to_np(xs).reshape(6, T, D_IN), to_np(h0).reshape(2 * d, 6, H), lengths.reshape(6)
    )
    assert_close(ys, ref_ys.reshape(2, 3, T, d * H))
    assert_close(h_n, ref_h.reshape(2 * d, 2, 3, H))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_stack_padding_invariance(bidirectional):
    d = 2 if bidirectional else 1
    params = make_stack(16, 2, bidirectional=bidirectional, reset_after=not bidirectional)
    xs, h0 = make_inputs(1616, leading=(2 * d,))
    lengths = np.array([4, 0, 2], dtype=np.int32)
    rng = np.random.default_rng(161)
    cy = jnp.asarray(rng.normal(size=(B, T, d * H)))
    ch = jnp.asarray(rng.normal(size=(2 * d, B, H)))
    xs_zero = pad_with(xs, lengths, "zero")
    xs_junk = pad_with(xs, lengths, "junk")
    r0 = gru_stack_loss_grads(params, xs_zero, h0, lengths, cy, ch)
    r1 = gru_stack_loss_grads(params, xs_junk, h0, lengths, cy, ch)
    assert_tree_finite(r1)
    assert_tree_equal(r0, r1)
    ref_ys, ref_h = np_gru_stack(np_stack_params(params), to_np(xs_zero), to_np(h0), lengths)
    assert_close(r1[0], ref_ys)
    assert_close(r1[1], ref_h)


def test_gru_stack_dropout():
    params = make_stack(17, 2, bidirectional=True)
    xs, h0 = make_inputs(1717, leading=(4,))
    # deterministic=True: dropout is a no-op, values equal the reference
    ref_ys, ref_h = np_gru_stack(np_stack_params(params), to_np(xs), to_np(h0), None)
    for key in (None, jax.random.PRNGKey(0)):
        ys, h_n = gru_stack_j(params, xs, h0, dropout_rate=0.5, deterministic=True, key=key)
        assert_close(ys, ref_ys)
        assert_close(h_n, ref_h)
    # deterministic=False with a key: something changes, shapes/dtypes stay
    ys_d, h_d = gru_stack_j(
        params, xs, h0, dropout_rate=0.5, deterministic=False, key=jax.random.PRNGKey(0)
    )
    assert ys_d.shape == ys.shape and h_d.shape == h_n.shape
    assert ys_d.dtype == ys.dtype and h_d.dtype == h_n.dtype
    assert_tree_finite((ys_d, h_d))
    assert not np.allclose(np.asarray(ys_d), np.asarray(ys))


# ------------------------------------------------------------------------------ dtypes

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: jnp.dtype(t).name)
@pytest.mark.parametrize("with_h0", [False, True])
def test_gru_dtype_preserved(dtype, with_h0):
    reset_after = with_h0
    p = make_params(18, reset_after=reset_after, dtype=dtype)
    assert all(leaf.dtype == dtype for leaf in jax.tree_util.tree_leaves(p))
    xs, h0 = make_inputs(1818, dtype=dtype)
    h0 = h0 if with_h0 else None
    lengths = LENGTH_SETS[0]
    for reverse in (False, True):
        ys, h_last = gru_j(p, xs, h0, seq_lengths=lengths, reverse=reverse)
        assert ys.dtype == dtype and h_last.dtype == dtype
        ref_ys, ref_h = np_gru(
            *np_params(p)[:4],
            to_np(xs),
            None if h0 is None else to_np(h0),
            lengths,
            reverse,
            reset_after,
        )
        assert_close(ys, ref_ys, dtype)
        assert_close(h_last, ref_h, dtype)
    h = jnp.asarray(np.random.default_rng(181).uniform(-1, 1, size=(B, H)), dtype=dtype)
    out = gru_cell_j(p, h, xs[:, 0])
    assert out.dtype == dtype
    ref = np_gru_cell(*np_params(p)[:4], to_np(h), to_np(xs[:, 0]), reset_after)
    assert_close(out, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: jnp.dtype(t).name)
@pytest.mark.parametrize("with_h0", [False, True])
def test_gru_stack_dtype_preserved(dtype, with_h0):
    params = make_stack(19, 2, bidirectional=True, reset_after=with_h0, dtype=dtype)
    assert all(leaf.dtype == dtype for leaf in jax.tree_util.tree_leaves(params))
    xs, h0 = make_inputs(1919, dtype=dtype, leading=(4,))
    h0 = h0 if with_h0 else None
    lengths = LENGTH_SETS[1]
    ys, h_n = gru_stack_j(params, xs, h0, seq_lengths=lengths)
    assert ys.dtype == dtype and h_n.dtype == dtype
    ref_ys, ref_h = np_gru_stack(
        np_stack_params(params), to_np(xs), None if h0 is None else to_np(h0), lengths
    )
    assert_close(ys, ref_ys, dtype)
    assert_close(h_n, ref_h, dtype)
