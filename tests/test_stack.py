"""gru_stack: structure, torch ordering, bidirectionality, dropout, and bad inputs.

Values of deeper stacks against the NumPy reference are in test_reference_values.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax import gru, gru_stack, init_gru, init_gru_stack

B, T, I, H = 3, 6, 2, 4


@pytest.fixture(scope="module")
def xs():
    return jax.random.normal(jax.random.key(1), (B, T, I), jnp.float64)


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_init_structure(num_layers, bidirectional):
    params = init_gru_stack(
        jax.random.key(0), I, H, num_layers, bidirectional=bidirectional, reset_after=True
    )
    d = 2 if bidirectional else 1
    assert len(params) == num_layers and all(len(layer) == d for layer in params)
    for layer, directions in enumerate(params):
        for p in directions:
            assert p.w_x.shape == ((I if layer == 0 else d * H), 3 * H)
            assert p.reset_after is True
    # Every (layer, direction) gets its own key.
    kernels = [np.asarray(p.w_h) for layer in params for p in layer]
    assert all(not np.allclose(a, b) for k, a in enumerate(kernels) for b in kernels[k + 1 :])


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch", [(), (B,), (2, B)])
def test_shapes(bidirectional, batch):
    params = init_gru_stack(jax.random.key(0), I, H, 2, bidirectional=bidirectional)
    d = 2 if bidirectional else 1
    # Shapes are decided while tracing: abstract evaluation shows them (nothing compiles).
    ys, h_n = jax.eval_shape(gru_stack, params, jnp.ones((*batch, T, I)))
    assert ys.shape == (*batch, T, d * H)
    assert h_n.shape == (2 * d, *batch, H)


def test_bidirectional_is_forward_plus_reversed_run(xs):
    params = init_gru_stack(jax.random.key(0), I, H, 2, bidirectional=True, dtype=jnp.float64)
    lengths = jnp.array([T, 4, 1])
    h0 = jax.random.normal(jax.random.key(2), (4, B, H), jnp.float64)

    @jax.jit
    def run(params, xs, h0):
        inputs, finals = xs, []
        for layer in range(2):
            y_f, h_f = gru(params[layer][0], inputs, h0[2 * layer], seq_lengths=lengths)
            y_b, h_b = gru(
                params[layer][1], inputs, h0[2 * layer + 1], seq_lengths=lengths, reverse=True
            )
            inputs = jnp.concatenate([y_f, y_b], axis=-1)
            finals += [h_f, h_b]
        return gru_stack(params, xs, h0, seq_lengths=lengths), inputs, finals

    (ys, h_n), inputs, finals = run(params, xs, h0)
    np.testing.assert_allclose(ys, inputs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n, jnp.stack(finals), rtol=1e-12, atol=1e-12)
    # Forward features first: the last layer's forward final state is its output at length-1;
    # the backward final state is its output at t = 0.
    for b, n in enumerate(np.asarray(lengths)):
        np.testing.assert_allclose(ys[b, n - 1, :H], h_n[2, b], rtol=1e-12)
        np.testing.assert_allclose(ys[b, 0, H:], h_n[3, b], rtol=1e-12)


def test_dropout_between_layers_only(xs):
    params = init_gru_stack(jax.random.key(0), I, H, 2, dtype=jnp.float64)
    one = init_gru_stack(jax.random.key(0), I, H, 1, dtype=jnp.float64)

    @jax.jit  # every call of the test, compiled once
    def run(params, one, xs):
        def dropped(params, seed):
            return gru_stack(
                params, xs, dropout_rate=0.5, deterministic=False, key=jax.random.key(seed)
            )[0]

        y0, _ = gru(params[0][0], xs)
        key0 = jax.random.split(jax.random.key(1), 2)[0]
        keep = jax.random.bernoulli(key0, 0.5, y0.shape)
        return {
            "det": gru_stack(params, xs, dropout_rate=0.5)[0],
            "det2": gru_stack(params, xs, dropout_rate=0.5, key=jax.random.key(9))[0],
            "a": dropped(params, 1),
            "b": dropped(params, 1),
            "c": dropped(params, 2),
            "y1": gru(params[1][0], jnp.where(keep, y0 / 0.5, 0.0))[0],
            "one dropped": dropped(one, 1),
            "one": gru_stack(one, xs)[0],
        }

    out = run(params, one, xs)
    # Deterministic: the key and rate are ignored.
    np.testing.assert_array_equal(out["det"], out["det2"])
    a = out["a"]
    np.testing.assert_array_equal(a, out["b"])
    assert not np.allclose(a, out["det"]) and not np.allclose(a, out["c"])
    # Equal to running layer 1 on the dropped-out outputs of layer 0 (no dropout after the last).
    np.testing.assert_allclose(a, out["y1"], rtol=1e-12)
    # A single layer has nowhere to put dropout.
    np.testing.assert_array_equal(out["one dropped"], out["one"])


def test_stack_under_jit_and_grad(xs):
    params = init_gru_stack(jax.random.key(0), I, H, 2, bidirectional=True, dtype=jnp.float64)

    @jax.jit
    def loss(params, key):
        ys, h_n = gru_stack(
            params,
            xs,
            seq_lengths=jnp.array([6, 2, 0]),
            dropout_rate=0.1,
            deterministic=False,
            key=key,
        )
        return jnp.sum(ys**2) + jnp.sum(h_n)

    grads = jax.grad(loss)(params, jax.random.key(0))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


XS = np.zeros((B, T, I), np.float32)


@functools.cache
def good_stack():
    """Drawn on first use, not when the module is collected."""
    return init_gru_stack(jax.random.key(0), I, H, 2, bidirectional=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"h0": jnp.zeros((2, B, H))},
            ValueError,
            r"h0 must have shape \(L·D, \*B, H\) = \(4, 3, 4\); got \(2, 3, 4\)",
        ),
        (
            {"h0": jnp.zeros((4, B + 1, H))},
            ValueError,
            r"h0 must have shape .* = \(4, 3, 4\); got \(4, 4, 4\)",
        ),
        (
            {"h0": jnp.zeros((B, H))},
            ValueError,
            r"h0 must have shape .* = \(4, 3, 4\); got \(3, 4\)",
        ),
        (
            {"dropout_rate": 0.5, "deterministic": False},
            ValueError,
            "needs a PRNG key; got key=None",
        ),
        ({"dropout_rate": 1.0}, ValueError, r"dropout_rate must lie in \[0, 1\); got 1.0"),
        ({"dropout_rate": -0.1}, ValueError, r"dropout_rate must lie in \[0, 1\); got -0.1"),
        (
            {"xs": jnp.zeros((B, T, I + 1))},
            ValueError,
            r"xs must have shape .* with I = 2; got \(3, 6, 3\)",
        ),
        (
            {"xs": jnp.zeros((B, T, I), jnp.int8)},
            TypeError,
            "xs must have a floating-point dtype; got int8",
        ),
        (
            {"seq_lengths": jnp.array([1, 2])},
            ValueError,
            r"seq_lengths must have the batch shape of xs, \(3,\); got \(2,\)",
        ),
        (
            {"seq_lengths": np.array([1, 2, 7])},
            ValueError,
            r"seq_lengths must lie in \[0, T\] = \[0, 6\]",
        ),
    ],
)
def test_bad_inputs(kwargs, error, match):
    args = {"xs": XS} | kwargs
    xs, h0 = args.pop("xs"), args.pop("h0", None)
    with pytest.raises(error, match=match):
        gru_stack(good_stack(), xs, h0, **args)


def test_bad_stack_params():
    one_dir = init_gru_stack(jax.random.key(0), I, H, 2)
    with pytest.raises(TypeError, match="params must be a non-empty tuple of layers"):
        gru_stack((), XS)
    with pytest.raises(TypeError, match="params must be a non-empty tuple of layers"):
        gru_stack(one_dir[0][0], XS)
    with pytest.raises(
        ValueError,
        match=r"every layer must have 2 direction\(s\), as layer 0 has; params\[1\] has 1",
    ):
        gru_stack((good_stack()[0], one_dir[1]), XS)
    with pytest.raises(
        ValueError,
        match=r"params\[1\]\[0\] must map 8 inputs to 4 hidden features; got input_size=4",
    ):
        gru_stack((good_stack()[0], (one_dir[1][0], one_dir[1][0])), XS)
    wrong_h = init_gru(jax.random.key(0), 2 * H, H + 1)
    with pytest.raises(
        ValueError,
        match=r"params\[1\]\[1\] must map 8 inputs to 4 hidden features; got input_size=8, hidden_size=5",
    ):
        gru_stack((good_stack()[0], (good_stack()[1][0], wrong_h)), XS)
    with pytest.raises(ValueError, match="num_layers must be a positive int; got 0"):
        init_gru_stack(jax.random.key(0), I, H, 0)
