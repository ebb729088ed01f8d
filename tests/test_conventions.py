"""One set of conventions across the library: the NNX ``MinGRUStack`` mirrors the linen one, the
initializer keywords mean the same everywhere (the old ``recurrent_kernel_init`` spelling still
works, with a ``DeprecationWarning``), and ``unroll`` takes an int or a bool in the modules as in
``gru``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gru_jax
import gru_jax.linen
import gru_jax.nnx
from gru_jax.nnx import MinGRUStack

B, T, I, H, L = 2, 5, 3, 4, 2
LENGTHS = jnp.array([T, 3])
RESETS = jnp.zeros((B, T), bool).at[0, 2].set(True)


@pytest.fixture(scope="module")
def xs():
    return jax.random.normal(jax.random.key(0), (B, T, I), jnp.float32)


# ----------------------------------------------------------------------------- nnx.MinGRUStack


def test_nnx_min_gru_stack_is_mingru_stack_and_mirrors_linen(xs):
    layer = MinGRUStack(
        I, H, num_layers=L, bidirectional=True, return_carry=True, chrono=50, rngs=nnx.Rngs(1)
    )
    stack = layer.mingru_params
    assert [len(d) for d in stack] == [2, 2] and stack[1][0].w_x.shape == (2 * H, 2 * H)
    ys, h_n = layer(xs, seq_lengths=LENGTHS, resets=RESETS)
    want = gru_jax.mingru_stack(stack, xs, seq_lengths=LENGTHS, resets=RESETS)
    np.testing.assert_allclose(ys, want[0], atol=1e-6)
    np.testing.assert_allclose(h_n, want[1], atol=1e-6)
    # the same tree as linen's MinGRUStack, and the same outputs on the same parameters
    tree = nnx.to_pure_dict(nnx.state(layer, nnx.Param))
    twin = gru_jax.linen.MinGRUStack(H, num_layers=L, bidirectional=True, return_carry=True)
    shapes = jax.tree.map(jnp.shape, twin.init(jax.random.key(0), xs)["params"])
    assert jax.tree.map(jnp.shape, tree) == shapes
    linen_ys, linen_h = twin.apply({"params": tree}, xs, seq_lengths=LENGTHS, resets=RESETS)
    np.testing.assert_allclose(ys, linen_ys, atol=1e-6)
    np.testing.assert_allclose(h_n, linen_h, atol=1e-6)


def test_nnx_min_gru_stack_steps_loads_and_drops_out(xs):
    layer = MinGRUStack(I, H, num_layers=L, dropout_rate=0.5, rngs=nnx.Rngs(params=0, dropout=1))
    params = gru_jax.init_mingru_stack(jax.random.key(7), I, H, L)
    layer.load_mingru_params(params)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, layer.mingru_params, params))
    h = jnp.zeros((L, B, H))
    np.testing.assert_allclose(
        layer.step(h, xs[:, 0]), gru_jax.mingru_stack_cell(params, h, xs[:, 0]), atol=1e-6
    )
    layer.eval()
    np.testing.assert_allclose(layer(xs), gru_jax.mingru_stack(params, xs)[0], atol=1e-6)
    layer.train()  # the initial mode: dropout between the layers
    assert not np.allclose(layer(xs), layer(xs, deterministic=True))
    with pytest.raises(ValueError, match=r"expected 2 layer\(s\) of 1 direction\(s\); got 1 of 1"):
        layer.load_mingru_params(params[:1])
    with pytest.raises(ValueError, match="MinGRUStack: mode must be one of"):
        MinGRUStack(I, H, mode="fast", rngs=nnx.Rngs(0))


# ----------------------------------------------------------------------------- initializers


def _ones(key, shape, dtype):
    return jnp.ones(shape, dtype)


def _twos(key, shape, dtype):
    return jnp.full(shape, 2.0, dtype)


def test_stack_initializer_keywords_reach_every_layer():
    gru = gru_jax.init_gru_stack(
        jax.random.key(0), I, H, L, kernel_init=_ones, recurrent_init=_twos, bias_init=_ones
    )
    for p in (gru[0][0], gru[1][0]):
        assert (p.w_x == 1).all() and (p.w_h == 2).all() and (p.b_x == 1).all()
    mingru = gru_jax.init_mingru_stack(
        jax.random.key(0), I, H, L, bidirectional=True, kernel_init=_twos, bias_init=_ones
    )
    assert all((p.w_x == 2).all() and (p.b_x == 1).all() for layer in mingru for p in layer)


def test_recurrent_init_in_the_modules_and_the_old_spelling_warns(xs):
    cell = gru_jax.linen.GRUCell(H, recurrent_init=_twos)
    params = cell.init(jax.random.key(0), jnp.zeros((B, H)), xs[:, 0])["params"]
    assert (params["w_h"] == 2).all()
    layer = gru_jax.linen.GRU(H, recurrent_kernel_init=_ones, unroll=True)
    with pytest.warns(DeprecationWarning, match="recurrent_kernel_init is deprecated"):
        params = layer.init(jax.random.key(0), xs)["params"]
    assert (params["layer_0"]["forward"]["w_h"] == 1).all()
    with pytest.warns(DeprecationWarning, match="recurrent_kernel_init"):  # at every call
        ys = layer.apply({"params": params}, xs)
    want = gru_jax.gru_stack(gru_jax.linen.tree_to_params(params, reset_after=False), xs)[0]
    np.testing.assert_allclose(ys, want, atol=1e-6)
    assert (gru_jax.nnx.GRUCell(I, H, recurrent_init=_twos, rngs=nnx.Rngs(0)).w_h[...] == 2).all()
    with pytest.warns(DeprecationWarning, match="GRU: recurrent_kernel_init is deprecated"):
        nnx_layer = gru_jax.nnx.GRU(
            I, H, recurrent_kernel_init=_ones, unroll=True, rngs=nnx.Rngs(0)
        )
    assert (nnx_layer.gru_params[0][0].w_h == 1).all() and nnx_layer(xs).shape == (B, T, H)
