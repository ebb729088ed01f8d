"""``gru_jax.linear_recurrence``, the public linear scan: values against a float64 NumPy loop in
every mode, with ``h0`` and with resets of every accepted shape, gradients (``check_grads``,
forward and reverse), ``jit``/``vmap``, the empty sequence, and bad inputs."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from gru_jax import linear_recurrence

T, B, H = 9, 2, 3
MODES = ("sequential", "parallel", "chunked")


def np_linear(a, b, h0=None, resets=None):
    """``h_t = a_t h_{t−1} + b_t`` step by step in float64; zeros before a reset step."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    h = np.zeros(a.shape[1:]) if h0 is None else np.asarray(h0, np.float64)
    out = []
    for t in range(a.shape[0]):
        if resets is not None:
            r = np.asarray(resets[t]).reshape(resets[t].shape + (1,) * (a.ndim - resets.ndim))
            h = np.where(r, 0.0, h)
        h = a[t] * h + b[t]
        out.append(h)
    return np.stack(out)


@pytest.fixture(scope="module")
def data():
    ka, kb, kh = jax.random.split(jax.random.key(0), 3)
    a = jax.random.uniform(ka, (T, B, H), jnp.float64, 0.2, 1.0)
    b = jax.random.normal(kb, (T, B, H), jnp.float64)
    h0 = jax.random.normal(kh, (B, H), jnp.float64)
    resets = np.zeros((T, B), bool)
    resets[[0, 4, 5], 0] = True  # step 0 (ignores h0), and two consecutive starts
    resets[[3, 8], 1] = True  # a last segment of one step
    return a, b, h0, resets


@functools.cache
def run(mode):
    return jax.jit(functools.partial(linear_recurrence, mode=mode, chunk_size=4))


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_equals_the_loop_with_h0_and_resets(data, mode):
    a, b, h0, resets = data
    f = run(mode)
    np.testing.assert_allclose(f(a, b), np_linear(a, b), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f(a, b, h0), np_linear(a, b, h0), rtol=1e-12, atol=1e-12)
    want = np_linear(a, b, h0, resets)
    np.testing.assert_allclose(f(a, b, h0, resets=resets), want, rtol=1e-12, atol=1e-12)


def test_resets_of_every_accepted_shape_and_segments_alone(data):
    a, b, h0, resets = data
    full = np.broadcast_to(resets[..., None], a.shape)
    want = np_linear(a, b, h0, resets)
    for r in (resets, full):  # (T, B) broadcast over H, and (T, B, H)
        np.testing.assert_allclose(linear_recurrence(a, b, h0, resets=r), want, atol=1e-12)
    one = np.zeros(T, bool)
    one[5] = True  # (T,): every row restarts at step 5, as if it began there from zeros
    got = linear_recurrence(a, b, h0, resets=one)
    np.testing.assert_allclose(got[5:], np_linear(a[5:], b[5:]), atol=1e-12)
    np.testing.assert_allclose(got[:5], np_linear(a[:5], b[:5], h0), atol=1e-12)


def test_a_reset_at_step_zero_ignores_even_an_infinite_h0(data):
    a, b, _, _ = data
    h0 = jnp.full((B, H), jnp.inf)
    got = linear_recurrence(a, b, h0, resets=np.ones((T, B), bool) & (np.arange(T) == 0)[:, None])
    np.testing.assert_allclose(got, np_linear(a, b), atol=1e-12)


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_gradients_in_forward_and_reverse_mode(data, mode):
    a, b, h0, resets = data
    f = functools.partial(linear_recurrence, mode=mode, resets=resets[:5])
    check_grads(lambda a, b, h: f(a, b, h), (a[:5], b[:5], h0), order=2, modes=("fwd", "rev"))


def test_vmap_over_a_leading_axis_and_the_empty_sequence(data):
    a, b, h0, _ = data
    got = jax.vmap(run("parallel"), in_axes=(1, 1, 0), out_axes=1)(a, b, h0)
    np.testing.assert_allclose(got, np_linear(a, b, h0), atol=1e-12)
    empty = jnp.zeros((0, B, H))
    assert linear_recurrence(empty, empty, h0, resets=np.zeros((0, B), bool)).shape == (0, B, H)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"resets": np.zeros((T, B), np.int32)},
            TypeError,
            "resets must have dtype bool; got int32",
        ),
        (
            {"resets": np.zeros((T, H), bool)},
            ValueError,
            r"resets must have shape \(T, \*P\), a prefix of a's shape \(9, 2, 3\); got \(9, 3\)",
        ),
        ({"mode": "fast"}, ValueError, "mode must be one of"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int; got 0"),
    ],
)
def test_bad_inputs(data, kwargs, error, message):
    a, b, _, _ = data
    with pytest.raises(error, match=f"linear_recurrence: {message}"):
        linear_recurrence(a, b, **kwargs)
