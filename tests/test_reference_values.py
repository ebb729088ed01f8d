"""Compare ``gru_jax`` against the independent float64 NumPy reference in ``reference.py``.

All parameters carry random non-zero biases so that bias placement is exercised.
Shapes are tiny (T<=7, B<=3, I,H<=5), and the calls of all the parametrised cases of a kind
(forward values, gradients) are compiled together as one program (``helpers.Together``), so
that the whole module costs a few compiles.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import Together

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


# ------------------------------------------------------------- the calls, compiled together

together = Together()
BOOLS = (False, True)


@functools.cache
def _gru(reverse=False, **kw):
    def fn(p, xs, h0, lengths):
        return gru(p, xs, h0, seq_lengths=lengths, reverse=reverse, **kw)

    return fn


@functools.cache
def _stack(**kw):
    def fn(params, xs, h0, lengths):
        return gru_stack(params, xs, h0, seq_lengths=lengths, **kw)

    return fn


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


@functools.cache
def _loss_grads(**kw):
    return functools.partial(gru_loss_grads, **kw)


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

CELL_GRID = list(itertools.product(BOOLS, BOOLS))  # (reset_after, batched)


def cell_inputs(reset_after, batched):
    p = make_params(1, reset_after=reset_after)
    rng = np.random.default_rng(11)
    lead = (B,) if batched else ()
    h = jnp.asarray(rng.uniform(-1, 1, size=(*lead, H)))
    x = jnp.asarray(rng.normal(size=(*lead, D_IN)))
    return p, h, x


@together.cases("fwd", [("cell", *case) for case in CELL_GRID])
def _cell_calls(_, reset_after, batched):
    return {"out": (gru_cell, cell_inputs(reset_after, batched))}


@pytest.mark.parametrize(("reset_after", "batched"), CELL_GRID)
def test_gru_cell_matches_reference(reset_after, batched):
    p, h, x = cell_inputs(reset_after, batched)
    out = together("fwd", "cell", reset_after, batched)["out"]
    lead = (B,) if batched else ()
    assert out.shape == (*lead, H) and out.dtype == jnp.float64
    assert_close(out, np_gru_cell(*np_params(p)[:4], to_np(h), to_np(x), reset_after))


GATE_BIASES = {"keep": (-60.0, 0.3), "candidate": (60.0, -60.0), "full": (60.0, 60.0)}


def gate_inputs(reset_after):
    p = make_params(2, reset_after=reset_after)
    rng = np.random.default_rng(22)
    h = rng.uniform(-1, 1, size=(B, H))
    x = rng.normal(size=(B, D_IN))
    return p, h, x


@together.cases("fwd", [("gates", r) for r in BOOLS])
def _gate_calls(_, reset_after):
    p, h, x = gate_inputs(reset_after)
    b_x = np_params(p)[2]
    calls = {}
    for name, (z_bias, r_bias) in GATE_BIASES.items():
        bx = b_x.copy()
        bx[:H] = z_bias
        bx[H : 2 * H] = r_bias
        calls[name] = (gru_cell, (p.replace(b_x=jnp.asarray(bx)), jnp.asarray(h), jnp.asarray(x)))
    return calls


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_cell_gate_semantics(reset_after):
    """Saturate gates through their biases and check the spec equations directly.

    Catches a flipped z convention, and b_hn inside/outside the reset product.
    """
    p, h, x = gate_inputs(reset_after)
    w_x, w_h, b_x, b_h, _ = np_params(p)
    n_blk = slice(2 * H, 3 * H)
    run = {k: np.asarray(v) for k, v in together("fwd", "gates", reset_after).items()}

    xn = x @ w_x[:, n_blk] + b_x[n_blk]
    # z -> 0: the state is kept (z weights the candidate, not the old state)
    np.testing.assert_allclose(run["keep"], h, rtol=1e-12, atol=1e-12)
    # z -> 1, r -> 0: pure candidate with the hidden contribution reset
    expected = np.tanh(xn) if reset_after else np.tanh(xn + b_h[n_blk])
    np.testing.assert_allclose(run["candidate"], expected, rtol=1e-12, atol=1e-12)
    # z -> 1, r -> 1: candidate with the full hidden contribution (both variants agree)
    expected = np.tanh(xn + h @ w_h[:, n_blk] + b_h[n_blk])
    np.testing.assert_allclose(run["full"], expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ gru

MATCH_GRID = list(
    itertools.product(BOOLS, BOOLS, BOOLS, BOOLS)
)  # reset_after, reverse, h0, lengths


def match_inputs(reset_after, with_h0, with_lengths):
    p = make_params(3, reset_after=reset_after)
    xs, h0 = make_inputs(33)
    return p, xs, h0 if with_h0 else None, LENGTH_SETS[0] if with_lengths else None


@together.cases("fwd", [("match", *case) for case in MATCH_GRID])
def _match_calls(_, reset_after, reverse, with_h0, with_lengths):
    return {"out": (_gru(reverse), match_inputs(reset_after, with_h0, with_lengths))}


@pytest.mark.parametrize(("reset_after", "reverse", "with_h0", "with_lengths"), MATCH_GRID)
def test_gru_matches_reference(reset_after, reverse, with_h0, with_lengths):
    p, xs, h0, lengths = match_inputs(reset_after, with_h0, with_lengths)
    ys, h_last = together("fwd", "match", reset_after, reverse, with_h0, with_lengths)["out"]
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


LENGTHS_GRID = list(itertools.product(BOOLS, BOOLS, range(len(LENGTH_SETS))))


def lengths_inputs(reset_after, k):
    p = make_params(4, reset_after=reset_after)
    xs, h0 = make_inputs(44)
    return p, xs, h0, LENGTH_SETS[k]


@together.cases("fwd", [("lengths", *case) for case in LENGTHS_GRID])
def _lengths_calls(_, reset_after, reverse, k):
    return {"out": (_gru(reverse), lengths_inputs(reset_after, k))}


@pytest.mark.parametrize(
    ("reset_after", "reverse", "k"),
    LENGTHS_GRID,
    ids=["-".join(map(str, [int(r), int(v), *LENGTH_SETS[k]])) for r, v, k in LENGTHS_GRID],
)
def test_gru_seq_lengths(reset_after, reverse, k):
    p, xs, h0, lengths = lengths_inputs(reset_after, k)
    ys, h_last = together("fwd", "lengths", reset_after, reverse, k)["out"]
    ref_ys, ref_h = np_gru(*np_params(p)[:4], to_np(xs), to_np(h0), lengths, reverse, reset_after)
    assert_close(ys, ref_ys)
    assert_close(h_last, ref_h)
    ys = np.asarray(ys)
    for b, length in enumerate(lengths):
        assert np.all(ys[b, length:] == 0.0)  # padded outputs are exactly zero
        if length == 0:
            np.testing.assert_array_equal(np.asarray(h_last[b]), np.asarray(h0[b]))


UNBATCHED_GRID = list(itertools.product(BOOLS, BOOLS, BOOLS))  # reset_after, reverse, with_h0


def unbatched_inputs(reset_after, with_h0):
    p = make_params(5, reset_after=reset_after)
    xs, h0 = make_inputs(55, batch=())
    return p, xs, h0 if with_h0 else None, None


@together.cases("fwd", [("unbatched", *case) for case in UNBATCHED_GRID])
def _unbatched_calls(_, reset_after, reverse, with_h0):
    return {"out": (_gru(reverse), unbatched_inputs(reset_after, with_h0))}


@pytest.mark.parametrize(("reset_after", "reverse", "with_h0"), UNBATCHED_GRID)
def test_gru_unbatched(reset_after, reverse, with_h0):
    p, xs, h0, _ = unbatched_inputs(reset_after, with_h0)
    ys, h_last = together("fwd", "unbatched", reset_after, reverse, with_h0)["out"]
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


def scalar_length_inputs(reverse):
    p = make_params(6, reset_after=reverse)
    xs, h0 = make_inputs(66, batch=())
    return p, xs, h0, np.array(4, dtype=np.int32)


@together.cases("fwd", [("scalar", r) for r in BOOLS])
def _scalar_length_calls(_, reverse):
    return {"out": (_gru(reverse), scalar_length_inputs(reverse))}


@pytest.mark.parametrize("reverse", [False, True])
def test_gru_unbatched_scalar_length(reverse):
    """For an unbatched (T, D_IN) input, seq_lengths has shape () (= batch shape)."""
    p, xs, h0, length = scalar_length_inputs(reverse)
    ys, h_last = together("fwd", "scalar", reverse)["out"]
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


EXTRA_GRID = list(itertools.product(BOOLS, BOOLS, BOOLS))  # reset_after, reverse, with_lengths


def extra_dims_inputs(reset_after, with_lengths):
    p = make_params(7, reset_after=reset_after)
    xs, h0 = make_inputs(77, batch=(2, 3))
    lengths = np.array([[0, 3, T], [T, 1, 5]], dtype=np.int32) if with_lengths else None
    return p, xs, h0, lengths


@together.cases("fwd", [("extra", *case) for case in EXTRA_GRID])
def _extra_dims_calls(_, reset_after, reverse, with_lengths):
    return {"out": (_gru(reverse), extra_dims_inputs(reset_after, with_lengths))}


@pytest.mark.parametrize(("reset_after", "reverse", "with_lengths"), EXTRA_GRID)
def test_gru_extra_batch_dims(reset_after, reverse, with_lengths):
    p, xs, h0, lengths = extra_dims_inputs(reset_after, with_lengths)
    ys, h_last = together("fwd", "extra", reset_after, reverse, with_lengths)["out"]
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


PADDING_LENGTHS = [np.array([4, 0, T], dtype=np.int32), np.array([1, 5, 2], dtype=np.int32)]
PADDING_GRID = list(itertools.product(BOOLS, BOOLS, range(len(PADDING_LENGTHS))))


def padding_inputs(reset_after, k):
    p = make_params(8, reset_after=reset_after)
    xs, h0 = make_inputs(88)
    rng = np.random.default_rng(888)
    cy = jnp.asarray(rng.normal(size=(B, T, H)))
    ch = jnp.asarray(rng.normal(size=(B, H)))
    return p, xs, h0, PADDING_LENGTHS[k], cy, ch


@together.cases("grad", [("padding", *case) for case in PADDING_GRID])
def _padding_calls(_, reset_after, reverse, k):
    p, xs, h0, lengths, cy, ch = padding_inputs(reset_after, k)
    fn = _loss_grads(reverse=reverse)
    return {
        kind: (fn, (p, pad_with(xs, lengths, kind), h0, lengths, cy, ch))
        for kind in ("zero", "junk")
    }


@pytest.mark.parametrize(
    ("reset_after", "reverse", "k"),
    PADDING_GRID,
    ids=["-".join(map(str, [int(r), int(v), *PADDING_LENGTHS[k]])) for r, v, k in PADDING_GRID],
)
def test_gru_padding_invariance(reset_after, reverse, k):
    """NaN/Inf in padded positions must not change ys, h_last or any gradient."""
    p, xs, h0, lengths, _, _ = padding_inputs(reset_after, k)
    xs_zero = pad_with(xs, lengths, "zero")
    assert not np.all(np.isfinite(np.asarray(pad_with(xs, lengths, "junk"))))
    out = together("grad", "padding", reset_after, reverse, k)
    ys0, h0_last, g0 = out["zero"]
    ys1, h1_last, g1 = out["junk"]
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


REVERSE_LENGTHS = np.array([T, 4, 0], dtype=np.int32)


def reverse_inputs(reset_after):
    p = make_params(9, reset_after=reset_after)
    xs, h0 = make_inputs(99)
    xs_np = np.asarray(xs)
    flipped = np.zeros_like(xs_np)
    for b, length in enumerate(REVERSE_LENGTHS):
        flipped[b, :length] = xs_np[b, :length][::-1]
    return p, xs, h0, jnp.asarray(flipped)


@together.cases("fwd", [("reverse", r) for r in BOOLS])
def _reverse_calls(_, reset_after):
    p, xs, h0, flipped = reverse_inputs(reset_after)
    return {
        "reverse": (_gru(True), (p, xs, h0, REVERSE_LENGTHS)),
        "forward": (_gru(False), (p, flipped, h0, REVERSE_LENGTHS)),
    }


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_reverse_semantics(reset_after):
    """reverse=True == flip the valid prefix, run forward, flip the outputs back."""
    p, xs, h0, _ = reverse_inputs(reset_after)
    lengths = REVERSE_LENGTHS
    out = together("fwd", "reverse", reset_after)
    ys_rev, h_rev = out["reverse"]
    ys_fwd, h_fwd = out["forward"]
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


FD_GRID = list(itertools.product(BOOLS, BOOLS))  # reset_after, reverse
FD_LENGTHS = np.array([T, 0, 3], dtype=np.int32)


def fd_inputs(reset_after):
    p = make_params(10, reset_after=reset_after)
    xs, h0 = make_inputs(1010)
    rng = np.random.default_rng(10101)
    return p, xs, h0, rng.normal(size=(B, T, H)), rng.normal(size=(B, H))


@together.cases("grad", [("fd", *case) for case in FD_GRID])
def _fd_calls(_, reset_after, reverse):
    p, xs, h0, cy, ch = fd_inputs(reset_after)
    args = (p, xs, h0, FD_LENGTHS, jnp.asarray(cy), jnp.asarray(ch))
    return {"out": (_loss_grads(reverse=reverse), args)}


@pytest.mark.parametrize(("reset_after", "reverse"), FD_GRID)
def test_gru_gradients_match_finite_differences(reset_after, reverse):
    """JAX gradients (params, xs, h0) vs central differences of the NumPy reference."""
    p, xs, h0, cy, ch = fd_inputs(reset_after)
    lengths = FD_LENGTHS
    _, _, (g_p, g_xs, g_h0) = together("grad", "fd", reset_after, reverse)["out"]

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


def unroll_inputs(reset_after):
    p = make_params(11, reset_after=reset_after)
    xs, h0 = make_inputs(1111)
    rng = np.random.default_rng(111)
    cy = jnp.asarray(rng.normal(size=(B, T, H)))
    ch = jnp.asarray(rng.normal(size=(B, H)))
    return p, xs, h0, LENGTH_SETS[1], cy, ch


@together.cases("grad", [("unroll", *case) for case in FD_GRID])
def _unroll_calls(_, reset_after, reverse):
    args = unroll_inputs(reset_after)
    return {
        "base": (_loss_grads(reverse=reverse), args),
        "other": (_loss_grads(reverse=reverse, unroll=3, remat=True), args),
    }


@pytest.mark.parametrize(("reset_after", "reverse"), FD_GRID)
def test_gru_unroll_remat_consistent(reset_after, reverse):
    out = together("grad", "unroll", reset_after, reverse)
    for a, b in zip(
        jax.tree_util.tree_leaves(out["base"]), jax.tree_util.tree_leaves(out["other"]), strict=True
    ):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------- gru_stack

STACK_GRID = list(itertools.product(BOOLS, BOOLS, BOOLS, BOOLS))  # bi, reset_after, h0, lengths


def stack_inputs(bidirectional, reset_after, with_h0, with_lengths):
    d = 2 if bidirectional else 1
    params = make_stack(12, 2, bidirectional=bidirectional, reset_after=reset_after)
    xs, h0 = make_inputs(1212, leading=(2 * d,))
    return params, xs, h0 if with_h0 else None, LENGTH_SETS[0] if with_lengths else None


@together.cases("stack", [("match", *case) for case in STACK_GRID])
def _stack_match_calls(_, *case):
    return {"out": (_stack(), stack_inputs(*case))}


@pytest.mark.parametrize(("bidirectional", "reset_after", "with_h0", "with_lengths"), STACK_GRID)
def test_gru_stack_matches_reference(bidirectional, reset_after, with_h0, with_lengths):
    d = 2 if bidirectional else 1
    params, xs, h0, lengths = stack_inputs(bidirectional, reset_after, with_h0, with_lengths)
    ys, h_n = together("stack", "match", bidirectional, reset_after, with_h0, with_lengths)["out"]
    assert ys.shape == (B, T, d * H) and h_n.shape == (2 * d, B, H)
    assert ys.dtype == jnp.float64 and h_n.dtype == jnp.float64
    ref_ys, ref_h = np_gru_stack(
        np_stack_params(params), to_np(xs), None if h0 is None else to_np(h0), lengths
    )
    assert_close(ys, ref_ys)
    assert_close(h_n, ref_h)


def _wiring(params, xs, h0, lengths):
    """The stack, and its layers rebuilt from single-direction ``gru`` calls."""
    ys, h_n = gru_stack(params, xs, h0, seq_lengths=lengths)
    inp, layers = xs, []
    for li in range(2):
        yf, hf = gru(params[li][0], inp, h0[2 * li], seq_lengths=lengths, reverse=False)
        yb, hb = gru(params[li][1], inp, h0[2 * li + 1], seq_lengths=lengths, reverse=True)
        layers.append((hf, hb))
        inp = jnp.concatenate([yf, yb], axis=-1)
    return ys, h_n, layers, inp, yf


@together.cases("stack", [("wiring", r) for r in BOOLS])
def _wiring_calls(_, reset_after):
    params = make_stack(13, 2, bidirectional=True, reset_after=reset_after)
    xs, h0 = make_inputs(1313, leading=(4,))
    return {"out": (_wiring, (params, xs, h0, LENGTH_SETS[2]))}


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_stack_hn_order_and_layer_wiring(reset_after):
    """Explicit torch-order check built from single-direction ``gru`` calls."""
    ys, h_n, layers, inp, yf = together("stack", "wiring", reset_after)["out"]
    for li, (hf, hb) in enumerate(layers):
        assert_close(h_n[2 * li], hf)
        assert_close(h_n[2 * li + 1], hb)
    assert_close(ys, inp)
    assert_close(ys[..., :H], yf)  # forward features first


SINGLE_GRID = list(itertools.product(BOOLS, BOOLS))  # reset_after, with_lengths


def _single(params, xs, h0, lengths):
    return gru_stack(params, xs, h0, seq_lengths=lengths), gru(
        params[0][0], xs, h0[0], seq_lengths=lengths
    )


@together.cases("stack", [("single", *case) for case in SINGLE_GRID])
def _single_calls(_, reset_after, with_lengths):
    params = make_stack(14, 1, bidirectional=False, reset_after=reset_after)
    xs, h0 = make_inputs(1414, leading=(1,))
    return {"out": (_single, (params, xs, h0, LENGTH_SETS[0] if with_lengths else None))}


@pytest.mark.parametrize(("reset_after", "with_lengths"), SINGLE_GRID)
def test_gru_stack_single_layer_equals_gru(reset_after, with_lengths):
    (ys, h_n), (ys_g, h_g) = together("stack", "single", reset_after, with_lengths)["out"]
    assert ys.shape == (B, T, H) and h_n.shape == (1, B, H)
    assert_close(ys, ys_g)
    assert_close(h_n[0], h_g)


EXTRA_LENGTHS = np.array([[0, 3, T], [T, 1, 5]], dtype=np.int32)


def stack_dims_inputs(bidirectional):
    d = 2 if bidirectional else 1
    params = make_stack(15, 2, bidirectional=bidirectional, reset_after=bidirectional)
    return (
        params,
        make_inputs(1515, batch=(), leading=(2 * d,)),
        make_inputs(1516, batch=(2, 3), leading=(2 * d,)),
    )


@together.cases("stack", [("dims", b) for b in BOOLS])
def _stack_dims_calls(_, bidirectional):
    params, (xs, h0), (xs6, h06) = stack_dims_inputs(bidirectional)
    return {
        "unbatched": (_stack(), (params, xs, h0, None)),
        "extra": (_stack(), (params, xs6, h06, EXTRA_LENGTHS)),
    }


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_stack_unbatched_and_extra_batch_dims(bidirectional):
    d = 2 if bidirectional else 1
    params, (xs, h0), (xs6, h06) = stack_dims_inputs(bidirectional)
    sp = np_stack_params(params)
    out = together("stack", "dims", bidirectional)
    # unbatched (T, D_IN)
    ys, h_n = out["unbatched"]
    assert ys.shape == (T, d * H) and h_n.shape == (2 * d, H)
    ref_ys, ref_h = np_gru_stack(sp, to_np(xs)[None], to_np(h0)[:, None], None)
    assert_close(ys, ref_ys[0])
    assert_close(h_n, ref_h[:, 0])
    # extra batch dims (2, 3, T, D_IN) with lengths (2, 3)
    ys, h_n = out["extra"]
    assert ys.shape == (2, 3, T, d * H) and h_n.shape == (2 * d, 2, 3, H)
    ref_ys, ref_h = np_gru_stack(
        sp,
        to_np(xs6).reshape(6, T, D_IN),
        to_np(h06).reshape(2 * d, 6, H),
        EXTRA_LENGTHS.reshape(6),
    )
    assert_close(ys, ref_ys.reshape(2, 3, T, d * H))
    assert_close(h_n, ref_h.reshape(2 * d, 2, 3, H))


STACK_PADDING_LENGTHS = np.array([4, 0, 2], dtype=np.int32)


def stack_padding_inputs(bidirectional):
    d = 2 if bidirectional else 1
    params = make_stack(16, 2, bidirectional=bidirectional, reset_after=not bidirectional)
    xs, h0 = make_inputs(1616, leading=(2 * d,))
    rng = np.random.default_rng(161)
    cy = jnp.asarray(rng.normal(size=(B, T, d * H)))
    ch = jnp.asarray(rng.normal(size=(2 * d, B, H)))
    return params, xs, h0, cy, ch


@together.cases("grad", [("stack_padding", b) for b in BOOLS])
def _stack_padding_calls(_, bidirectional):
    params, xs, h0, cy, ch = stack_padding_inputs(bidirectional)
    lengths = STACK_PADDING_LENGTHS
    return {
        kind: (gru_stack_loss_grads, (params, pad_with(xs, lengths, kind), h0, lengths, cy, ch))
        for kind in ("zero", "junk")
    }


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gru_stack_padding_invariance(bidirectional):
    params, xs, h0, _, _ = stack_padding_inputs(bidirectional)
    lengths = STACK_PADDING_LENGTHS
    xs_zero = pad_with(xs, lengths, "zero")
    out = together("grad", "stack_padding", bidirectional)
    r0, r1 = out["zero"], out["junk"]
    assert_tree_finite(r1)
    assert_tree_equal(r0, r1)
    ref_ys, ref_h = np_gru_stack(np_stack_params(params), to_np(xs_zero), to_np(h0), lengths)
    assert_close(r1[0], ref_ys)
    assert_close(r1[1], ref_h)


def dropout_inputs():
    params = make_stack(17, 2, bidirectional=True)
    xs, h0 = make_inputs(1717, leading=(4,))
    return params, xs, h0


@together.cases("stack", [("dropout",)])
def _dropout_calls(_):
    params, xs, h0 = dropout_inputs()

    def run(deterministic, with_key):
        def fn(params, xs, h0, key):
            return gru_stack(
                params,
                xs,
                h0,
                dropout_rate=0.5,
                deterministic=deterministic,
                key=key if with_key else None,
            )

        return fn, (params, xs, h0, jax.random.PRNGKey(0))

    return {
        "no key": run(True, False),
        "key": run(True, True),
        "dropped": run(False, True),
    }


def test_gru_stack_dropout():
    params, xs, h0 = dropout_inputs()
    out = together("stack", "dropout")
    # deterministic=True: dropout is a no-op, values equal the reference
    ref_ys, ref_h = np_gru_stack(np_stack_params(params), to_np(xs), to_np(h0), None)
    for name in ("no key", "key"):
        ys, h_n = out[name]
        assert_close(ys, ref_ys)
        assert_close(h_n, ref_h)
    # deterministic=False with a key: something changes, shapes/dtypes stay
    ys_d, h_d = out["dropped"]
    assert ys_d.shape == ys.shape and h_d.shape == h_n.shape
    assert ys_d.dtype == ys.dtype and h_d.dtype == h_n.dtype
    assert_tree_finite((ys_d, h_d))
    assert not np.allclose(np.asarray(ys_d), np.asarray(ys))


# ------------------------------------------------------------------------------ dtypes

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float64]
DTYPE_GRID = list(itertools.product(DTYPES, BOOLS))  # dtype, with_h0


def dtype_inputs(dtype, with_h0):
    reset_after = with_h0
    p = make_params(18, reset_after=reset_after, dtype=dtype)
    xs, h0 = make_inputs(1818, dtype=dtype)
    h = jnp.asarray(np.random.default_rng(181).uniform(-1, 1, size=(B, H)), dtype=dtype)
    return p, xs, h0 if with_h0 else None, h


@together.cases("fwd", [("dtype", *case) for case in DTYPE_GRID])
def _dtype_calls(_, dtype, with_h0):
    p, xs, h0, h = dtype_inputs(dtype, with_h0)
    calls = {r: (_gru(r), (p, xs, h0, LENGTH_SETS[0])) for r in BOOLS}
    calls["cell"] = (gru_cell, (p, h, xs[:, 0]))
    return calls


@pytest.mark.parametrize(("dtype", "with_h0"), DTYPE_GRID, ids=lambda v: getattr(v, "__name__", v))
def test_gru_dtype_preserved(dtype, with_h0):
    reset_after = with_h0
    p, xs, h0, h = dtype_inputs(dtype, with_h0)
    assert all(leaf.dtype == dtype for leaf in jax.tree_util.tree_leaves(p))
    lengths = LENGTH_SETS[0]
    out = together("fwd", "dtype", dtype, with_h0)
    for reverse in (False, True):
        ys, h_last = out[reverse]
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
    assert out["cell"].dtype == dtype
    ref = np_gru_cell(*np_params(p)[:4], to_np(h), to_np(xs[:, 0]), reset_after)
    assert_close(out["cell"], ref, dtype)


def stack_dtype_inputs(dtype, with_h0):
    params = make_stack(19, 2, bidirectional=True, reset_after=with_h0, dtype=dtype)
    xs, h0 = make_inputs(1919, dtype=dtype, leading=(4,))
    return params, xs, h0 if with_h0 else None, LENGTH_SETS[1]


@together.cases("stack", [("dtype", *case) for case in DTYPE_GRID])
def _stack_dtype_calls(_, dtype, with_h0):
    return {"out": (_stack(), stack_dtype_inputs(dtype, with_h0))}


@pytest.mark.parametrize(("dtype", "with_h0"), DTYPE_GRID, ids=lambda v: getattr(v, "__name__", v))
def test_gru_stack_dtype_preserved(dtype, with_h0):
    params, xs, h0, lengths = stack_dtype_inputs(dtype, with_h0)
    assert all(leaf.dtype == dtype for leaf in jax.tree_util.tree_leaves(params))
    ys, h_n = together("stack", "dtype", dtype, with_h0)["out"]
    assert ys.dtype == dtype and h_n.dtype == dtype
    ref_ys, ref_h = np_gru_stack(
        np_stack_params(params), to_np(xs), None if h0 is None else to_np(h0), lengths
    )
    assert_close(ys, ref_ys, dtype)
    assert_close(h_n, ref_h, dtype)
