"""gru over sequences: gradients, transformations, caching, options, and bad inputs.

Values against the independent float64 NumPy reference are in test_reference_values.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gru_jax import gru, gru_cell, init_gru

B, T, I, H = 2, 5, 3, 4


def random_params(key, reset_after, dtype=jnp.float64, input_size=I):
    """init_gru with random non-zero biases, so that bias placement matters."""
    p = init_gru(key, input_size, H, reset_after=reset_after, dtype=dtype)
    kx, kh = jax.random.split(jax.random.fold_in(key, 1))
    return p.replace(
        b_x=jax.random.normal(kx, (3 * H,), dtype), b_h=jax.random.normal(kh, (3 * H,), dtype)
    )


@pytest.fixture(scope="module", params=[False, True], ids=["reset_before", "reset_after"])
def params(request):
    return random_params(jax.random.key(0), request.param)


@pytest.fixture(scope="module")
def data():
    kx, kh = jax.random.split(jax.random.key(1))
    xs = jax.random.normal(kx, (B, T, I), jnp.float64)
    h0 = 0.5 * jax.random.normal(kh, (B, H), jnp.float64)
    return xs, h0


def test_scan_equals_python_loop_of_cell(params, data):
    xs, h0 = data
    ys, h_last = gru(params, xs, h0)
    h, expected = h0, []
    for t in range(T):
        h = gru_cell(params, h, xs[:, t])
        expected.append(h)
    np.testing.assert_allclose(ys, jnp.stack(expected, axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_last, h, rtol=1e-12, atol=1e-12)


def test_check_grads_with_lengths_reverse_h0(params, data):
    """Forward and reverse mode against finite differences, forward in one variant and in
    reverse in the other (the other pairs: the finite differences of test_reference_values.py
    in reverse mode, and the tangents against autodiff of test_fast_paths.py)."""
    xs, h0 = data
    lengths = jnp.array([T, 2])
    reverse = params.reset_after

    @jax.jit
    def f(params, xs, h0):
        ys, h_last = gru(params, xs, h0, seq_lengths=lengths, reverse=reverse)
        return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(h_last**2)

    check_grads(f, (params, xs, h0), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)
    check_grads(f, (params, xs, h0), order=1, modes=("fwd",), atol=1e-6, rtol=1e-6)


def test_jit_vmap_grad_compose(params, data):
    xs, h0 = data
    lengths = jnp.array([T, 3])

    def loss(params, xs, h0, length):
        # One unbatched example: xs (T, I), h0 (H,), length ().
        ys, h_last = gru(params, xs, h0, seq_lengths=length)
        return jnp.sum(ys**2) + jnp.sum(h_last)

    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, 0)))(
        params, xs, h0, lengths
    )

    def batched_loss(params):
        ys, h_last = gru(params, xs, h0, seq_lengths=lengths)
        return jnp.sum(ys**2) + jnp.sum(h_last)

    total = jax.jit(jax.grad(batched_loss))(params)
    summed = jax.tree.map(lambda g: g.sum(0), per_example)
    for a, b in zip(jax.tree.leaves(summed), jax.tree.leaves(total), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_vmap_over_params_and_nested_batch(data):
    xs, _ = data
    keys = jax.random.split(jax.random.key(3), 3)
    stacked = jax.jit(jax.vmap(lambda k: random_params(k, False)))(keys)
    one = jax.tree.map(lambda a: a[1], stacked)
    (ys, h), (ys_one, _) = jax.jit(
        lambda s, o: (jax.vmap(gru, in_axes=(0, None))(s, xs), gru(o, xs))
    )(stacked, one)
    assert ys.shape == (3, B, T, H) and h.shape == (3, B, H)
    np.testing.assert_allclose(ys[1], ys_one, rtol=1e-12)


def test_second_call_does_not_recompile(params, data):
    xs, h0 = data
    traces = []

    @jax.jit
    def f(params, xs, h0, lengths):
        traces.append(1)
        return gru(params, xs, h0, seq_lengths=lengths)

    f(params, xs, h0, jnp.array([5, 1]))
    f(params, xs + 1.0, h0 * 2.0, jnp.array([2, 4]))
    assert len(traces) == 1
    assert f._cache_size() == 1


UNROLLS = (2, True)


@functools.cache
def _unroll_and_remat(reset_after):
    """Values and gradients with every option below, for one variant: one compiled program."""
    params = random_params(jax.random.key(0), reset_after)
    kx, kh = jax.random.split(jax.random.key(1))  # the data fixture's
    xs = jax.random.normal(kx, (B, T, I), jnp.float64)
    h0 = 0.5 * jax.random.normal(kh, (B, H), jnp.float64)
    lengths = jnp.array([4, 1])

    def loss(params, **kw):
        ys, h = gru(params, xs, h0, seq_lengths=lengths, **kw)
        return jnp.sum(ys**3) + jnp.sum(h)

    options = [{}]
    for unroll in UNROLLS:
        options += [{"unroll": unroll}, {"remat": True}, {"unroll": unroll, "remat": True}]
    results = jax.jit(
        lambda params: [jax.value_and_grad(functools.partial(loss, **kw))(params) for kw in options]
    )(params)
    return results[0], {u: results[1 + 3 * k : 4 + 3 * k] for k, u in enumerate(UNROLLS)}


@pytest.mark.parametrize("unroll", UNROLLS)
def test_unroll_and_remat_change_nothing(params, unroll):
    (base, g_base), others = _unroll_and_remat(params.reset_after)
    for value, g in others[unroll]:
        np.testing.assert_allclose(value, base, rtol=1e-12)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_base), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_lengths_under_jit_are_traced_and_clamped(params, data):
    """Traced lengths cannot be range-checked; documented: > T acts as T, < 0 as 0."""
    xs, h0 = data
    f = jax.jit(lambda lengths: gru(params, xs, h0, seq_lengths=lengths))
    ys_big, h_big = f(jnp.array([T + 3, -2]))
    ys_ref, h_ref = gru(params, xs, h0, seq_lengths=jnp.array([T, 0]))
    np.testing.assert_allclose(ys_big, ys_ref, rtol=1e-12)
    np.testing.assert_allclose(h_big, h_ref, rtol=1e-12)


def test_empty_sequence_returns_h0(params):
    xs = jnp.zeros((B, 0, I), jnp.float64)
    h0 = jnp.ones((B, H), jnp.float64)
    ys, h = gru(params, xs, h0)
    assert ys.shape == (B, 0, H)
    np.testing.assert_array_equal(h, h0)


@pytest.mark.parametrize(
    ("xs_dtype", "p_dtype", "h0_dtype", "out_dtype"),
    [
        (jnp.float32, jnp.float32, None, jnp.float32),
        (jnp.bfloat16, jnp.bfloat16, None, jnp.bfloat16),
        (jnp.bfloat16, jnp.bfloat16, jnp.bfloat16, jnp.bfloat16),
        (jnp.float64, jnp.float64, jnp.float64, jnp.float64),
        (jnp.bfloat16, jnp.float32, None, jnp.float32),  # promotion, as everywhere in JAX
    ],
)
def test_dtypes_follow_promotion(xs_dtype, p_dtype, h0_dtype, out_dtype):
    # Dtypes are decided while tracing: abstract evaluation shows them (nothing compiles).
    p = jax.eval_shape(lambda key: init_gru(key, I, H, dtype=p_dtype), jax.random.key(0))
    xs = jax.ShapeDtypeStruct((B, T, I), xs_dtype)
    h0 = None if h0_dtype is None else jax.ShapeDtypeStruct((B, H), h0_dtype)
    ys, h = jax.eval_shape(lambda p, xs, h0: gru(p, xs, h0), p, xs, h0)
    assert ys.dtype == out_dtype and h.dtype == out_dtype
    h_cell = jax.ShapeDtypeStruct((B, H), xs_dtype)
    x_cell = jax.ShapeDtypeStruct((B, I), xs_dtype)
    assert jax.eval_shape(gru_cell, p, h_cell, x_cell).dtype == out_dtype


def test_bfloat16_is_close_to_float32():
    p32 = random_params(jax.random.key(5), False, jnp.float32)
    p16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), p32)
    xs = jax.random.normal(jax.random.key(6), (B, 16, I), jnp.float32)
    ys32, _ = gru(p32, xs)
    ys16, _ = gru(p16, xs.astype(jnp.bfloat16))
    np.testing.assert_allclose(ys16.astype(jnp.float32), ys32, atol=5e-2)


# ----------------------------------------------------------------------------- bad inputs

XS = np.zeros((B, T, I), np.float32)


@functools.cache
def good_params():
    """Drawn on first use, not when the module is collected."""
    return init_gru(jax.random.key(0), I, H)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"xs": jnp.zeros((I,))},
            ValueError,
            r"xs must have shape \(T, I\) or \(\*B, T, I\) with I = 3; got \(3,\)",
        ),
        (
            {"xs": jnp.zeros((B, T, I + 1))},
            ValueError,
            r"xs must have shape .* with I = 3; got \(2, 5, 4\)",
        ),
        (
            {"xs": jnp.zeros((B, T, I), jnp.int32)},
            TypeError,
            "xs must have a floating-point dtype; got int32",
        ),
        (
            {"xs": jnp.zeros((B, T, I), bool)},
            TypeError,
            "xs must have a floating-point dtype; got bool",
        ),
        (
            {"h0": jnp.zeros((B, H + 1))},
            ValueError,
            r"h0 must have shape \(\*B, H\) = \(2, 4\); got \(2, 5\)",
        ),
        (
            {"h0": jnp.zeros((H,))},
            ValueError,
            r"h0 must have shape \(\*B, H\) = \(2, 4\); got \(4,\)",
        ),
        (
            {"h0": jnp.zeros((B, H), jnp.int32)},
            TypeError,
            "h0 must have a floating-point dtype; got int32",
        ),
        (
            {"seq_lengths": jnp.array([1, 2, 3])},
            ValueError,
            r"seq_lengths must have the batch shape of xs, \(2,\); got \(3,\)",
        ),
        (
            {"seq_lengths": jnp.array(3)},
            ValueError,
            r"seq_lengths must have the batch shape of xs, \(2,\); got \(\)",
        ),
        (
            {"seq_lengths": jnp.array([1.0, 2.0])},
            TypeError,
            "seq_lengths must have an integer dtype; got float",
        ),
        (
            {"seq_lengths": np.array([1, T + 1])},
            ValueError,
            r"seq_lengths must lie in \[0, T\] = \[0, 5\]; got values in \[1, 6\]",
        ),
        (
            {"seq_lengths": [-1, 2]},
            ValueError,
            r"seq_lengths must lie in \[0, T\] = \[0, 5\]; got values in \[-1, 2\]",
        ),
        ({"unroll": 0}, ValueError, "unroll must be a positive int; got 0"),
        ({"reverse": "yes"}, TypeError, "reverse must be a bool; got str"),
        ({"params": {"w_x": 1}}, TypeError, "params must be a GRUParams; got dict"),
    ],
)
def test_bad_inputs_raise_at_trace_time(kwargs, error, match):
    args = {"params": good_params(), "xs": XS} | kwargs
    params, xs = args.pop("params"), args.pop("xs")
    h0 = args.pop("h0", None)
    with pytest.raises(error, match=match):
        gru(params, xs, h0, **args)
    # Shape and dtype errors are raised while tracing, before XLA sees anything.
    if "seq_lengths" not in kwargs or error is TypeError or "batch shape" in match:
        traced = jax.jit(lambda p, x, h: gru(p, x, h, **args))
        with pytest.raises(error, match=match):
            traced.trace(params, xs, h0)
