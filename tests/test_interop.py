"""gru_jax.interop against the real peers: torch, Flax linen and NNX, Keras (JAX backend), Haiku
and Equinox, plus the safe weight files.

Every peer gets random non-zero biases everywhere. Imports check that the peer's outputs (and
final states) agree with gru_jax's to 1e-5 in float32; exports check that the exported weights,
loaded into the peer itself, reproduce gru_jax's outputs, and that importing them back from the
peer gives the original parameters (up to the exact folding of biases the peer cannot hold
separately). Each peer is skipped, not failed, where it is not installed.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import functools
import re
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax import GRUParams, gru, gru_cell, gru_stack, init_gru, init_gru_stack, interop

# Keras's own get_weights() trips NumPy 2's __array__(copy=...) deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

ATOL = 1e-5
B, T, I, H = 3, 5, 3, 4
LENGTHS = np.array([5, 2, 4])  # unsorted on purpose


def rand_params(seed, input_size=I, hidden=H, reset_after=True, dtype=np.float32):
    rng = np.random.default_rng(seed)

    def u(*shape):
        return jnp.asarray(rng.uniform(-0.8, 0.8, shape).astype(dtype))

    return GRUParams(
        w_x=u(input_size, 3 * hidden),
        w_h=u(hidden, 3 * hidden),
        b_x=u(3 * hidden),
        b_h=u(3 * hidden),
        reset_after=reset_after,
    )


def rand_stack(seed, num_layers, num_dirs, input_size=I, hidden=H):
    return tuple(
        tuple(
            rand_params(seed + 10 * layer + d, input_size if layer == 0 else num_dirs * hidden)
            for d in range(num_dirs)
        )
        for layer in range(num_layers)
    )


def canonical(p):
    """The same function with every foldable recurrent bias moved into ``b_x``."""
    n = 2 * p.hidden_size if p.reset_after else 3 * p.hidden_size
    b_x = p.b_x.at[:n].add(p.b_h[:n])
    return p.replace(b_x=b_x, b_h=p.b_h.at[:n].set(0))


def assert_params_equal(a, b, exact=False):
    assert isinstance(a, GRUParams) and isinstance(b, GRUParams)
    assert a.reset_after == b.reset_after
    for field in ("w_x", "w_h", "b_x", "b_h"):
        x, y = np.asarray(getattr(a, field)), np.asarray(getattr(b, field))
        assert x.shape == y.shape and x.dtype == y.dtype, field
        if exact:
            np.testing.assert_array_equal(x, y, err_msg=field)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7, err_msg=field)


def inputs(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# Jitted once for the module: eager calls would compile their scans again at every call.
gru_j = jax.jit(gru)
gru_stack_j = jax.jit(gru_stack)


# ------------------------------------------------------------------------------------------------
# torch
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def torch_gru(torch, num_layers, bidirectional, bias=True, batch_first=True, seed=0):
    torch.manual_seed(seed)
    g = torch.nn.GRU(I, H, num_layers, bias=bias, batch_first=batch_first,
                     bidirectional=bidirectional)  # fmt: skip
    with torch.no_grad():
        for p in g.parameters():
            p.uniform_(-0.8, 0.8)  # random biases too, not torch's default init
    return g


@pytest.mark.parametrize(
    "num_layers, bidirectional, bias, batch_first",
    [(2, True, True, True), (3, False, True, False), (1, True, False, True)],
)
def test_from_torch_matches_torch(torch, num_layers, bidirectional, bias, batch_first):
    g = torch_gru(torch, num_layers, bidirectional, bias, batch_first)
    params = interop.from_torch(g.state_dict())
    num_dirs = 2 if bidirectional else 1
    assert len(params) == num_layers and all(len(ps) == num_dirs for ps in params)
    assert all(p.reset_after for ps in params for p in ps)

    x, h0 = inputs(1, B, T, I), inputs(2, num_layers * num_dirs, B, H)
    x_torch = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2).copy())
    with torch.no_grad():
        ys_t, hn_t = g(x_torch, torch.from_numpy(h0))
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x_torch, torch.from_numpy(LENGTHS), batch_first=batch_first, enforce_sorted=False
        )
        ys_p, hn_p = g(packed, torch.from_numpy(h0))
        ys_p, _ = torch.nn.utils.rnn.pad_packed_sequence(
            ys_p, batch_first=batch_first, total_length=T
        )
    if not batch_first:
        ys_t, ys_p = ys_t.transpose(0, 1), ys_p.transpose(0, 1)

    ys, hn = gru_stack_j(params, x, h0)
    np.testing.assert_allclose(ys, ys_t.numpy(), atol=ATOL)
    np.testing.assert_allclose(hn, hn_t.numpy(), atol=ATOL)
    # Packed sequences, unsorted lengths: padding ignored, h_n the state at each last valid step.
    ys, hn = gru_stack_j(params, x, h0, seq_lengths=LENGTHS)
    np.testing.assert_allclose(ys, ys_p.numpy(), atol=ATOL)
    np.testing.assert_allclose(hn, hn_p.numpy(), atol=ATOL)

    # And back: to_torch gives torch its own state dict, bit for bit.
    back = interop.to_torch(params, bias=bias)
    assert list(back) == list(g.state_dict())
    for key, value in g.state_dict().items():
        np.testing.assert_array_equal(back[key], value.numpy(), err_msg=key)


def test_to_torch_round_trips_through_torch(torch):
    params = rand_stack(0, num_layers=2, num_dirs=2)
    g = torch.nn.GRU(I, H, 2, batch_first=True, bidirectional=True)
    g.load_state_dict(interop.to_torch(params, as_tensors=True))  # strict: every key, no extra
    x, h0 = inputs(3, B, T, I), inputs(4, 4, B, H)
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            torch.from_numpy(x), torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False
        )
        ys_p, hn_p = g(packed, torch.from_numpy(h0))
        ys_p, _ = torch.nn.utils.rnn.pad_packed_sequence(ys_p, batch_first=True, total_length=T)
    ys, hn = gru_stack_j(params, x, h0, seq_lengths=LENGTHS)
    np.testing.assert_allclose(ys, ys_p.numpy(), atol=ATOL)
    np.testing.assert_allclose(hn, hn_p.numpy(), atol=ATOL)
    back = interop.from_torch(g.state_dict())
    for ps, qs in zip(params, back, strict=True):
        for p, q in zip(ps, qs, strict=True):
            assert_params_equal(p, q, exact=True)  # negating z twice and transposing is exact


def test_to_torch_numpy_values_and_single_cell(torch):
    p = rand_params(5)
    sd = interop.to_torch(p)
    assert all(type(v) is np.ndarray and v.flags.writeable for v in sd.values())
    g = torch.nn.GRU(I, H)
    g.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = inputs(6, T, I)  # unbatched, time first
    with torch.no_grad():
        ys_t, _ = g(torch.from_numpy(x))
    np.testing.assert_allclose(gru_j(p, x)[0], ys_t.numpy(), atol=ATOL)


def test_from_torch_file_with_prefix_and_weights_only(torch, tmp_path):
    model = torch.nn.Module()
    model.embed = torch.nn.Linear(2, I)
    model.rnn = torch_gru(torch, 2, False)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    state = torch.load(path, weights_only=True)
    params = interop.from_torch(state, prefix="rnn.")
    assert len(params) == 2
    x = inputs(7, B, T, I)
    with torch.no_grad():
        ys_t, _ = model.rnn(torch.from_numpy(x))
    np.testing.assert_allclose(gru_stack_j(params, x)[0], ys_t.numpy(), atol=ATOL)
    out = interop.to_torch(params, prefix="rnn.")
    assert set(out) == {k for k in state if k.startswith("rnn.")}


def test_torch_bfloat16_and_array_values(torch):
    g = torch_gru(torch, 1, True).to(torch.bfloat16)
    params = interop.from_torch(g.state_dict())
    assert params[0][1].w_x.dtype == jnp.bfloat16
    back = interop.to_torch(params, as_tensors=True)
    for key, value in g.state_dict().items():
        assert back[key].dtype == torch.bfloat16
        assert torch.equal(back[key], value), key
    # NumPy and JAX arrays are accepted as values too.
    sd = {k: v.float().numpy() for k, v in g.state_dict().items()}
    sd["weight_hh_l0"] = jnp.asarray(sd["weight_hh_l0"])
    assert interop.from_torch(sd)[0][0].w_x.dtype == jnp.float32


@functools.cache
def _good_state_dict():
    return interop.to_torch(init_gru_stack(jax.random.key(0), I, H, 2, reset_after=True))


def good_state_dict():
    return dict(_good_state_dict())  # a fresh dict of the same (never mutated) arrays


@pytest.mark.parametrize(
    "edit, error, match",
    [
        (lambda sd: sd.pop("bias_hh_l1"), ValueError, r"missing keys \['bias_hh_l1'\]"),
        (lambda sd: sd.pop("weight_hh_l0"), ValueError, r"missing keys \['weight_hh_l0'\]"),
        (lambda sd: sd.update(extra=np.zeros(3)), ValueError, r"unexpected keys \['extra'\]"),
        (
            lambda sd: sd.update(weight_ih_l3=np.zeros((12, 4))),
            ValueError,
            r"missing keys \['weight_ih_l2', 'weight_hh_l2', .*\(a 4-layer GRU was inferred",
        ),
        (
            lambda sd: sd.update(weight_ih_l0=np.zeros((12, 5, 1))),
            ValueError,
            r"state_dict\['weight_ih_l0'\] must have shape \(3H, I\) = \(12, I\); got \(12, 5, 1\)",
        ),
        (
            lambda sd: sd.update(weight_ih_l1=np.zeros((12, 5))),
            ValueError,
            r"state_dict\['weight_ih_l1'\] must have shape \(3H, D·H\) = \(12, 4\); got \(12, 5\)",
        ),
        (
            lambda sd: sd.update(weight_hh_l1=np.zeros((15, 5))),
            ValueError,
            r"state_dict\['weight_hh_l1'\] must have shape \(3H, H\) = \(12, 4\); got \(15, 5\)",
        ),
        (
            lambda sd: sd.update(weight_hh_l0=np.zeros((12, 5))),
            ValueError,
            r"state_dict\['weight_hh_l0'\] must have shape \(3H, H\); got \(12, 5\)",
        ),
        (
            lambda sd: sd.update(bias_ih_l0=np.zeros(13)),
            ValueError,
            r"state_dict\['bias_ih_l0'\] must have shape \(3H,\) = \(12,\); got \(13,\)",
        ),
        (
            lambda sd: sd.update(bias_ih_l0=[0.0] * 12),
            TypeError,
            r"state_dict\['bias_ih_l0'\] must be a torch tensor or a NumPy/JAX array; got list",
        ),
        (
            lambda sd: sd.update(bias_ih_l0=np.zeros(12, np.int32)),
            TypeError,
            r"state_dict\['bias_ih_l0'\] must have a floating-point dtype; got int32",
        ),
        (
            lambda sd: sd.update(weight_hh_l0_reverse=np.zeros((12, 4))),
            ValueError,
            r"missing keys \['weight_ih_l0_reverse'",
        ),
    ],
)
def test_from_torch_bad_state_dicts(edit, error, match):
    sd = good_state_dict()
    edit(sd)
    with pytest.raises(error, match=match):
        interop.from_torch(sd)


def test_from_torch_bad_arguments(torch):
    with pytest.raises(TypeError, match=r"got a GRU module: pass module.state_dict\(\)"):
        interop.from_torch(torch.nn.GRU(I, H))
    with pytest.raises(TypeError, match=r"must be a mapping of tensors; got list"):
        interop.from_torch([np.zeros(3)])
    with pytest.raises(ValueError, match=r"no torch.nn.GRU keys starting with 'gru.'"):
        interop.from_torch(good_state_dict(), prefix="gru.")
    with pytest.raises(ValueError, match=r"no torch.nn.GRU keys"):
        interop.from_torch({})


def test_to_torch_refuses_reset_before():
    with pytest.raises(
        ValueError,
        match=r"to_torch: torch.nn.GRU is a reset_after=True GRU only.*params\[0\]\[0\] has reset_after=False.*no exact conversion",
    ):
        interop.to_torch(init_gru_stack(jax.random.key(0), I, H, bidirectional=True))
    with pytest.raises(
        ValueError, match=r"to_torch: bias=False, but params\[0\]\[0\].b_x or .b_h is non-zero"
    ):
        interop.to_torch(rand_params(0), bias=False)
    with pytest.raises(TypeError, match=r"to_torch: params must be a non-empty tuple"):
        interop.to_torch({"w": np.zeros(3)})


# ------------------------------------------------------------------------------------------------
# Flax linen and NNX
# ------------------------------------------------------------------------------------------------


def linen_rnn_apply(cell_params, x, h0):
    import flax.linen as nn

    rnn = nn.RNN(nn.GRUCell(features=H), return_carry=True)
    h, ys = rnn.apply({"params": {"cell": cell_params}}, x, initial_carry=h0)
    return ys, h


def test_from_flax_linen_matches_linen():
    import flax.linen as nn

    variables = nn.RNN(nn.GRUCell(features=H)).init(
        jax.random.key(0), jnp.ones((B, T, I), jnp.float32)
    )
    keys = iter(jax.random.split(jax.random.key(1), 12))
    cell_params = jax.tree.map(
        lambda a: jax.random.uniform(next(keys), a.shape, a.dtype, -0.8, 0.8),
        variables["params"]["cell"],
    )
    p = interop.from_flax_linen(cell_params)
    assert p.reset_after and p.w_x.shape == (I, 3 * H)
    x, h0 = inputs(1, B, T, I), inputs(2, B, H)
    ys_l, h_l = linen_rnn_apply(cell_params, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys, ys_l, atol=ATOL)
    np.testing.assert_allclose(h, h_l, atol=ATOL)
    # The {"params": ...} wrapper is unwrapped, and the conversion traces under jit.
    q = jax.jit(interop.from_flax_linen)({"params": cell_params})
    assert_params_equal(p, q, exact=True)


def test_to_flax_linen_round_trips_through_linen():
    p = rand_params(0)
    exported = interop.to_flax_linen(p)
    x, h0 = inputs(3, B, T, I), inputs(4, B, H)
    ys_l, h_l = linen_rnn_apply(exported, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys_l, ys, atol=ATOL)
    np.testing.assert_allclose(h_l, h, atol=ATOL)
    assert_params_equal(interop.from_flax_linen(exported), canonical(p))
    with pytest.raises(ValueError, match=r"flax.linen.GRUCell is a reset_after=True GRU only"):
        interop.to_flax_linen(rand_params(0, reset_after=False))


def test_from_flax_linen_bad_input():
    good = interop.to_flax_linen(rand_params(0))
    with pytest.raises(
        ValueError, match=r"cell_params must have exactly the keys .*missing \['hn'\]"
    ):
        interop.from_flax_linen({k: v for k, v in good.items() if k != "hn"})
    with pytest.raises(
        ValueError,
        match=r"cell_params\['hr'\] must have exactly the keys \['kernel'\]; unexpected \['bias'\]",
    ):
        interop.from_flax_linen({**good, "hr": {**good["hr"], "bias": jnp.zeros(H)}})
    with pytest.raises(
        ValueError,
        match=r"cell_params\['in'\]\['kernel'\] must have shape \(I, H\) = \(3, 4\); got \(2, 4\)",
    ):
        interop.from_flax_linen({**good, "in": {**good["in"], "kernel": jnp.zeros((2, H))}})
    with pytest.raises(TypeError, match=r"cell_params must be a dict"):
        interop.from_flax_linen([1, 2])


def nnx_run(cell, x, h0):
    ys, h = [], jnp.asarray(h0)
    for t in range(x.shape[1]):
        h, _ = cell(h, jnp.asarray(x[:, t]))
        ys.append(h)
    return jnp.stack(ys, axis=1), h


def test_from_flax_nnx_matches_nnx():
    from flax import nnx

    cell = nnx.GRUCell(I, H, rngs=nnx.Rngs(0))
    cell.dense_i.bias[...] = jnp.asarray(inputs(9, 3 * H))  # NNX initialises biases to zero
    p = interop.from_flax_nnx(cell)
    assert p.reset_after and not np.any(np.asarray(p.b_h))
    x, h0 = inputs(1, B, T, I), inputs(2, B, H)
    ys_n, h_n = nnx_run(cell, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys, ys_n, atol=ATOL)
    np.testing.assert_allclose(h, h_n, atol=ATOL)


def test_to_flax_nnx_round_trips_and_refuses_b_hn():
    from flax import nnx

    p = rand_params(0)
    p = p.replace(b_h=p.b_h.at[2 * H :].set(0))  # b_hr, b_hz stay non-zero: they fold exactly
    cell = interop.to_flax_nnx(p)
    x, h0 = inputs(3, B, T, I), inputs(4, B, H)
    ys_n, h_n = nnx_run(cell, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys_n, ys, atol=ATOL)
    np.testing.assert_allclose(h_n, h, atol=ATOL)
    assert_params_equal(interop.from_flax_nnx(cell), canonical(p))
    # In place, into an existing cell (e.g. one inside a larger model).
    target = nnx.GRUCell(I, H, rngs=nnx.Rngs(5))
    assert interop.to_flax_nnx(p, target) is target
    assert_params_equal(interop.from_flax_nnx(target), canonical(p))

    with pytest.raises(
        ValueError,
        match=r"to_flax_nnx: flax.nnx.GRUCell has no recurrent bias, and params.b_h\[2H:\] \(b_hn.*\) is non-zero.*to_flax_linen",
    ):
        interop.to_flax_nnx(rand_params(0))
    with pytest.raises(ValueError, match=r"flax.nnx.GRUCell is a reset_after=True GRU only"):
        interop.to_flax_nnx(init_gru(jax.random.key(0), I, H))
    with pytest.raises(
        ValueError, match=r"cell maps 3 inputs to 5 hidden features; params map 3 to 4"
    ):
        interop.to_flax_nnx(p, nnx.GRUCell(I, 5, rngs=nnx.Rngs(0)))
    with pytest.raises(
        TypeError,
        match=r"from_flax_nnx: cell has no attribute 'dense_i'; expected a flax.nnx.GRUCell",
    ):
        interop.from_flax_nnx({"dense_i": None})


# ------------------------------------------------------------------------------------------------
# Keras
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"Keras backend is {keras.backend.backend()}, not jax")
    return keras


def keras_layer(keras, reset_after, use_bias=True):
    layer = keras.layers.GRU(H, return_sequences=True, return_state=True,
                             reset_after=reset_after, use_bias=use_bias)  # fmt: skip
    layer.build((B, T, I))
    return layer


def keras_run(layer, x, h0):
    # Keras 3.15's GRU with use_bias=False fails under jax_enable_x64 (which conftest turns on):
    # its scan carry turns float64. Its float32 arithmetic is what we compare against anyway.
    with jax.enable_x64(False):
        ys, h = layer(x, initial_state=[h0])
    return np.asarray(ys), np.asarray(h)


@pytest.mark.parametrize("reset_after", [True, False])
def test_from_keras_matches_keras(keras, reset_after):
    layer = keras_layer(keras, reset_after)
    rng = np.random.default_rng(0)
    layer.set_weights(
        [rng.uniform(-0.8, 0.8, w.shape).astype(np.float32) for w in layer.get_weights()]
    )
    p = interop.from_keras(layer.get_weights(), reset_after=reset_after)
    assert p.reset_after is reset_after
    x, h0 = inputs(1, B, T, I), inputs(2, B, H)
    ys_k, h_k = keras_run(layer, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys, ys_k, atol=ATOL)
    np.testing.assert_allclose(h, h_k, atol=ATOL)


@pytest.mark.parametrize("reset_after", [True, False])
def test_to_keras_round_trips_through_keras(keras, reset_after):
    p = rand_params(0, reset_after=reset_after)
    layer = keras_layer(keras, reset_after)
    layer.set_weights(interop.to_keras(p))
    x, h0 = inputs(3, B, T, I), inputs(4, B, H)
    ys_k, h_k = keras_run(layer, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys_k, ys, atol=ATOL)
    np.testing.assert_allclose(h_k, h, atol=ATOL)
    back = interop.from_keras(layer.get_weights(), reset_after=reset_after)
    assert_params_equal(back, p if reset_after else canonical(p))


def test_keras_without_bias(keras):
    p = rand_params(0).replace(b_x=jnp.zeros(3 * H, jnp.float32), b_h=jnp.zeros(3 * H, jnp.float32))
    layer = keras_layer(keras, True, use_bias=False)
    layer.set_weights(interop.to_keras(p, use_bias=False))
    assert len(layer.get_weights()) == 2
    x, h0 = inputs(3, B, T, I), inputs(4, B, H)
    np.testing.assert_allclose(keras_run(layer, x, h0)[0], gru_j(p, x, h0)[0], atol=ATOL)
    assert_params_equal(interop.from_keras(layer.get_weights(), reset_after=True), p)
    with pytest.raises(
        ValueError, match=r"use_bias=False, but params.b_x or params.b_h is non-zero"
    ):
        interop.to_keras(rand_params(0), use_bias=False)


def test_from_keras_bad_input():
    w = interop.to_keras(rand_params(0, reset_after=True))
    with pytest.raises(
        ValueError,
        match=r"weights\[2\] \(bias\) must have shape \(3U,\) = \(12,\) for reset_after=False; got \(2, 12\), the layout of reset_after=True",
    ):
        interop.from_keras(w, reset_after=False)
    with pytest.raises(ValueError, match=r"weights must hold 3 arrays .*; got 4"):
        interop.from_keras([*w, w[2]], reset_after=True)
    with pytest.raises(
        ValueError,
        match=r"weights\[0\] \(kernel\) must have shape \(I, 3U\) = \(I, 12\); got \(3, 9\)",
    ):
        interop.from_keras([w[0][:, :9], w[1], w[2]], reset_after=True)
    with pytest.raises(
        ValueError,
        match=r"weights\[1\] \(recurrent_kernel\) must have shape \(U, 3U\); got \(4, 9\)",
    ):
        interop.from_keras([w[0], w[1][:, :9], w[2]], reset_after=True)
    with pytest.raises(TypeError, match=r"reset_after must be a bool; got NoneType"):
        interop.from_keras(w, reset_after=None)
    with pytest.raises(TypeError, match=r"weights must be the list"):
        interop.from_keras({"kernel": w[0]}, reset_after=True)


# ------------------------------------------------------------------------------------------------
# Haiku
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hk():
    return pytest.importorskip("haiku")


def haiku_run(hk, hk_params, x, h0):
    def f(x, h0):
        return hk.dynamic_unroll(hk.GRU(H), x, h0, time_major=False)

    return hk.without_apply_rng(hk.transform(f)).apply(hk_params, x, h0)


def test_from_haiku_matches_haiku(hk):
    x, h0 = inputs(1, B, T, I), inputs(2, B, H)
    hk_params = hk.without_apply_rng(
        hk.transform(lambda x, h0: hk.dynamic_unroll(hk.GRU(H), x, h0, time_major=False))
    ).init(jax.random.key(0), x, h0)
    keys = iter(jax.random.split(jax.random.key(1), 3))
    hk_params = jax.tree.map(
        lambda a: jax.random.uniform(next(keys), a.shape, a.dtype, -0.8, 0.8), hk_params
    )
    p = interop.from_haiku(hk_params["gru"])
    assert not p.reset_after
    ys_h, h_h = haiku_run(hk, hk_params, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys, ys_h, atol=ATOL)
    np.testing.assert_allclose(h, h_h, atol=ATOL)
    assert_params_equal(interop.from_haiku(hk_params), p, exact=True)  # one module: unwrapped


def test_to_haiku_round_trips_through_haiku(hk):
    p = rand_params(0, reset_after=False)
    hk_params = {"gru": interop.to_haiku(p)}
    x, h0 = inputs(3, B, T, I), inputs(4, B, H)
    ys_h, h_h = haiku_run(hk, hk_params, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys_h, ys, atol=ATOL)
    np.testing.assert_allclose(h_h, h, atol=ATOL)
    assert_params_equal(interop.from_haiku(hk_params["gru"]), canonical(p))


def test_haiku_bad_input():
    with pytest.raises(
        ValueError,
        match=r"haiku hk.GRU is a reset_after=False GRU only, and params has reset_after=True",
    ):
        interop.to_haiku(rand_params(0, reset_after=True))
    good = interop.to_haiku(rand_params(0, reset_after=False))
    with pytest.raises(
        ValueError,
        match=r"params must have exactly the keys \['b', 'w_h', 'w_i'\]; missing \['b'\]",
    ):
        interop.from_haiku({"w_i": good["w_i"], "w_h": good["w_h"]})
    with pytest.raises(
        ValueError, match=r"params\['b'\] must have shape \(3H,\) = \(12,\); got \(2, 12\)"
    ):
        interop.from_haiku({**good, "b": jnp.zeros((2, 12))})
    with pytest.raises(
        ValueError, match=r"from_haiku: params\['w_h'\] must have shape \(H, 3H\); got \(4, 9\)"
    ):
        interop.from_haiku({**good, "w_h": jnp.zeros((4, 9))})
    with pytest.raises(
        ValueError,
        match=r"from_haiku: params\['w_i'\] must have shape \(I, 3H\) = \(I, 12\); got \(3, 9\)",
    ):
        interop.from_haiku({**good, "w_i": jnp.zeros((3, 9))})


# ------------------------------------------------------------------------------------------------
# Equinox
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eqx():
    return pytest.importorskip("equinox")


def equinox_run(cell, x, h0):
    def one(xs, h):
        def step(h, x):
            h = cell(x, h)
            return h, h

        h, ys = jax.lax.scan(step, h, xs)
        return ys, h

    return jax.vmap(one)(jnp.asarray(x), jnp.asarray(h0))


def test_from_equinox_matches_equinox(eqx):
    cell = eqx.nn.GRUCell(
        I, H, dtype=jnp.float32, key=jax.random.key(0)
    )  # uniform init: biases non-zero
    assert np.all(np.asarray(cell.bias) != 0) and np.all(np.asarray(cell.bias_n) != 0)
    p = interop.from_equinox(cell)
    assert p.reset_after
    x, h0 = inputs(1, B, T, I), inputs(2, B, H)
    ys_e, h_e = equinox_run(cell, x, h0)
    ys, h = gru_j(p, x, h0)
    np.testing.assert_allclose(ys, ys_e, atol=ATOL)
    np.testing.assert_allclose(h, h_e, atol=ATOL)


def test_to_equinox_round_trips_through_equinox(eqx):
    p = rand_params(0)
    template = eqx.nn.GRUCell(I, H, dtype=jnp.float32, key=jax.random.key(1))
    for cell in (interop.to_equinox(p), interop.to_equinox(p, template)):
        x, h0 = inputs(3, B, T, I), inputs(4, B, H)
        ys_e, h_e = equinox_run(cell, x, h0)
        ys, h = gru_j(p, x, h0)
        np.testing.assert_allclose(ys_e, ys, atol=ATOL)
        np.testing.assert_allclose(h_e, h, atol=ATOL)
        assert_params_equal(interop.from_equinox(cell), canonical(p))
    assert not np.array_equal(template.weight_ih, interop.to_equinox(p).weight_ih)  # not mutated


def test_equinox_without_bias_and_bad_input(eqx):
    no_bias = eqx.nn.GRUCell(I, H, use_bias=False, dtype=jnp.float32, key=jax.random.key(0))
    p = interop.from_equinox(no_bias)
    assert not np.any(np.asarray(p.b_x)) and not np.any(np.asarray(p.b_h))
    cell = interop.to_equinox(p, no_bias)
    assert cell.bias is None
    np.testing.assert_allclose(gru_cell(p, jnp.ones(H), jnp.ones(I)),
                               cell(jnp.ones(I), jnp.ones(H)), atol=ATOL)  # fmt: skip
    with pytest.raises(
        ValueError, match=r"cell has use_bias=False, but params.b_x or params.b_h is non-zero"
    ):
        interop.to_equinox(rand_params(0), no_bias)
    with pytest.raises(ValueError, match=r"equinox.nn.GRUCell is a reset_after=True GRU only"):
        interop.to_equinox(rand_params(0, reset_after=False))
    with pytest.raises(
        ValueError, match=r"cell maps 3 inputs to 4 hidden features; params map 2 to 4"
    ):
        interop.to_equinox(rand_params(0, input_size=2), no_bias)
    with pytest.raises(TypeError, match=r"cell must be an equinox.nn.GRUCell .*got int"):
        interop.from_equinox(3)
    full = eqx.nn.GRUCell(I, H, key=jax.random.key(0))
    with pytest.raises(
        ValueError, match=r"from_equinox: cell.weight_hh must have shape \(3H, H\); got \(12, 5\)"
    ):
        interop.from_equinox(eqx.tree_at(lambda c: c.weight_hh, full, jnp.zeros((12, 5))))
    with pytest.raises(
        ValueError,
        match=r"from_equinox: cell.weight_ih must have shape \(3H, I\) = \(12, I\); got \(9, 3\)",
    ):
        interop.from_equinox(eqx.tree_at(lambda c: c.weight_ih, full, jnp.zeros((9, 3))))


# ------------------------------------------------------------------------------------------------
# Safe weight files
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16, jnp.float16])
def test_save_load_stack_every_dtype(tmp_path, dtype):
    stack = init_gru_stack(jax.random.key(0), I, H, num_layers=2, bidirectional=True, dtype=dtype)
    stack = ((stack[0][0], stack[0][1].replace(reset_after=True)), stack[1])  # mixed variants
    path = tmp_path / "stack.npz"
    interop.save_params(path, stack)
    back = interop.load_params(path)
    assert type(back) is tuple and all(type(ps) is tuple for ps in back)
    assert [len(ps) for ps in back] == [2, 2]
    for ps, qs in zip(stack, back, strict=True):
        for p, q in zip(ps, qs, strict=True):
            assert_params_equal(p, q, exact=True)
    # Every member loads without pickle: nothing in the file is an object array.
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


def test_save_load_single_cell(tmp_path):
    p = rand_params(0, reset_after=False)
    interop.save_params(str(tmp_path / "cell.weights"), p)  # path used as given, no suffix added
    assert os.listdir(tmp_path) == ["cell.weights"]
    q = interop.load_params(str(tmp_path / "cell.weights"))
    assert_params_equal(p, q, exact=True)
    assert isinstance(q.w_x, jax.Array)


def _bad(path):
    return pytest.raises(
        ValueError, match=re.escape(f"load_params: '{path}' is not a valid gru_jax params file")
    )


def test_load_rejects_truncated_and_foreign_files(tmp_path, torch):
    good = tmp_path / "good.npz"
    interop.save_params(good, rand_params(0))
    data = good.read_bytes()
    for n, cut in enumerate([len(data) // 2, len(data) - 10, 4]):
        path = tmp_path / f"cut{n}.npz"
        path.write_bytes(data[:cut])
        with _bad(path):
            interop.load_params(path)

    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"it is not an .npz"):
        interop.load_params(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, w=np.zeros(3))
    with pytest.raises(ValueError, match=r"has no '__gru_jax__' header"):
        interop.load_params(foreign)
    pt = tmp_path / "model.pt"
    torch.save(torch.nn.GRU(I, H).state_dict(), pt)  # a zip too, with a pickle inside
    with pytest.raises(ValueError, match=r"has no '__gru_jax__' header"):
        interop.load_params(pt)
    with pytest.raises(FileNotFoundError):
        interop.load_params(tmp_path / "missing.npz")


def test_load_rejects_pickled_and_tampered_members(tmp_path):
    good = tmp_path / "good.npz"
    interop.save_params(good, rand_params(0))
    with np.load(good) as npz:
        members = {name: npz[name] for name in npz.files}

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**members, "cell.w_x": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(ValueError, match=r"object array, which would need pickle"):
        interop.load_params(pickled)

    reshaped = tmp_path / "reshaped.npz"
    np.savez(reshaped, **{**members, "cell.w_x": np.zeros((2, 12), np.float32)})
    with pytest.raises(
        ValueError, match=r"array 'cell.w_x' is float32\[2, 12\]; the header says float32\[3, 12\]"
    ):
        interop.load_params(reshaped)

    extra = tmp_path / "extra.npz"
    np.savez(extra, **members, more=np.zeros(2))
    with pytest.raises(ValueError, match=r"unexpected arrays \['more'\]"):
        interop.load_params(extra)

    broken = tmp_path / "broken.npz"
    np.savez(broken, **{**members, "__gru_jax__": np.frombuffer(b"{not json", np.uint8)})
    with pytest.raises(ValueError, match=r"its header is malformed"):
        interop.load_params(broken)

    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with _bad(tmp_path / "empty.npz"):
        interop.load_params(tmp_path / "empty.npz")


def test_save_rejects_non_params(tmp_path):
    with pytest.raises(TypeError, match=r"save_params: params must be a non-empty tuple of layers"):
        interop.save_params(tmp_path / "x.npz", {"w_x": np.zeros((3, 12))})
    with pytest.raises(ValueError, match=r"save_params: params.w_x must have shape \(I, 3H\)"):
        interop.save_params(tmp_path / "x.npz", rand_params(0).replace(w_x=jnp.zeros((3, 5))))
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------------------------------------
# Variants, and importing without the peers
# ------------------------------------------------------------------------------------------------


def test_variant_errors_explain_why():
    with pytest.raises(ValueError) as info:
        interop.to_torch(rand_params(0, reset_after=False))
    message = str(info.value)
    assert "where the reset gate r is applied" in message and "no exact conversion" in message


def test_interop_imports_and_works_without_peers(tmp_path):
    code = f"""
import sys
for name in ("torch", "keras", "haiku", "equinox", "tensorflow"):
    sys.modules[name] = None  # any import of them now fails
import jax, numpy as np
from gru_jax import init_gru_stack, interop
stack = init_gru_stack(jax.random.key(0), 3, 4, bidirectional=True, reset_after=True)
back = interop.from_torch(interop.to_torch(stack))
assert bool((back[0][1].w_h == stack[0][1].w_h).all())
interop.save_params({str(tmp_path / "s.npz")!r}, stack)
interop.load_params({str(tmp_path / "s.npz")!r})
interop.from_keras(interop.to_keras(stack[0][0]), reset_after=True)
interop.from_haiku(interop.to_haiku(stack[0][0].replace(reset_after=False)))
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
