"""Chrono initialisation (``chrono=T_max`` of the inits and the Flax modules): the drawn law of
the update-gate bias (a Kolmogorov–Smirnov test), that every other parameter is bit-identical to
``chrono=None``, the decay timescale it gives on a zero input, each module, and the errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gru_jax
import gru_jax.linen
import gru_jax.nnx
from gru_jax import gru, init_gru, init_gru_stack, init_mingru, mingru

KEY = jax.random.key(0)
I = 3
ALPHA = 1e-3  # significance level of the KS tests
MESSAGE = "chrono must be an int >= 3 (the longest memory, in steps) or None; got "


def _assert_chrono_law(b_z: np.ndarray, t_max: int) -> None:
    """``exp(−b_z)`` is uniform on ``[1, T_max − 1]`` (KS test), and ``b_z`` lies in
    ``(−log(T_max − 1), 0]``."""
    from scipy import stats  # imported here: half a second that collecting need not pay

    b_z = np.asarray(b_z, np.float64)
    assert b_z.max() <= 0.0 and b_z.min() >= -math.log(t_max - 1) - 1e-6
    result = stats.kstest(np.exp(-b_z), stats.uniform(loc=1.0, scale=t_max - 2).cdf)
    assert result.pvalue > ALPHA, (result.statistic, result.pvalue)


def _leaves_equal(a, b) -> bool:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(
        x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(la, lb, strict=True)
    )


# ----------------------------------------------------------------------------- the drawn law


@pytest.mark.parametrize("t_max", [1000, 3])
def test_init_gru_draws_the_chrono_law(t_max):
    hidden = 4096
    zeros = jax.nn.initializers.zeros  # the (H, H) orthogonal blocks are slow at H = 4096
    p = init_gru(KEY, I, hidden, chrono=t_max, dtype=jnp.float32, recurrent_init=zeros)
    assert p.b_x.dtype == jnp.float32
    _assert_chrono_law(p.b_x[:hidden], t_max)


def test_the_ks_test_rejects_a_log_uniform_timescale():
    # The test has power: log-uniform timescales (another popular reading of "chrono") fail it.
    u = np.exp(np.random.default_rng(0).uniform(0.0, math.log(999.0), 4096))
    with pytest.raises(AssertionError):
        _assert_chrono_law(-np.log(u), 1000)


def test_init_gru_stack_draws_the_chrono_law_in_every_layer_and_direction():
    t_max, hidden = 1000, 256
    stack = init_gru_stack(KEY, I, hidden, 2, bidirectional=True, chrono=t_max)
    blocks = [p.b_x[:hidden] for layer in stack for p in layer]
    assert len(blocks) == 4
    for b_z in blocks:
        _assert_chrono_law(b_z, t_max)
    _assert_chrono_law(np.concatenate(blocks), t_max)
    # Each (layer, direction) draws with its own key.
    assert len({np.asarray(b).tobytes() for b in blocks}) == 4


def test_init_mingru_draws_the_chrono_law():
    t_max, hidden = 1000, 4096
    p = init_mingru(KEY, I, hidden, chrono=t_max, dtype=jnp.float32)
    _assert_chrono_law(p.b_x[:hidden], t_max)


# ----------------------------------------------------------------------------- nothing else moves


@pytest.mark.parametrize("reset_after", [False, True])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_init_gru_changes_only_the_update_gate_bias(reset_after, dtype):
    hidden = 16
    # A random bias_init, so that the other entries of b_x would show any change of key.
    kwargs = dict(reset_after=reset_after, dtype=dtype, bias_init=jax.nn.initializers.normal(1.0))
    base = init_gru(KEY, I, hidden, **kwargs)
    chrono = init_gru(KEY, I, hidden, chrono=100, **kwargs)
    assert chrono.reset_after == reset_after and chrono.b_x.dtype == dtype
    assert _leaves_equal(chrono.replace(b_x=base.b_x), base)
    assert np.array_equal(np.asarray(chrono.b_x[hidden:]), np.asarray(base.b_x[hidden:]))
    b_z = np.asarray(chrono.b_x[:hidden], np.float32)
    assert not np.array_equal(b_z, np.asarray(base.b_x[:hidden], np.float32))
    assert (b_z <= 0).all() and (b_z >= -math.log(99) - 0.05).all()  # bfloat16 rounding


def test_init_gru_stack_changes_only_the_update_gate_biases():
    hidden = 8
    base = init_gru_stack(KEY, I, hidden, 3, bidirectional=True)
    chrono = init_gru_stack(KEY, I, hidden, 3, bidirectional=True, chrono=50)
    for layer_base, layer_chrono in zip(base, chrono, strict=True):
        for p, q in zip(layer_base, layer_chrono, strict=True):
            assert _leaves_equal(q.replace(b_x=p.b_x), p)
            assert np.array_equal(q.b_x[hidden:], p.b_x[hidden:])
            assert (q.b_x[:hidden] < 0).all()
    # Each layer and direction is init_gru's with chrono on the same key as without.
    keys = jax.random.split(KEY, 6)
    for n, q in enumerate(p for layer in chrono for p in layer):
        in_size = I if n < 2 else 2 * hidden
        assert _leaves_equal(q, init_gru(keys[n], in_size, hidden, chrono=50))


@pytest.mark.parametrize("candidate", ["linear", "g"])
def test_init_mingru_changes_only_the_update_gate_bias(candidate):
    hidden = 16
    kwargs = dict(candidate=candidate, bias_init=jax.nn.initializers.normal(1.0))
    base = init_mingru(KEY, I, hidden, **kwargs)
    chrono = init_mingru(KEY, I, hidden, chrono=100, **kwargs)
    assert chrono.candidate == candidate
    assert _leaves_equal(chrono.replace(b_x=base.b_x), base)
    assert np.array_equal(chrono.b_x[hidden:], base.b_x[hidden:])  # b_h, the candidate's bias
    assert (chrono.b_x[:hidden] <= 0).all() and (chrono.b_x[:hidden] > -math.log(99)).all()


def test_numpy_ints_are_accepted_and_the_init_jits():
    hidden = 8
    p = init_gru(KEY, I, hidden, chrono=np.int64(40))
    assert _leaves_equal(p, init_gru(KEY, I, hidden, chrono=40))
    jitted = jax.jit(init_mingru, static_argnums=(1, 2), static_argnames="chrono")
    assert _leaves_equal(jitted(KEY, I, hidden, chrono=40), init_mingru(KEY, I, hidden, chrono=40))


# ----------------------------------------------------------------------------- the timescale


def _check_decay(kept: np.ndarray, b_z: np.ndarray) -> None:
    """``kept (T, H)``: the fraction of ``h0`` left after ``t + 1`` steps of zero input."""
    steps = kept.shape[0]
    a = 1.0 / (1.0 + np.exp(b_z.astype(np.float64)))  # 1 − z = 1 − σ(b_z)
    t = np.arange(1, steps + 1)[:, None]
    # The state decays as (1 − σ(b_z))^t exactly (float32 arithmetic).
    np.testing.assert_allclose(kept, a**t, rtol=1e-4, atol=1e-30)
    # After t = u steps a unit keeps ≈ e^{−1}: its timescale is u = exp(−b_z).
    u = np.exp(-b_z.astype(np.float64))
    units = np.flatnonzero((u >= 20) & (u < steps))
    assert units.size >= 10
    at_u = kept[np.round(u[units]).astype(int) - 1, units]
    np.testing.assert_array_less(np.abs(np.log(at_u) + 1.0), 0.06)
    # The same as a timescale fitted over the whole run: −t / log(kept), within 5 % of u.
    slow = np.flatnonzero(u >= 20)
    fitted = -steps / np.log(kept[-1, slow])
    np.testing.assert_allclose(fitted, u[slow], rtol=0.05)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_on_zero_input_decays_with_the_chrono_timescales(reset_after):
    t_max, hidden, steps = 300, 64, 300
    p = init_gru(KEY, I, hidden, chrono=t_max, reset_after=reset_after, dtype=jnp.float32)
    # w_h = 0: the gates see only their biases, and the candidate is tanh(0) = 0.
    p = p.replace(w_h=jnp.zeros_like(p.w_h))
    ys, _ = gru(p, jnp.zeros((steps, I), jnp.float32), jnp.ones(hidden, jnp.float32))
    _check_decay(np.asarray(ys, np.float64), np.asarray(p.b_x[:hidden]))


def test_mingru_on_zero_input_decays_with_the_chrono_timescales():
    # (Every mode computes the same recurrence, tested in test_mingru.py; one is enough here.)
    t_max, hidden, steps = 300, 64, 300
    p = init_mingru(KEY, I, hidden, chrono=t_max, dtype=jnp.float32)
    xs, h0 = jnp.zeros((steps, I), jnp.float32), jnp.ones(hidden, jnp.float32)
    ys, _ = mingru(p, xs, h0, mode="sequential")
    _check_decay(np.asarray(ys, np.float64), np.asarray(p.b_x[:hidden]))


def test_without_chrono_the_memory_is_a_few_steps():
    p = init_mingru(KEY, I, 8, dtype=jnp.float32)
    _, h = mingru(p, jnp.zeros((100, I), jnp.float32), jnp.ones(8, jnp.float32))
    assert float(jnp.abs(h).max()) < 1e-20  # 0.5 ** 100


# ----------------------------------------------------------------------------- the modules

T_MAX, HM = 500, 64  # modules' T_max and H
XS = np.ones((2, 5, I), np.float32)  # NumPy: nothing compiles when the module is collected


def _b_x(tree) -> list[jax.Array]:
    """Every ``b_x`` in a parameter tree (a dict)."""
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [leaf for path, leaf in paths if path[-1].key == "b_x"]


CARRY = np.zeros((2, HM), np.float32)
LINEN = {
    "GRUCell": (lambda c: gru_jax.linen.GRUCell(HM, chrono=c), (CARRY, XS[:, 0])),
    "GRU": (lambda c: gru_jax.linen.GRU(HM, num_layers=2, bidirectional=True, chrono=c), (XS,)),
    "MinGRUCell": (lambda c: gru_jax.linen.MinGRUCell(HM, chrono=c), (CARRY, XS[:, 0])),
    "MinGRU": (lambda c: gru_jax.linen.MinGRU(HM, chrono=c), (XS,)),
}
NNX = {
    "GRUCell": lambda c, s=0: gru_jax.nnx.GRUCell(I, HM, chrono=c, rngs=nnx.Rngs(s)),
    "GRU": lambda c, s=0: gru_jax.nnx.GRU(
        I, HM, num_layers=2, bidirectional=True, chrono=c, rngs=nnx.Rngs(s)
    ),
    "MinGRUCell": lambda c, s=0: gru_jax.nnx.MinGRUCell(I, HM, chrono=c, rngs=nnx.Rngs(s)),
    "MinGRU": lambda c, s=0: gru_jax.nnx.MinGRU(I, HM, chrono=c, rngs=nnx.Rngs(s)),
}


def _without_b_z(tree):
    """``tree`` with each ``b_x`` cut to its entries after the update-gate block."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x[HM:] if path[-1].key == "b_x" else x, tree
    )


