"""GRUParams as a pytree, init_gru's defaults and overrides, gru_cell's checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax import GRUParams, gru_cell, init_gru


def test_params_pytree_has_four_leaves_and_static_reset_after():
    p = init_gru(jax.random.key(0), 3, 4, reset_after=True)
    leaves, treedef = jax.tree.flatten(p)
    assert len(leaves) == 4
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert jax.tree.unflatten(treedef, leaves).reset_after is True
    # reset_after is part of the structure: a different variant is a different tree.
    q = p.replace(reset_after=False)
    assert jax.tree.structure(q) != treedef
    # jit specialises on it rather than tracing it.
    seen = []

    @jax.jit
    def f(params):
        seen.append(params.reset_after)
        return params.w_x.sum()

    f(p)
    f(q)
    assert seen == [True, False]


def test_params_keyword_construction_and_replace():
    p = GRUParams(w_x=jnp.zeros((2, 9)), w_h=jnp.zeros((3, 9)), b_x=jnp.zeros(9), b_h=jnp.zeros(9))
    assert p.reset_after is False
    assert (p.input_size, p.hidden_size) == (2, 3)
    q = p.replace(b_h=jnp.ones(9))
    assert float(q.b_h.sum()) == 9.0 and float(p.b_h.sum()) == 0.0
    assert p._replace(reset_after=True).reset_after is True


def test_init_defaults_shapes_and_distributions():
    i, h = 6, 16
    p = init_gru(jax.random.key(1), i, h, dtype=jnp.float64)
    assert p.w_x.shape == (i, 3 * h) and p.w_h.shape == (h, 3 * h)
    assert p.b_x.shape == p.b_h.shape == (3 * h,)
    assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(p))
    np.testing.assert_array_equal(p.b_x, 0.0)
    np.testing.assert_array_equal(p.b_h, 0.0)
    # Orthogonal per gate block.
    for g in range(3):
        block = np.asarray(p.w_h[:, g * h : (g + 1) * h])
        np.testing.assert_allclose(block.T @ block, np.eye(h), atol=1e-10)
    # Glorot uniform per gate block: bounded by sqrt(6 / (I + H)), and blocks differ.
    limit = np.sqrt(6.0 / (i + h))
    assert np.abs(np.asarray(p.w_x)).max() <= limit
    assert not np.allclose(p.w_x[:, :h], p.w_x[:, h : 2 * h])
    # Different keys give different parameters; the same key the same ones.
    q = init_gru(jax.random.key(1), i, h, dtype=jnp.float64)
    r = init_gru(jax.random.key(2), i, h, dtype=jnp.float64)
    np.testing.assert_array_equal(p.w_x, q.w_x)
    assert not np.allclose(p.w_x, r.w_x)


def test_init_initializers_can_be_overridden():
    calls = []

    def ones(key, shape, dtype):
        calls.append(tuple(shape))
        return jnp.ones(shape, dtype)

    p = init_gru(
        jax.random.key(0),
        2,
        3,
        kernel_init=ones,
        recurrent_init=ones,
        bias_init=jax.nn.initializers.constant(0.5),
    )
    np.testing.assert_array_equal(p.w_x, 1.0)
    np.testing.assert_array_equal(p.w_h, 1.0)
    np.testing.assert_array_equal(p.b_x, 0.5)
    np.testing.assert_array_equal(p.b_h, 0.5)
    assert calls == [(2, 3)] * 3 + [(3, 3)] * 3


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float64])
def test_init_dtype(dtype):
    p = init_gru(jax.random.key(0), 2, 3, dtype=dtype)
    assert all(a.dtype == dtype for a in jax.tree.leaves(p))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input_size": 0}, ValueError, "input_size must be a positive int; got 0"),
        ({"hidden_size": -3}, ValueError, "hidden_size must be a positive int; got -3"),
        ({"hidden_size": 2.5}, TypeError, "hidden_size must be a positive int; got float"),
        ({"input_size": True}, TypeError, "input_size must be a positive int; got bool"),
        ({"dtype": jnp.int32}, TypeError, "dtype must be a floating-point dtype; got int32"),
        ({"reset_after": 1}, TypeError, "reset_after must be a bool"),
    ],
)
def test_init_bad_arguments(kwargs, error, match):
    args = {"input_size": 2, "hidden_size": 3} | kwargs
    with pytest.raises(error, match=match):
        init_gru(jax.random.key(0), args.pop("input_size"), args.pop("hidden_size"), **args)


@pytest.fixture(scope="module")
def params():
    return init_gru(jax.random.key(0), 3, 4, dtype=jnp.float64)


@pytest.mark.parametrize("batch", [(), (2,), (2, 5)])
def test_cell_any_leading_batch_dims(params, batch):
    x = jnp.ones((*batch, 3), jnp.float64)
    h = jnp.full((*batch, 4), 0.3, jnp.float64)
    out = gru_cell(params, h, x)
    assert out.shape == (*batch, 4) and out.dtype == jnp.float64
    # Every batch element is computed independently and equally.
    np.testing.assert_allclose(
        out.reshape(-1, 4),
        np.broadcast_to(out.reshape(-1, 4)[0], (int(np.prod(batch, dtype=int)), 4)),
    )


@pytest.mark.parametrize(
    ("h_shape", "x_shape", "x_dtype", "error", "match"),
    [
        (
            (2, 4),
            (2, 5),
            jnp.float64,
            ValueError,
            r"x must have shape \(\*B, I\) with I = 3; got \(2, 5\)",
        ),
        ((3, 4), (2, 3), jnp.float64, ValueError, r"h must have shape .* = \(2, 4\); got \(3, 4\)"),
        ((2, 5), (2, 3), jnp.float64, ValueError, r"h must have shape .* = \(2, 4\); got \(2, 5\)"),
        ((2, 4), (2, 3), jnp.int32, TypeError, "x must have a floating-point dtype; got int32"),
    ],
)
def test_cell_bad_inputs(params, h_shape, x_shape, x_dtype, error, match):
    with pytest.raises(error, match=match):
        gru_cell(params, jnp.zeros(h_shape, jnp.float64), jnp.zeros(x_shape, x_dtype))


def test_cell_bad_params():
    good = init_gru(jax.random.key(0), 3, 4)
    with pytest.raises(TypeError, match="params must be a GRUParams; got dict"):
        gru_cell({"w_x": good.w_x}, jnp.zeros(4), jnp.zeros(3))
    with pytest.raises(
        ValueError, match=r"params.w_x must have shape \(I, 3H\) = \(I, 12\); got \(3, 9\)"
    ):
        gru_cell(good.replace(w_x=jnp.zeros((3, 9))), jnp.zeros(4), jnp.zeros(3))
    with pytest.raises(
        ValueError, match=r"params.b_h must have shape \(3H,\) = \(12,\); got \(4,\)"
    ):
        gru_cell(good.replace(b_h=jnp.zeros(4)), jnp.zeros(4), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"params.w_h must have shape \(H, 3H\); got \(4, 4\)"):
        gru_cell(good.replace(w_h=jnp.zeros((4, 4))), jnp.zeros(4), jnp.zeros(3))
