"""Numerical stability: very long sequences, bfloat16, NaN isolation between rows, saturation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax import gru, gru_stack, init_gru, init_gru_stack

I, H = 2, 8
OTHERS = np.array([0, 2])  # the rows without the NaN


def _loss(params, xs, h0):
    ys, h = gru(params, xs, h0)
    return jnp.mean(ys.astype(jnp.float32) ** 2) + jnp.mean(h.astype(jnp.float32))


_loss_and_grads = jax.jit(jax.value_and_grad(_loss, argnums=(0, 1)))


@pytest.mark.parametrize(
    ("dtype", "carry_dtype", "reset_after"),
    [
        (jnp.float32, jnp.float32, False),
        (jnp.float32, jnp.float32, True),
        (jnp.bfloat16, jnp.bfloat16, False),  # bfloat16 is slow on CPU: one variant each
        (jnp.bfloat16, jnp.float32, True),
    ],
    ids=["float32", "float32-reset-after", "bfloat16", "bfloat16-float32-carry-reset-after"],
)
def test_twenty_thousand_steps_stay_finite(reset_after, dtype, carry_dtype):
    params = init_gru(jax.random.key(0), I, H, reset_after=reset_after, dtype=dtype)
    xs = np.random.default_rng(1).standard_normal((2, 20_000, I)).astype(dtype)
    h0 = np.zeros((2, H), carry_dtype)
    loss, (g_params, g_xs) = _loss_and_grads(params, xs, h0)
    assert bool(jnp.isfinite(loss))
    for g in [*jax.tree.leaves(g_params), g_xs]:
        assert bool(jnp.isfinite(g.astype(jnp.float32)).all())
    # The gradient reaches back to the first steps without blowing up.
    assert float(jnp.abs(g_xs[:, 0].astype(jnp.float32)).max()) < 1e3


def _per_row_loss(params, xs):
    ys, h = gru(params, xs, seq_lengths=jnp.array([7, 7, 5]))
    return jnp.sum(ys**2, axis=(1, 2)) + jnp.sum(h, axis=1)  # (B,)


def _others_loss(params, xs):
    per_row = _per_row_loss(params, xs)
    return per_row[0] + per_row[2]


@jax.jit
def _nan_checks(params, stack, xs, poisoned):
    return (
        _per_row_loss(params, xs),
        _per_row_loss(params, poisoned),
        jax.grad(_others_loss, argnums=1)(params, poisoned),
        jax.grad(_others_loss, argnums=1)(params, xs),
        gru_stack(stack, poisoned)[0],
    )


@pytest.mark.parametrize("reset_after", [False, True])
def test_a_nan_in_one_row_never_reaches_another(reset_after):
    params = init_gru(jax.random.key(0), I, H, reset_after=reset_after)
    xs = np.random.default_rng(1).standard_normal((3, 7, I)).astype(np.float32)
    poisoned = xs.copy()
    poisoned[1, 3, 0] = np.nan
    # and through a bidirectional stack
    stack = init_gru_stack(jax.random.key(2), I, H, 2, bidirectional=True)
    clean, poisoned_out, grads, clean_grads, ys = _nan_checks(params, stack, xs, poisoned)
    assert bool(jnp.isnan(poisoned_out[1]))
    np.testing.assert_array_equal(poisoned_out[OTHERS], clean[OTHERS])
    # Gradients of the other rows' losses with respect to their own inputs stay clean too.
    assert bool(jnp.isfinite(grads[OTHERS]).all())
    np.testing.assert_array_equal(grads[OTHERS], clean_grads[OTHERS])
    assert bool(jnp.isfinite(ys[OTHERS]).all()) and bool(jnp.isnan(ys[1]).any())


@jax.jit
def _extreme(params, big, xs, h0):
    return gru(params, xs, h0), jax.value_and_grad(_loss, argnums=(0, 1))(big, xs, h0)


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_inputs_saturate_without_nan(reset_after, dtype):
    params = init_gru(jax.random.key(0), I, H, reset_after=reset_after, dtype=dtype)
    signs = np.sign(np.random.default_rng(1).standard_normal((2, 9, I)))
    xs = (1e4 * signs).astype(dtype)
    h0 = np.full((2, H), 0.5, dtype)
    big = params.replace(w_h=params.w_h * 1e4, b_h=params.b_h + 1e4)
    (ys, _), (loss, grads) = _extreme(params, big, xs, h0)
    values = np.abs(np.asarray(ys, np.float32))
    assert np.isfinite(values).all() and float(values.max()) <= 1.0
    assert bool(jnp.isfinite(loss))
    assert all(np.isfinite(np.asarray(g, np.float32)).all() for g in jax.tree.leaves(grads))
