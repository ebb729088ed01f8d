"""Multi-layer and bidirectional minGRUs (``mingru_stack``, ``MinGRUStack``) against a float64
NumPy loop, the one-step cell, dropout and errors; ``model.cell: mingru`` in every task."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from reference import np_mingru_stack

import gru_jax.linen
from gru_jax import init_mingru_stack, mingru_stack, mingru_stack_cell
from gru_jax.tasks import charlm, get_task, make_rnn, seq2seq
from gru_jax.train import ConfigError, ModelConfig, load_config

B, T, I, H, L = 3, 6, 4, 5, 2
LENGTHS = np.array([T, 4, 0], np.int32)
RESETS = np.zeros((B, T), bool)
RESETS[0, [0, 2, 5]] = RESETS[1, [3, 5]] = True  # row 1's mark at 5 lies in the padding


def _random_stack(key, bidirectional, dtype=jnp.float64):
    """init_mingru_stack with random non-zero biases, so that every bias block matters."""
    params = init_mingru_stack(
        key, I, H, L, bidirectional=bidirectional, candidate="g", dtype=dtype
    )
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    return jax.tree.unflatten(
        tree,
        [
            leaf + 0.3 * jax.random.normal(k, leaf.shape, dtype)
            for leaf, k in zip(leaves, keys, strict=True)
        ],
    )


def _layers(params):
    return [[(np.asarray(p.w_x), np.asarray(p.b_x)) for p in layer] for layer in params]


@functools.partial(jax.jit, static_argnames=("mode",))
def _run(params, xs, h0, lengths, resets, *, mode):
    return mingru_stack(params, xs, h0, seq_lengths=lengths, resets=resets, mode=mode)


@pytest.fixture(scope="module")
def data():
    kx, kh = jax.random.split(jax.random.key(3))
    return jax.random.normal(kx, (B, T, I), jnp.float64), jax.random.normal(kh, (2 * L, B, H))


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_bidirectional_stack_matches_numpy_reference(data, mode):
    """Two layers, both directions, h0, lengths and resets, against the float64 loop."""
    xs, h0 = data
    params = _random_stack(jax.random.key(0), True)
    for h, lengths, resets in ((None, None, None), (h0, LENGTHS, RESETS)):
        ys, h_n = _run(params, xs, h, lengths, resets, mode=mode)
        ys_ref, h_ref = np_mingru_stack(_layers(params), "g", xs, h, lengths, resets)
        assert ys.shape == (B, T, 2 * H) and h_n.shape == (2 * L, B, H)
        np.testing.assert_allclose(ys, ys_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h_n, h_ref, rtol=1e-12, atol=1e-12)


def test_gradients_of_the_stack(data):
    xs, h0 = data
    params = _random_stack(jax.random.key(1), True)

    @jax.jit
    def f(params, xs, h0):
        ys, h_n = _run(params, xs, h0, LENGTHS, RESETS, mode="sequential")
        return jnp.sum(jnp.sin(ys)) + jnp.sum(h_n**2)

    check_grads(f, (params, xs, h0), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_stack_cell_is_one_step_of_the_stack(data):
    xs, h0 = data
    params = _random_stack(jax.random.key(2), False)
    h = h0[:L]
    ys, h_n = mingru_stack(params, xs[:, :1], h)
    new = mingru_stack_cell(params, h, xs[:, 0])
    np.testing.assert_allclose(new, h_n, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new[-1], ys[:, 0], rtol=1e-12, atol=1e-12)


def test_linen_stack_equals_the_function_and_steps():
    xs = jax.random.normal(jax.random.key(4), (B, T, I))
    layer = gru_jax.linen.MinGRUStack(H, num_layers=L, return_carry=True, chrono=50)
    variables = layer.init(jax.random.key(5), xs)
    tree = variables["params"]
    assert sorted(tree) == ["layer_0", "layer_1"] and sorted(tree["layer_1"]) == ["forward"]
    assert tree["layer_1"]["forward"]["w_x"].shape == (H, 2 * H)
    assert np.all(np.asarray(tree["layer_0"]["forward"]["b_x"][:H]) <= 0)  # chrono reached it
    stack = tuple((gru_jax.MinGRUParams(**tree[f"layer_{i}"]["forward"]),) for i in range(L))
    ys, h_n = layer.apply(variables, xs, seq_lengths=LENGTHS)
    ys_ref, h_ref = mingru_stack(stack, xs, seq_lengths=LENGTHS)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h_n, h_ref, rtol=1e-6, atol=1e-6)
    carry = layer.apply(variables, h_n, xs[:, 0], method=gru_jax.linen.MinGRUStack.step)
    np.testing.assert_allclose(carry, mingru_stack_cell(stack, h_n, xs[:, 0]), rtol=1e-6)


def test_dropout_between_layers_only_in_training():
    xs = jax.random.normal(jax.random.key(6), (B, T, I))
    layer = gru_jax.linen.MinGRUStack(H, num_layers=L, dropout_rate=0.5)
    variables = layer.init(jax.random.key(7), xs)
    plain = layer.apply(variables, xs)
    assert np.array_equal(plain, layer.apply(variables, xs, deterministic=True))
    rngs = {"dropout": jax.random.key(8)}
    dropped = layer.apply(variables, xs, deterministic=False, rngs=rngs)
    assert not np.allclose(dropped, plain)
    with pytest.raises(ValueError, match=r"mingru_stack: dropout_rate=0\.5 with deterministic"):
        mingru_stack(
            init_mingru_stack(jax.random.key(0), I, H, L), xs, dropout_rate=0.5, deterministic=False
        )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda p: mingru_stack((), jnp.ones((T, I))),
            TypeError,
            "mingru_stack: params must be a non-empty tuple of layers, each a tuple of MinGRUParams",
        ),
        (lambda p: mingru_stack(p, jnp.ones((B, T, I + 1))), ValueError, "mingru_stack: xs"),
        (
            lambda p: mingru_stack(p, jnp.ones((B, T, I)), jnp.ones((1, B, H))),
            ValueError,
            r"mingru_stack: h0 must have shape \(L·D, \*B, H\) = \(2, 3, 5\); got \(1, 3, 5\)",
        ),
        (
            lambda p: mingru_stack_cell(p, jnp.ones((L, B, H)), jnp.ones((B, I))),
            ValueError,
            "mingru_stack_cell: params must be a unidirectional stack",
        ),
    ],
    ids=["empty", "input size", "h0", "cell of a bidirectional stack"],
)
def test_bad_inputs(call, error, message):
    params = init_mingru_stack(jax.random.key(0), I, H, bidirectional=True)
    with pytest.raises(error, match=message):
        call(params)


# ------------------------------------------------------------------------ the config key


@pytest.mark.parametrize(
    ("config", "sets"),
    [
        ("charlm_packed", ["data.corpus_chars=2000", "data.seq_len=32"]),
    ],
    ids=["charlm_packed"],
)
def test_mingru_models_decode_and_sample(config, sets):
    """``model.cell: mingru`` in charlm's packed rows (resets and lengths) and one-step
    sampling; the recurrent leaves are w_x and b_x only. (seq2seq's bidirectional minGRU
    encoder and one-step decoding: tests/test_serving.py; a CLI run with a minGRU:
    tests/test_train.py, ``copy_long``.)"""
    sets = [*sets, "model.cell=mingru", "model.hidden_size=4", "model.embed_dim=4"]
    config = load_config(f"configs/{config}.yaml", [*sets, "model.num_layers=2"])
    task = get_task(config.task)
    model = task.make_model(config.model, config.data)
    batch = task.make_source(config.data, 0).batch(jax.random.key(1), 2)
    params, loss = jax.jit(  # one program: nothing here needs its own compile
        lambda key, batch: (p := model.init(key, batch), task.loss(model.apply(p, batch), batch))
    )(jax.random.key(0), batch)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    rnn_leaves = {p.rsplit("'", 2)[-2] for p in paths if "layer_" in p}
    assert rnn_leaves == {"w_x", "b_x"}, paths
    assert any("backward" in p for p in paths) == (config.task == "seq2seq")
    assert np.isfinite(loss)
    if config.task == "seq2seq":
        tokens = seq2seq.greedy_decode(model, params, batch["source"], batch["source_lengths"], 3)
        assert tokens.shape == (2, 3)
    else:
        (text,) = charlm.sample(model, params, "the ", 5, jax.random.key(2), sentences=True)
        assert len(text) >= 5


def test_make_rnn_picks_the_cell():
    assert type(make_rnn(ModelConfig())) is gru_jax.linen.GRU
    assert type(make_rnn(ModelConfig(cell="mingru"))) is gru_jax.linen.MinGRUStack
    with pytest.raises(ValueError, match="make_rnn: reset_after=True applies to cell 'gru' only"):
        make_rnn(ModelConfig(cell="mingru", reset_after=True))


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["model.cell=mingru", "model.reset_after=true"],
            "config keys 'model.cell' (mingru) and 'model.reset_after' (true) must satisfy "
            "reset_after == false unless cell == gru (a minGRU has no reset gate)",
        ),
        (
            ["model.cell=mingru", "model.unroll=4"],
            "config keys 'model.cell' (mingru) and 'model.unroll' (4) must satisfy "
            "unroll == 1 unless cell == gru (a minGRU picks its own scan)",
        ),
    ],
    ids=["reset_after", "unroll"],
)
def test_gru_only_keys_are_refused_with_mingru(sets, message):
    with pytest.raises(ConfigError) as raised:
        load_config("configs/adding.yaml", sets)
    assert str(raised.value) == message
