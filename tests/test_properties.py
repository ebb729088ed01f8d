"""Property-based tests (hypothesis) of the core over shapes, lengths, variants and dtypes.

Problems are drawn with NumPy (no eager JAX op compiles a kernel per shape) and every function
is jitted, so that the compiles stay few: jit caches by shape, dtype and variant. Each test runs
on a few fixed combinations of them (``COMBOS``: every pair of a shape, a dtype and a variant
occurs in one) while hypothesis varies values, lengths, seeds and flags freely.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gru_jax import GRUParams, gru, gru_stack, init_gru_stack

settings.register_profile("gru", max_examples=6, deadline=None, derandomize=True)
settings.load_profile("gru")

SHAPES = [(1, 1, 1, 2), (3, 6, 2, 3)]  # (B, T, I, H): a single step of a single row, and more
# (shape, dtype, reset_after): every pair of two of them occurs in some combination
COMBOS = [
    (SHAPES[0], jnp.float32, False),
    (SHAPES[0], jnp.float64, True),
    (SHAPES[1], jnp.float32, True),
    (SHAPES[1], jnp.float64, False),
]
BF16_COMBOS = [(SHAPES[0], jnp.bfloat16, True), (SHAPES[1], jnp.bfloat16, False)]


def _id(combo):
    shape, dtype, reset_after = combo
    return f"{'x'.join(map(str, shape))}-{jnp.dtype(dtype).name}-{'after' if reset_after else 'before'}"


over_combos = pytest.mark.parametrize("combo", COMBOS, ids=_id)


@st.composite
def problems(draw, combo):
    """A random GRU problem: params (random biases), xs, h0 in (-1, 1), lengths, flags."""
    (batch, T, I, H), dtype, reset_after = combo
    seed = draw(st.integers(0, 2**16))
    lengths = np.array(draw(st.lists(st.integers(0, T), min_size=batch, max_size=batch)))
    rng = np.random.default_rng(seed)

    def uniform(shape, bound):
        return rng.uniform(-bound, bound, shape).astype(dtype)

    b_x = rng.standard_normal(3 * H).astype(dtype)
    params = GRUParams(
        w_x=uniform((I, 3 * H), np.sqrt(6 / (I + H))),
        w_h=uniform((H, 3 * H), np.sqrt(3 / H)),
        b_x=b_x,
        b_h=(b_x - 0.3).astype(dtype),
        reset_after=reset_after,
    )
    xs = (2.0 * rng.standard_normal((batch, T, I))).astype(dtype)
    h0 = uniform((batch, H), 0.99)
    return params, xs, h0, lengths.astype(np.int32)


def _valid(lengths, T):
    return (np.arange(T) < lengths[:, None])[..., None]


def _flip_valid(xs, lengths):
    """Reverse each row's valid prefix in time, leaving the padding where it is."""
    T = xs.shape[1]
    t = np.arange(T)
    index = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return np.take_along_axis(np.asarray(xs), index[..., None], axis=1)


def _loss(params, xs, h0, lengths):
    ys, h = gru(params, xs, h0, seq_lengths=lengths)
    return jnp.sum(ys**2) + jnp.sum(h), (ys, h)


_value_and_grad = jax.jit(jax.value_and_grad(_loss, argnums=(0, 1, 2), has_aux=True))
_gru = jax.jit(gru, static_argnames=("reverse",))
_gru_stack = jax.jit(gru_stack)


@over_combos
@given(data=st.data(), junk=st.sampled_from([np.nan, np.inf, 1e30]))
def test_padding_never_changes_a_result(combo, data, junk):
    params, xs, h0, lengths = data.draw(problems(combo))
    padded = np.where(_valid(lengths, xs.shape[1]), xs, np.asarray(junk, xs.dtype))
    (_, (ys, h)), grads = _value_and_grad(params, xs, h0, lengths)
    (_, (ys_p, h_p)), grads_p = _value_and_grad(params, padded, h0, lengths)
    np.testing.assert_array_equal(ys, ys_p)
    np.testing.assert_array_equal(h, h_p)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_p), strict=True):
        np.testing.assert_array_equal(a, b)
        assert np.isfinite(b).all()


