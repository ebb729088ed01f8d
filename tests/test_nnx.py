"""gru_jax.nnx: the cell in flax.nnx.RNN, the GRU layer, modes, training, Orbax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from helpers import STEPS, TARGET_LOSS, parity_batch, randomize

from gru_jax import GRUParams, gru, gru_cell, gru_stack, init_gru, init_gru_stack
from gru_jax.nnx import GRU, GRUCell, params_to_tree, tree_to_params

B, T, I, H = 3, 6, 2, 4
LENGTHS = jnp.array([6, 3, 1])


@pytest.fixture(scope="module")
def xs():
    return jax.random.normal(jax.random.key(1), (B, T, I), jnp.float32)


def random_stack(num_layers, bidirectional, reset_after):
    """A stack whose every leaf (biases included) is random."""
    stack = init_gru_stack(
        jax.random.key(5), I, H, num_layers, bidirectional=bidirectional, reset_after=reset_after
    )
    return randomize(stack, jax.random.key(6))


@pytest.mark.parametrize("reset_after", [False, True])
def test_cell_equals_gru_cell_and_params_round_trip(reset_after, xs):
    cell = GRUCell(I, H, reset_after=reset_after, rngs=nnx.Rngs(0))
    params = random_stack(1, False, reset_after)[0][0]
    cell.load_gru_params(params)
    tree = nnx.to_pure_dict(nnx.state(cell, nnx.Param))
    assert jax.tree.map(jnp.shape, tree) == {
        "w_x": (I, 3 * H),
        "w_h": (H, 3 * H),
        "b_x": (3 * H,),
        "b_h": (3 * H,),
    }
    np.testing.assert_array_equal(tree_to_params(tree, reset_after=reset_after).w_h, params.w_h)
    h0 = jnp.full((B, H), 0.3, jnp.float32)
    new_carry, y = cell(h0, xs[:, 0])
    np.testing.assert_array_equal(new_carry, y)
    np.testing.assert_array_equal(new_carry, gru_cell(params, h0, xs[:, 0]))
    assert cell.initialize_carry((B, I)).shape == (B, H)
    assert cell.num_feature_axes == 1


def test_init_matches_init_gru_distributions():
    cell = GRUCell(I, 16, rngs=nnx.Rngs(0))
    w_h = np.asarray(cell.gru_params.w_h)
    for g in range(3):
        block = w_h[:, 16 * g : 16 * (g + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(16), atol=1e-5)
    np.testing.assert_array_equal(cell.gru_params.b_x, 0.0)


@pytest.mark.parametrize("reset_after", [False, True])
def test_cell_in_nnx_rnn(reset_after, xs):
    cell = GRUCell(I, H, reset_after=reset_after, rngs=nnx.Rngs(0))
    params = random_stack(1, False, reset_after)[0][0]
    cell.load_gru_params(params)
    rnn = nnx.RNN(cell, return_carry=True)
    h0 = 0.1 * jnp.ones((B, H), jnp.float32)
    carry, ys = rnn(xs, initial_carry=h0, seq_lengths=LENGTHS)
    ys_ref, h_ref = gru(params, xs, h0, seq_lengths=LENGTHS)
    np.testing.assert_allclose(carry, h_ref, rtol=1e-6, atol=1e-6)
    valid = (jnp.arange(T) < LENGTHS[:, None])[..., None]
    np.testing.assert_allclose(jnp.where(valid, ys, 0), ys_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True)])
def test_gru_layer_equals_gru_stack(num_layers, bidirectional, xs):
    layer = GRU(
        I,
        H,
        num_layers=num_layers,
        bidirectional=bidirectional,
        reset_after=True,
        return_carry=True,
        rngs=nnx.Rngs(0),
    )
    stack = random_stack(num_layers, bidirectional, True)
    layer.load_gru_params(stack)
    tree = nnx.to_pure_dict(nnx.state(layer, nnx.Param))
    assert jax.tree.structure(tree) == jax.tree.structure(params_to_tree(stack))
    h0 = 0.2 * jnp.ones((num_layers * len(stack[0]), B, H), jnp.float32)
    (ys, h_n), (ys_ref, h_ref) = nnx.jit(
        lambda layer, stack, xs, h0: (
            layer(xs, seq_lengths=LENGTHS, initial_carry=h0),
            gru_stack(stack, xs, h0, seq_lengths=LENGTHS),
        )
    )(layer, stack, xs, h0)
    np.testing.assert_array_equal(ys, ys_ref)
    np.testing.assert_array_equal(h_n, h_ref)


def test_dropout_follows_train_and_eval_modes(xs):
    layer = GRU(I, H, num_layers=2, dropout_rate=0.5, rngs=nnx.Rngs(0, dropout=1))
    call = nnx.jit(lambda m, xs: m(xs))  # the module's mode and its dropout stream go along
    layer.eval()
    det1, det2 = call(layer, xs), call(layer, xs)
    np.testing.assert_array_equal(det1, det2)
    layer.train()
    a, b = call(layer, xs), call(layer, xs)  # the dropout stream advances: two different masks
    assert not np.allclose(a, b) and not np.allclose(a, det1)
    np.testing.assert_array_equal(nnx.jit(lambda m, xs: m(xs, deterministic=True))(layer, xs), det1)
    # Same seed, same masks.
    again = GRU(I, H, num_layers=2, dropout_rate=0.5, rngs=nnx.Rngs(0, dropout=1))
    np.testing.assert_array_equal(call(again, xs), a)


def test_split_merge_jit_and_vmap(xs):
    layer = GRU(I, H, num_layers=2, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(layer)

    @jax.jit
    def forward(state, xs):
        return nnx.merge(graphdef, state)(xs)

    np.testing.assert_allclose(forward(state, xs), layer(xs), rtol=1e-6, atol=1e-6)
    per_example = jax.vmap(forward, in_axes=(None, 0))(state, xs)
    np.testing.assert_allclose(per_example, layer(xs), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(nnx.jit(lambda m, x: m(x))(layer, xs), layer(xs), rtol=1e-6)


def test_dtype_and_param_dtype(xs):
    layer = GRU(I, H, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(nnx.state(layer, nnx.Param)))
    assert layer(xs).dtype == jnp.bfloat16
    cell = GRUCell(I, H, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    carry = cell.initialize_carry((B, I))
    assert carry.dtype == jnp.bfloat16
    assert cell(carry, xs[:, 0].astype(jnp.bfloat16))[0].dtype == jnp.bfloat16
    # Inside nnx.RNN, the carry keeps its dtype even when the inputs promote the compute dtype.
    rnn = nnx.RNN(GRUCell(I, H, rngs=nnx.Rngs(0)))
    assert rnn(xs.astype(jnp.float64)).dtype == jnp.float32


class ParityModel(nnx.Module):
    """Embed -> GRU -> Linear on the last state."""

    def __init__(self, rngs: nnx.Rngs):
        self.embed = nnx.Embed(2, 8, rngs=rngs)
        self.gru = GRU(8, 32, return_carry=True, rngs=rngs)
        self.head = nnx.Linear(32, 2, rngs=rngs)

    def __call__(self, tokens, lengths):
        _, h_n = self.gru(self.embed(tokens), seq_lengths=lengths)
        return self.head(h_n[-1])


def test_nnx_model_learns_parity():
    model = ParityModel(nnx.Rngs(0))
    optimizer = nnx.Optimizer(
        model, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)), wrt=nnx.Param
    )

    @nnx.jit
    def train_step(model, optimizer, key):
        tokens, lengths, labels = parity_batch(key)

        def loss_fn(model):
            logits = model(tokens, lengths)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, jax.random.key(1000 + s))) for s in range(STEPS)]
    assert np.mean(losses[:10]) > 0.5
    assert np.mean(losses[-20:]) < TARGET_LOSS, losses[-20:]
    tokens, lengths, labels = parity_batch(jax.random.key(7), batch=512)
    logits = nnx.jit(lambda model, tokens, lengths: model(tokens, lengths))(model, tokens, lengths)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    assert accuracy > 0.98


def test_orbax_round_trip(tmp_path, xs):
    layer = GRU(I, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
    layer.load_gru_params(random_stack(2, True, False))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", nnx.state(layer))
    checkpointer.wait_until_finished()
    fresh = GRU(I, H, num_layers=2, bidirectional=True, rngs=nnx.Rngs(1))
    call = nnx.jit(lambda m, xs: m(xs))
    assert not np.allclose(call(fresh, xs), call(layer, xs))
    _, abstract = nnx.split(nnx.eval_shape(lambda: fresh))
    restored = checkpointer.restore(tmp_path / "ckpt", abstract)
    nnx.update(fresh, restored)
    np.testing.assert_array_equal(call(fresh, xs), call(layer, xs))


def test_bad_inputs_get_the_core_errors(xs):
    layer = GRU(I, H, return_carry=True, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"xs must have shape .* with I = 2; got \(3, 6, 3\)"):
        layer(jnp.ones((B, T, 3)))
    with pytest.raises(TypeError, match="xs must have a floating-point dtype; got int32"):
        layer(jnp.ones((B, T, I), jnp.int32))
    with pytest.raises(ValueError, match=r"seq_lengths must lie in \[0, T\] = \[0, 6\]"):
        layer(xs, seq_lengths=np.array([1, 2, 9]))
    with pytest.raises(ValueError, match=r"h0 must have shape \(L·D, \*B, H\) = \(1, 3, 4\)"):
        layer(xs, initial_carry=jnp.zeros((B, H)))
    with pytest.raises(ValueError, match="hidden_features must be a positive int; got 0"):
        GRU(I, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features must be a positive int; got -1"):
        GRUCell(-1, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="expected GRUParams with input_size=2, hidden_size=4"):
        layer.load_gru_params(((init_gru(jax.random.key(0), 3, H),),))
    with pytest.raises(ValueError, match=r"expected 1 layer\(s\) of 1 direction\(s\); got 2 of 1"):
        layer.load_gru_params(init_gru_stack(jax.random.key(0), I, H, 2))
    cell = GRUCell(I, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"h must have shape .* = \(3, 4\); got \(3, 5\)"):
        cell(jnp.zeros((B, H + 1)), xs[:, 0])
    assert isinstance(cell.gru_params, GRUParams)