def _check_module_biases(with_chrono: list, without: list) -> None:
    assert len(with_chrono) == len(without) >= 1
    for b, b0 in zip(with_chrono, without, strict=True):
        b_z = np.asarray(b[:HM])
        assert (b_z <= 0).all() and (b_z >= -math.log(T_MAX - 1) - 1e-6).all()
        assert (b_z < -1.0).mean() > 0.5  # most units get long memories
        assert np.array_equal(b[HM:], b0[HM:])
    pooled = np.concatenate([np.asarray(b[:HM]) for b in with_chrono])
    _assert_chrono_law(pooled, T_MAX)


@pytest.mark.parametrize("name", sorted(LINEN))
def test_linen_module_with_chrono(name):
    make, inputs = LINEN[name]
    params = make(T_MAX).init(KEY, *inputs)["params"]
    params0 = make(None).init(KEY, *inputs)["params"]
    _check_module_biases(_b_x(params), _b_x(params0))
    # Every other parameter is the chrono=None one.
    assert _leaves_equal(_without_b_z(params), _without_b_z(params0))


@pytest.mark.parametrize("name", sorted(NNX))
def test_nnx_module_with_chrono(name):
    make = NNX[name]
    state = nnx.to_pure_dict(nnx.state(make(T_MAX), nnx.Param))
    state0 = nnx.to_pure_dict(nnx.state(make(None), nnx.Param))
    _check_module_biases(_b_x(state), _b_x(state0))
    assert _leaves_equal(_without_b_z(state), _without_b_z(state0))