@over_combos
@given(data=st.data())
def test_reverse_is_forward_on_the_flipped_prefix_and_flipping_twice_is_identity(combo, data):
    params, xs, h0, lengths = data.draw(problems(combo))
    flipped = _flip_valid(xs, lengths)
    np.testing.assert_array_equal(_flip_valid(flipped, lengths), xs)
    ys_rev, h_rev = _gru(params, xs, h0, seq_lengths=lengths, reverse=True)
    ys_fwd, h_fwd = _gru(params, flipped, h0, seq_lengths=lengths)
    tol = 1e-5 if xs.dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(ys_rev, _flip_valid(ys_fwd, lengths), rtol=tol, atol=tol)
    np.testing.assert_allclose(h_rev, h_fwd, rtol=tol, atol=tol)


_vmapped = jax.jit(
    jax.vmap(lambda p, x, h0, n: gru(p, x, h0, seq_lengths=n), in_axes=(None, 0, 0, 0))
)


@over_combos
@given(data=st.data())
def test_vmap_equals_a_python_loop_over_the_batch(combo, data):
    params, xs, h0, lengths = data.draw(problems(combo))
    ys, h = _vmapped(params, xs, h0, lengths)
    for b in range(xs.shape[0]):
        ys_b, h_b = _gru(params, xs[b], h0[b], seq_lengths=lengths[b])
        tol = 1e-6 if xs.dtype == jnp.float32 else 1e-13
        np.testing.assert_allclose(ys[b], ys_b, rtol=tol, atol=tol)
        np.testing.assert_allclose(h[b], h_b, rtol=tol, atol=tol)


@over_combos
@given(data=st.data(), reverse_direction=st.booleans())
def test_one_layer_stack_equals_gru(combo, data, reverse_direction):
    params, xs, h0, lengths = data.draw(problems(combo))
    stack = ((params,),)
    ys_s, h_n = _gru_stack(stack, xs, h0[None], seq_lengths=lengths)
    ys, h = _gru(params, xs, h0, seq_lengths=lengths)
    np.testing.assert_array_equal(ys_s, ys)
    np.testing.assert_array_equal(h_n[0], h)
    if reverse_direction:  # and a bidirectional layer's backward half is the reversed run
        bi = ((params, params),)
        ys_b, _ = _gru_stack(bi, xs, np.stack([h0, h0]), seq_lengths=lengths)
        ys_r, _ = _gru(params, xs, h0, seq_lengths=lengths, reverse=True)
        np.testing.assert_array_equal(ys_b[..., params.hidden_size :], ys_r)


@jax.jit
def _states_and_grads(params, xs, h0, lengths):
    def total(params):
        ys, h = gru(params, xs, h0, seq_lengths=lengths)
        return jnp.sum(ys.astype(jnp.float32)), (ys, h)

    return jax.grad(total, has_aux=True)(params)


@pytest.mark.parametrize("combo", COMBOS + BF16_COMBOS, ids=_id)
@given(data=st.data(), scale=st.sampled_from([1.0, 100.0]))
def test_states_stay_within_one_and_gradients_are_finite(combo, data, scale):
    """|h| < 1 holds in exact arithmetic when |h0| < 1 (a convex mix of h and tanh); in floating
    point tanh of a large argument rounds to exactly 1, so the test asks |h| <= 1, and |h| < 1
    where nothing saturates (float64 at moderate inputs)."""
    params, xs, h0, lengths = data.draw(problems(combo))
    grads, (ys, h) = _states_and_grads(params, (scale * xs).astype(xs.dtype), h0, lengths)
    assert ys.dtype == xs.dtype
    states = np.abs(np.concatenate([np.ravel(a).astype(np.float32) for a in (ys, h)]))
    assert (states <= 1.0).all()
    if xs.dtype == jnp.float64 and scale == 1.0:
        assert (states < 1.0).all()
    assert all(np.isfinite(np.asarray(g, np.float32)).all() for g in jax.tree.leaves(grads))


@given(st.integers(1, 2), st.booleans(), st.integers(0, 100))
def test_stack_init_and_run_any_depth(num_layers, bidirectional, seed):
    stack = init_gru_stack(jax.random.key(seed), 2, 3, num_layers, bidirectional=bidirectional)
    ys, h_n = _gru_stack(stack, np.ones((2, 4, 2), np.float32))
    d = 2 if bidirectional else 1
    assert ys.shape == (2, 4, d * 3) and h_n.shape == (num_layers * d, 2, 3)
    assert np.isfinite(ys).all()
