"""gru_jax.linen: the cell in flax.linen.RNN/Bidirectional, the GRU layer, training, Orbax."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from helpers import STEPS, TARGET_LOSS, parity_batch, randomize

from gru_jax import GRUParams, gru, gru_cell, gru_stack
from gru_jax.linen import GRU, GRUCell, params_to_tree, tree_to_params

B, T, I, H = 3, 6, 2, 4
LENGTHS = jnp.array([6, 3, 1])


@pytest.fixture(scope="module")
def xs():
    return jax.random.normal(jax.random.key(1), (B, T, I), jnp.float32)


@pytest.mark.parametrize("reset_after", [False, True])
def test_cell_equals_gru_cell(reset_after, xs):
    cell = GRUCell(features=H, reset_after=reset_after)
    carry = cell.initialize_carry(jax.random.key(0), xs[:, 0].shape)
    assert carry.shape == (B, H) and carry.dtype == jnp.float32
    variables = randomize(jax.jit(cell.init)(jax.random.key(0), carry, xs[:, 0]), jax.random.key(2))
    params = GRUParams(**variables["params"], reset_after=reset_after)
    h0 = jnp.full((B, H), 0.3)
    (new_carry, y), want = jax.jit(lambda v, p, h, x: (cell.apply(v, h, x), gru_cell(p, h, x)))(
        variables, params, h0, xs[:, 0]
    )
    np.testing.assert_array_equal(new_carry, y)
    np.testing.assert_allclose(new_carry, want, rtol=1e-6, atol=1e-6)
    assert cell.num_feature_axes == 1


@pytest.mark.parametrize("reset_after", [False, True])
def test_cell_in_linen_rnn_and_bidirectional(reset_after, xs):
    rnn = nn.RNN(GRUCell(H, reset_after=reset_after), return_carry=True)
    bi = nn.Bidirectional(
        nn.RNN(GRUCell(H, reset_after=reset_after)), nn.RNN(GRUCell(H, reset_after=reset_after))
    )
    uni_vars, bi_vars = jax.jit(lambda k, xs: (rnn.init(k, xs), bi.init(k, xs)))(
        jax.random.key(0), xs
    )
    uni_vars = randomize(uni_vars, jax.random.key(3))
    bi_vars = randomize(bi_vars, jax.random.key(4))
    h0 = 0.1 * jnp.ones((B, H))

    @jax.jit
    def run(uni_vars, bi_vars, xs, h0):
        params = GRUParams(**uni_vars["params"]["cell"], reset_after=reset_after)
        stack = (
            (
                GRUParams(**bi_vars["params"]["forward_rnn"]["cell"], reset_after=reset_after),
                GRUParams(**bi_vars["params"]["backward_rnn"]["cell"], reset_after=reset_after),
            ),
        )
        return (
            rnn.apply(uni_vars, xs, initial_carry=h0, seq_lengths=LENGTHS),
            gru(params, xs, h0, seq_lengths=LENGTHS),
            bi.apply(bi_vars, xs, seq_lengths=LENGTHS),
            gru_stack(stack, xs, seq_lengths=LENGTHS)[0],
        )

    (carry, ys), (ys_ref, h_ref), bi_ys, bi_ref = run(uni_vars, bi_vars, xs, h0)
    np.testing.assert_allclose(carry, h_ref, rtol=1e-6, atol=1e-6)
    valid = (jnp.arange(T) < LENGTHS[:, None])[..., None]
    # flax.linen.RNN keeps computing past the length; only the valid outputs are comparable.
    np.testing.assert_allclose(jnp.where(valid, ys, 0), ys_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jnp.where(valid, bi_ys, 0), bi_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True)])
def test_gru_layer_equals_gru_stack(num_layers, bidirectional, xs):
    layer = GRU(
        H, num_layers=num_layers, bidirectional=bidirectional, reset_after=True, return_carry=True
    )
    variables = randomize(jax.jit(layer.init)(jax.random.key(0), xs), jax.random.key(5))
    stack = tree_to_params(variables["params"], reset_after=True)
    assert len(stack) == num_layers and len(stack[0]) == (2 if bidirectional else 1)
    h0 = 0.2 * jnp.ones((num_layers * len(stack[0]), B, H))
    only_ys = GRU(H, num_layers=num_layers, bidirectional=bidirectional, reset_after=True)

    @jax.jit
    def run(variables, stack, xs, h0):
        return (
            layer.apply(variables, xs, seq_lengths=LENGTHS, initial_carry=h0),
            gru_stack(stack, xs, h0, seq_lengths=LENGTHS),
            only_ys.apply(variables, xs, seq_lengths=LENGTHS, initial_carry=h0),
        )

    (ys, h_n), (ys_ref, h_ref), ys_only = run(variables, stack, xs, h0)
    np.testing.assert_array_equal(ys, ys_ref)
    np.testing.assert_array_equal(h_n, h_ref)
    # And back: the stack's tree is the module's tree.
    assert jax.tree.structure(params_to_tree(stack)) == jax.tree.structure(variables["params"])
    np.testing.assert_array_equal(ys_only, ys)


def test_dropout_uses_the_dropout_rng_stream(xs):
    layer = GRU(H, num_layers=2, dropout_rate=0.5)
    variables = jax.jit(layer.init)(jax.random.key(0), xs)
    dropped = jax.jit(
        lambda v, xs, key: layer.apply(v, xs, deterministic=False, rngs={"dropout": key})
    )
    det = jax.jit(layer.apply)(variables, xs)
    a = dropped(variables, xs, jax.random.key(1))
    b = dropped(variables, xs, jax.random.key(1))
    c = dropped(variables, xs, jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, det) and not np.allclose(a, c)
    with pytest.raises(Exception, match="dropout"):
        layer.apply(variables, xs, deterministic=False)


def test_jit_and_vmap_over_apply(xs):
    layer = GRU(H, num_layers=2)
    variables = jax.jit(layer.init)(jax.random.key(0), xs)
    batched = jax.jit(layer.apply)(variables, xs)
    per_example = jax.jit(jax.vmap(layer.apply, in_axes=(None, 0)))(variables, xs)
    np.testing.assert_allclose(per_example, batched, rtol=1e-6, atol=1e-6)
    # vmap over parameters too: an ensemble of 2 models.
    keys = jax.random.split(jax.random.key(0), 2)
    ensemble = jax.jit(jax.vmap(layer.init, in_axes=(0, None)))(keys, xs)
    ys = jax.jit(jax.vmap(layer.apply, in_axes=(0, None)))(ensemble, xs)
    assert ys.shape == (2, B, T, H)


def test_dtype_and_param_dtype(xs):
    # Dtypes are decided while tracing: abstract evaluation (nothing compiles) shows them.
    layer = GRU(H, dtype=jnp.bfloat16, param_dtype=jnp.float32)
    variables = jax.eval_shape(layer.init, jax.random.key(0), xs)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
    assert jax.eval_shape(layer.apply, variables, xs).dtype == jnp.bfloat16
    cell = GRUCell(H, param_dtype=jnp.bfloat16)
    carry = cell.initialize_carry(jax.random.key(0), (B, I))
    x16 = xs[:, 0].astype(jnp.bfloat16)
    variables = jax.eval_shape(cell.init, jax.random.key(0), carry, x16)
    assert all(a.dtype == jnp.bfloat16 for a in jax.tree.leaves(variables))
    assert jax.eval_shape(cell.apply, variables, carry, x16)[0].dtype == jnp.bfloat16
    # Inside nn.RNN, the carry keeps its dtype even when the inputs promote the compute dtype.
    rnn = nn.RNN(GRUCell(H))
    variables = jax.eval_shape(rnn.init, jax.random.key(0), xs)
    assert jax.eval_shape(rnn.apply, variables, xs.astype(jnp.float64)).dtype == jnp.float32


class ParityModel(nn.Module):
    """Embed -> GRU -> Dense on the last state."""

    @nn.compact
    def __call__(self, tokens, lengths):
        x = nn.Embed(2, 8)(tokens)
        _, h_n = GRU(32, return_carry=True)(x, seq_lengths=lengths)
        return nn.Dense(2)(h_n[-1])


def test_linen_model_learns_parity():
    model = ParityModel()
    tokens, lengths, _ = parity_batch(jax.random.key(0))
    params = jax.jit(model.init)(jax.random.key(1), tokens, lengths)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, key):
        tokens, lengths, labels = parity_batch(key)

        def loss_fn(params):
            logits = model.apply(params, tokens, lengths)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for step in range(STEPS):
        params, opt_state, loss = train_step(params, opt_state, jax.random.key(1000 + step))
        losses.append(float(loss))
    assert np.mean(losses[:10]) > 0.5  # it starts at chance
    assert np.mean(losses[-20:]) < TARGET_LOSS, losses[-20:]
    tokens, lengths, labels = parity_batch(jax.random.key(7), batch=512)
    accuracy = jnp.mean(jnp.argmax(jax.jit(model.apply)(params, tokens, lengths), -1) == labels)
    assert accuracy > 0.98


def test_orbax_round_trip(tmp_path, xs):
    layer = GRU(H, num_layers=2, bidirectional=True)
    variables = randomize(jax.jit(layer.init)(jax.random.key(0), xs), jax.random.key(6))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", variables)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "ckpt", jax.tree.map(jnp.zeros_like, variables))
    assert jax.tree.structure(restored) == jax.tree.structure(variables)
    apply = jax.jit(layer.apply)
    np.testing.assert_array_equal(apply(restored, xs), apply(variables, xs))


def test_bad_inputs_get_the_core_errors(xs):
    layer = GRU(H, return_carry=True)
    variables = layer.init(jax.random.key(0), xs)
    with pytest.raises(ValueError, match=r"inputs must have I = 2 features .*; got 3"):
        layer.apply(variables, jnp.ones((B, T, 3)))
    with pytest.raises(ValueError, match=r"xs must have shape \(T, I\) or \(\*B, T, I\)"):
        layer.apply(variables, jnp.ones((I,)))
    with pytest.raises(TypeError, match="xs must have a floating-point dtype; got int32"):
        layer.apply(variables, jnp.ones((B, T, I), jnp.int32))
    with pytest.raises(
        ValueError, match=r"seq_lengths must have the batch shape of xs, \(3,\); got \(2,\)"
    ):
        layer.apply(variables, xs, seq_lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match=r"seq_lengths must lie in \[0, T\] = \[0, 6\]"):
        layer.apply(variables, xs, seq_lengths=np.array([1, 2, 9]))
    with pytest.raises(
        ValueError, match=r"h0 must have shape \(L·D, \*B, H\) = \(1, 3, 4\); got \(3, 4\)"
    ):
        layer.apply(variables, xs, initial_carry=jnp.zeros((B, H)))
    with pytest.raises(ValueError, match="num_layers must be a positive int; got 0"):
        GRU(H, num_layers=0).init(jax.random.key(0), xs)
    cell = GRUCell(H)
    cell_vars = cell.init(jax.random.key(0), jnp.zeros((B, H)), xs[:, 0])
    with pytest.raises(ValueError, match=r"h must have shape .* = \(3, 4\); got \(3, 5\)"):
        cell.apply(cell_vars, jnp.zeros((B, H + 1)), xs[:, 0])
    with pytest.raises(ValueError, match="tree must have the keys"):
        tree_to_params({"w_x": 1}, reset_after=False)