@pytest.mark.parametrize(
    ("name", "functional"),
    [
        ("GRUCell", lambda key, c: init_gru(key, I, HM, chrono=c)),
        ("MinGRUCell", lambda key, c: init_mingru(key, I, HM, chrono=c)),
        ("MinGRU", lambda key, c: init_mingru(key, I, HM, chrono=c)),
    ],
)
def test_nnx_cells_draw_what_the_functional_init_draws(name, functional):
    # The NNX cells are thin wrappers of the functional inits: they draw their parameters in the
    # same order from an nnx.Rngs stream. Where Flax's stream gives the keys of
    # jax.random.split (it does today: nnx.Rngs(s) and jax.random.key(s) agree without chrono),
    # the chrono draws must agree too.
    def params_of(module):
        return module.gru_params if name == "GRUCell" else module.mingru_params

    for seed in (0, 1):
        key = jax.random.key(seed)
        if not _leaves_equal(params_of(NNX[name](None, seed)), functional(key, None)):
            pytest.skip("this Flax's nnx.Rngs draws other keys than jax.random.split")
        assert _leaves_equal(params_of(NNX[name](T_MAX, seed)), functional(key, T_MAX))


# ----------------------------------------------------------------------------- errors

BAD = [
    (True, TypeError, "True"),
    (False, TypeError, "False"),
    (2, ValueError, "2"),
    (2.5, TypeError, "2.5"),
    (-5, ValueError, "-5"),
    (1000.0, TypeError, "1000.0"),
    ("1000", TypeError, "'1000'"),
]
CALLS = {
    "init_gru": lambda c: init_gru(KEY, I, 4, chrono=c),
    "init_gru_stack": lambda c: init_gru_stack(KEY, I, 4, 2, chrono=c),
    "init_mingru": lambda c: init_mingru(KEY, I, 4, chrono=c),
    "GRUCell": lambda c: gru_jax.linen.GRUCell(4, chrono=c).init(KEY, CARRY[:, :4], XS[:, 0]),
    "GRU": lambda c: gru_jax.linen.GRU(4, chrono=c).init(KEY, XS),
    "MinGRUCell": lambda c: gru_jax.linen.MinGRUCell(4, chrono=c).init(KEY, CARRY[:, :4], XS[:, 0]),
    "MinGRU": lambda c: gru_jax.linen.MinGRU(4, chrono=c).init(KEY, XS),
    "nnx GRUCell": lambda c: gru_jax.nnx.GRUCell(I, 4, chrono=c, rngs=nnx.Rngs(0)),
    "nnx GRU": lambda c: gru_jax.nnx.GRU(I, 4, chrono=c, rngs=nnx.Rngs(0)),
    "nnx MinGRUCell": lambda c: gru_jax.nnx.MinGRUCell(I, 4, chrono=c, rngs=nnx.Rngs(0)),
    "nnx MinGRU": lambda c: gru_jax.nnx.MinGRU(I, 4, chrono=c, rngs=nnx.Rngs(0)),
}


