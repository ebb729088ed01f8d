"""Numerical stability: very long sequences, bfloat16, NaN isolation between rows, saturation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax import gru, gru_stack, init_gru, init_gru_stack

I, H = 2, 8
OTHERS = np.array([0, 2])  # the rows without the NaN


def _loss_and_grads(params, xs, h0):
    def loss(params, xs):
        ys, h = gru(params, xs, h0)
        return jnp.mean(ys.astype(jnp.float32) ** 2) + jnp.mean(h.astype(jnp.float32))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, xs)


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
    xs = jax.random.normal(jax.random.key(1), (2, 20_000, I), dtype)
    h0 = jnp.zeros((2, H), carry_dtype)
    loss, (g_params, g_xs) = _loss_and_grads(params, xs, h0)
    assert bool(jnp.isfinite(loss))
    for g in [*jax.tree.leaves(g_params), g_xs]:
        assert bool(jnp.isfinite(g.astype(jnp.float32)).all())
    # The gradient reaches back to the first steps without blowing up.
    assert float(jnp.abs(g_xs[:, 0].astype(jnp.float32)).max()) < 1e3


@pytest.mark.parametrize("reset_after", [False, True])
def test_a_nan_in_one_row_never_reaches_another(reset_after):
    params = init_gru(jax.random.key(0), I, H, reset_after=reset_after)
    xs = jax.random.normal(jax.random.key(1), (3, 7, I), jnp.float32)
    poisoned = xs.at[1, 3, 0].set(jnp.nan)

    def per_row_loss(xs):
        ys, h = gru(params, xs, seq_lengths=jnp.array([7, 7, 5]))
        return jnp.sum(ys**2, axis=(1, 2)) + jnp.sum(h, axis=1)  # (B,)

    clean, poisoned_out = per_row_loss(xs), per_row_loss(poisoned)
    assert bool(jnp.isnan(poisoned_out[1]))
    np.testing.assert_array_equal(poisoned_out[OTHERS], clean[OTHERS])
    # Gradients of the other rows' losses with respect to their own inputs stay clean too.
    grads = jax.grad(lambda xs: per_row_loss(xs)[0] + per_row_loss(xs)[2])(poisoned)
    assert bool(jnp.isfinite(grads[OTHERS]).all())
    np.testing.assert_array_equal(
        grads[OTHERS], jax.grad(lambda xs: per_row_loss(xs)[0] + per_row_loss(xs)[2])(xs)[OTHERS]
    )
    # And through a bidirectional stack.
    stack = init_gru_stack(jax.random.key(2), I, H, 2, bidirectional=True)
    ys, _ = gru_stack(stack, poisoned)
    assert bool(jnp.isfinite(ys[OTHERS]).all()) and bool(jnp.isnan(ys[1]).any())


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_inputs_saturate_without_nan(reset_after, dtype):
    params = init_gru(jax.random.key(0), I, H, reset_after=reset_after, dtype=dtype)
    signs = jnp.sign(jax.random.normal(jax.random.key(1), (2, 9, I)))
    xs = (1e4 * signs).astype(dtype)
    h0 = jnp.full((2, H), 0.5, dtype)
    ys, _ = gru(params, xs, h0)
    values = jnp.abs(ys.astype(jnp.float32))
    assert bool(jnp.isfinite(values).all()) and float(values.max()) <= 1.0
    big = params.replace(w_h=params.w_h * 1e4, b_h=params.b_h + 1e4)
    loss, grads = _loss_and_grads(big, xs, h0)
    assert bool(jnp.isfinite(loss))
    assert all(bool(jnp.isfinite(g.astype(jnp.float32)).all()) for g in jax.tree.leaves(grads))