@pytest.mark.parametrize("entry", sorted(CALLS))
@pytest.mark.parametrize(("chrono", "kind", "shown"), BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_chrono_is_refused_with_a_clear_error(entry, chrono, kind, shown):
    fn = entry.removeprefix("nnx ")
    with pytest.raises(kind) as info:
        CALLS[entry](chrono)
    assert type(info.value) is kind
    assert str(info.value) == f"{fn}: {MESSAGE}{shown}"


def test_linen_modules_check_chrono_when_called_not_when_built():
    layer = gru_jax.linen.MinGRU(4, chrono=True)  # a dataclass: nothing runs yet
    with pytest.raises(TypeError, match="MinGRU: chrono must be an int >= 3"):
        layer.init(KEY, XS)


def test_smallest_chrono_is_accepted():
    p = init_gru(KEY, I, 8, chrono=3)
    b_z = np.asarray(p.b_x[:8])
    assert (b_z <= 0).all() and (b_z > -math.log(2.0)).all()


def test_the_config_key_reaches_the_task_models():
    """``model.chrono`` reaches the GRUs of a task (adding) and of both GRUs of seq2seq's
    bidirectional encoder and decoder; every task builds its GRU from the same model fields
    (``gru_jax.tasks.make_gru``), and each task's smoke run builds its model with them."""
    from gru_jax.tasks import get_task
    from gru_jax.train import load_config

    for name in ("adding", "seq2seq"):
        task = get_task(name)
        models, batch = {}, None
        for chrono in (None, 50):
            sets = [f"model.chrono={'null' if chrono is None else chrono}", "model.hidden_size=4"]
            sets += ["model.embed_dim=4"]
            config = load_config(f"configs/{name}.yaml", sets)
            models[chrono] = task.make_model(config.model, config.data)
            batch = task.make_source(config.data, 0).batch(jax.random.key(1), 2)
        # both models' parameters in one compiled program
        chronos, ms = list(models), list(models.values())
        params = jax.jit(lambda key, batch, ms=ms: [m.init(key, batch) for m in ms])(
            jax.random.key(0), batch
        )
        got = {
            chrono: [
                np.asarray(leaf)
                for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
                if "b_x" in jax.tree_util.keystr(path)
            ]
            for chrono, tree in zip(chronos, params, strict=True)
        }
        for plain, chrono_b in zip(got[None], got[50], strict=True):
            np.testing.assert_array_equal(plain[4:], chrono_b[4:])  # only z's block changes
            assert np.all(chrono_b[:4] <= 0) and np.all(chrono_b[:4] > -np.log(49.0)), name
            assert not np.array_equal(plain[:4], chrono_b[:4]), name
