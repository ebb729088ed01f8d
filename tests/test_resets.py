"""Resets inside a sequence, time-major inputs and one-step stacks, for ``gru`` and ``gru_stack``.

The contract: each segment of a packed row behaves exactly as its own sequence that starts from
zeros (from ``h0`` where the row starts without a reset). Checked against
* the independent float64 NumPy loop of ``tests/reference.py`` (values);
* the same row cut into its segments and each run alone through ``gru`` without resets (values,
  ``h_last`` and gradients with respect to the parameters, ``xs`` and ``h0``, to 1e-9);
* autodiff of a plain ``lax.scan`` with ``jnp.where(reset, 0, h)``, for every ``Plan`` of the
  hand-written derivative, with plans forced to small chunks so that resets fall on chunk edges.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import Together, assert_trees_close
from jax.test_util import check_grads
from reference import np_gru, np_gru_stack

import gru_jax
from gru_jax import GRUParams, gru, gru_stack, gru_stack_cell
from gru_jax._base.resets import segment_starts
from gru_jax._gru import sequence as gru_sequence
from gru_jax._gru.cell import _step
from gru_jax._gru.jvp import scan_gru
from gru_jax._gru.plan import Plan

TOL = 1e-9
B, T, I, H = 4, 19, 3, 5

# Row 0: resets at t = 0, consecutive (5, 6), length-1 segments, one in the padding-free row.
# Row 1: a reset at every step.  Row 2: none.  Row 3: resets inside the padding (length 9).
RESETS = np.zeros((B, T), bool)
RESETS[0, [0, 5, 6, 9, 15, 18]] = True
RESETS[1, :] = True
RESETS[3, [4, 8, 9, 12, 17]] = True
LENGTHS = np.array([19, 17, 12, 9])


def make(seed, reset_after, batch=B, steps=T):
    rng = np.random.default_rng(seed)

    def draw(*shape, scale=1.0):
        return jnp.asarray(scale * rng.standard_normal(shape), jnp.float64)

    p = GRUParams(
        w_x=draw(I, 3 * H, scale=0.5),
        w_h=draw(H, 3 * H, scale=0.5),
        b_x=draw(3 * H),
        b_h=draw(3 * H),
        reset_after=reset_after,
    )
    return p, draw(batch, steps, I), draw(batch, H, scale=0.5), draw(batch, steps, H)


def segments(resets_row, length, reverse):
    """``[(start, stop, from_h0)]``: the segments of a row's valid prefix, and which one starts
    from ``h0`` (forward: the first, unless reset at 0; reverse: the last)."""
    cuts = [t for t in range(1, length) if resets_row[t]]
    bounds = list(zip([0, *cuts], [*cuts, length], strict=True)) if length else []
    out = []
    for k, (a, b) in enumerate(bounds):
        from_h0 = (k == len(bounds) - 1) if reverse else (k == 0 and not resets_row[0])
        out.append((a, b, from_h0))
    return out


def segment_rows(xs, h0, *, reverse):
    """Every segment of every row as its own row of a new batch, moved to start at step 0 and
    padded: ``(xs (S, T, I), h0 (S, H), lengths (S,), where)`` with ``where[s] = (b, a, c)``."""
    xp = np if isinstance(xs, np.ndarray) else jnp  # NumPy arrays stay NumPy (no compiles)
    rows, starts, lengths, where = [], [], [], []
    for b in range(xs.shape[0]):
        for a, c, from_h0 in segments(RESETS[b], int(LENGTHS[b]), reverse):
            rows.append(xp.pad(xs[b, a:c], ((0, xs.shape[1] - (c - a)), (0, 0))))
            starts.append(h0[b] if from_h0 else xp.zeros((H,), xs.dtype))
            lengths.append(c - a)
            where.append((b, a, c))
    return xp.stack(rows), xp.stack(starts), np.array(lengths), where


def by_segments(p, xs, h0, *, reverse):
    """The packed rows cut into their segments, each run alone (one batch, no resets)."""
    seg_xs, seg_h0, seg_lengths, where = segment_rows(xs, h0, reverse=reverse)
    seg_ys, seg_h = gru(p, seg_xs, seg_h0, seq_lengths=seg_lengths, reverse=reverse)
    ys, h_last = jnp.zeros((*xs.shape[:2], H), xs.dtype), h0
    for s, (b, a, c) in enumerate(where):
        ys = ys.at[b, a:c].set(seg_ys[s, : c - a])
        # forward: the last segment's final state; reverse: the first segment's
        if (not reverse and c == LENGTHS[b]) or (reverse and a == 0):
            h_last = h_last.at[b].set(seg_h[s])
    return ys, h_last


def packed(p, xs, h0, *, reverse, **kw):
    return gru(p, xs, h0, seq_lengths=LENGTHS, resets=RESETS, reverse=reverse, **kw)


def loss_of(fn, cy):
    def loss(p, xs, h0):
        ys, h_last = fn(p, xs, h0)
        return jnp.sum(jnp.sin(ys) * cy) + jnp.sum(h_last**2)

    return loss


together = Together()  # the cases of a test, compiled as one program
VARIANTS = [(False, False), (False, True), (True, False), (True, True)]  # (reverse, reset_after)


@functools.cache
def packed_and_segments(reverse):
    """The packed call and the segments run alone: values and ``value_and_grad`` of both."""
    fast = functools.partial(packed, reverse=reverse)
    seg = functools.partial(by_segments, reverse=reverse)

    def run(p, xs, h0, cy):
        argnums = (0, 1, 2)
        grads = [jax.value_and_grad(loss_of(f, cy), argnums)(p, xs, h0) for f in (fast, seg)]
        return fast(p, xs, h0), seg(p, xs, h0), *grads

    return run


@together.cases("segments", VARIANTS)
def _segment_calls(reverse, reset_after):
    return {"out": (packed_and_segments(reverse), make(0, reset_after))}


@pytest.mark.parametrize("reset_after", [False, True], ids=["reset_before", "reset_after"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_packed_row_equals_its_segments(reset_after, reverse):
    p, xs, h0, _ = make(0, reset_after)
    ref = np_gru(p.w_x, p.w_h, p.b_x, p.b_h, xs, h0, LENGTHS, reverse, reset_after, RESETS)
    (ys, h_last), alone, fast, slow = together("segments", reverse, reset_after)["out"]
    np.testing.assert_allclose(ys, ref[0], atol=TOL)
    np.testing.assert_allclose(h_last, ref[1], atol=TOL)
    assert_trees_close((ys, h_last), alone)
    assert_trees_close(fast, slow)


def test_nan_in_padding_and_padding_resets_change_nothing():
    p, xs, h0, cy = make(1, False)
    valid = np.arange(T)[None, :] < LENGTHS[:, None]
    xs_nan = jnp.where(valid[..., None], xs, jnp.nan)
    resets_pad = RESETS | ~valid  # marks in the padding are ignored

    def run(xs, resets):
        return gru(p, xs, h0, seq_lengths=LENGTHS, resets=resets)

    @jax.jit
    def both(xs, xs_nan):
        g = jax.grad(lambda xs: jnp.sum(run(xs, resets_pad)[0] * cy))(xs_nan)
        return run(xs, RESETS), run(xs_nan, resets_pad), g

    (ys, h_last), (ys2, h2), g = both(xs, xs_nan)
    assert_trees_close((ys, h_last), (ys2, h2), tol=0)
    assert not np.asarray(ys)[~valid].any()
    assert np.isfinite(np.asarray(g)).all() and not np.asarray(g)[~valid].any()


# ------------------------------------------------------------------------- every plan


def plain_gru_resets(p, xs, h0, lengths, starts, reverse):
    """Autodiff reference: a plain time-major scan with ``jnp.where`` masking and resets."""
    xs_t = jnp.swapaxes(xs, 0, 1)
    mask = (jnp.arange(xs.shape[1])[:, None] < lengths[None, :])[..., None]

    def step(h, inp):
        x, valid, start = inp
        h_new = _step(p, jnp.where(start, 0.0, h), x)
        h_new = jnp.where(valid, h_new, h)
        return h_new, jnp.where(valid, h_new, 0.0)

    h_last, ys = jax.lax.scan(step, h0, (jnp.where(mask, xs_t, 0.0), mask, starts), reverse=reverse)
    return jnp.swapaxes(ys, 0, 1), h_last


def _plans(reset_after):
    return [
        Plan(reset_after),
        Plan(reset_after, fwd_chunk=3),
        Plan(reset_after, hoist=True),
        Plan(reset_after, fwd_chunk=2, recompute=True, train_chunk=1, remat=True),
        Plan(reset_after, fwd_chunk=4, train_chunk=3, remat=True),
        Plan(reset_after, fwd_chunk=5, train_chunk=4, recompute=True, remat=True),
    ]


@functools.cache
def _plans_vs_autodiff(reset_after):
    def run(p, xs, h0, cy):
        lengths = jnp.asarray(LENGTHS)
        out = []
        for reverse in (False, True):
            starts = segment_starts(jnp.asarray(RESETS), lengths, reverse=reverse, time_major=False)
            ref = functools.partial(
                plain_gru_resets, lengths=lengths, starts=starts, reverse=reverse
            )
            want = jax.value_and_grad(loss_of(ref, cy), (0, 1, 2))(p, xs, h0)
            for k, pl in enumerate(_plans(reset_after)):
                if (k + reset_after) % 2 != reverse:
                    continue
                pl = pl._replace(reverse=reverse)

                def fast(p, xs, h0, pl=pl, starts=starts):
                    return scan_gru((p.w_x, p.w_h, p.b_x, p.b_h), xs, h0, lengths, starts, plan=pl)

                out.append((jax.value_and_grad(loss_of(fast, cy), (0, 1, 2))(p, xs, h0), want))
        return out

    return run


@together.cases("plans", [False, True])
def _plan_calls(reset_after):
    return {"out": (_plans_vs_autodiff(reset_after), make(2, reset_after))}


@pytest.mark.parametrize("reset_after", [False, True], ids=["reset_before", "reset_after"])
def test_every_plan_with_resets_matches_autodiff(reset_after):
    """Chunks of 1, 3 and 4 steps put resets on chunk edges and on edge ± 1.

    Every plan runs in both directions and in both variants: plan ``k`` runs forward in one
    variant and in reverse in the other (the pairs of plan, direction and variant all occur,
    in half the compiled code of every triple)."""
    results = together("plans", reset_after)["out"]
    assert len(results) == len(_plans(reset_after))
    for got, want in results:
        assert_trees_close(got, want)


@pytest.mark.parametrize("remat", [False, True], ids=["store", "remat"])
def test_check_grads_with_resets(remat):
    p, xs, h0, _ = make(3, True, batch=2, steps=7)
    resets = np.array(
        [
            [True, False, True, True, False, False, True],
            [False, False, False, True, False, True, False],
        ]
    )
    lengths = jnp.array([7, 5])

    @jax.jit
    def f(p, xs, h0):
        return gru(p, xs, h0, seq_lengths=lengths, resets=resets, remat=remat)

    check_grads(f, (p, xs, h0), order=1, modes=("fwd", "rev"))


def test_resets_keep_the_plan_and_the_custom_jvp(monkeypatch):
    """The same Plan is chosen with and without resets, and the derivative is the custom JVP
    (no autodiff of a plain scan)."""
    p, xs, h0, _ = make(4, False)
    seen = []
    real = gru_sequence.scan_gru

    def spy(*args, plan):
        seen.append(plan)
        return real(*args, plan=plan)

    monkeypatch.setattr(gru_sequence, "scan_gru", spy)
    for resets in (None, RESETS):
        for remat in (False, True):  # traced only: the plan is chosen while tracing
            jax.eval_shape(lambda xs, r=resets, m=remat: gru(p, xs, h0, resets=r, remat=m), xs)
    assert len(seen) == 4 and seen[0] == seen[2] and seen[1] == seen[3]
    monkeypatch.setattr(gru_sequence, "scan_gru", real)
    jaxpr = str(jax.make_jaxpr(lambda xs: gru(p, xs, h0, resets=RESETS))(xs))
    assert "custom_jvp_call" in jaxpr  # whose rule is the hand-written derivative


# ------------------------------------------------------------------------- time-major


@functools.cache
def _both_layouts(remat):
    def run(p, xs, h0, cy):
        cy_t = jnp.swapaxes(cy, 0, 1)

        def batch_major(p, xs, h0):
            ys, h = gru(p, xs, h0, seq_lengths=LENGTHS, resets=RESETS, remat=remat)
            return jnp.sum(jnp.sin(ys) * cy) + jnp.sum(h**2)

        def time_major(p, xs_t, h0):
            ys, h = gru(
                p, xs_t, h0, seq_lengths=LENGTHS, resets=RESETS.T, time_major=True, remat=remat
            )
            assert ys.shape == (T, B, H)
            return jnp.sum(jnp.sin(ys) * cy_t) + jnp.sum(h**2)

        return (
            jax.value_and_grad(batch_major, (0, 1, 2))(p, xs, h0),
            jax.value_and_grad(time_major, (0, 1, 2))(p, jnp.swapaxes(xs, 0, 1), h0),
        )

    return run


@together.cases("layouts", [False, True])
def _layout_calls(remat):
    return {"out": (_both_layouts(remat), make(5, True))}


@pytest.mark.parametrize("remat", [False, True], ids=["store", "remat"])
def test_time_major_equals_batch_major(remat):
    g1, (v2, (gp, gx, gh)) = together("layouts", remat)["out"]
    assert_trees_close(g1, (v2, (gp, jnp.swapaxes(gx, 0, 1), gh)))


def test_time_major_with_extra_batch_dims():
    p, xs, _, _ = make(6, False)
    xs4 = xs.reshape(2, 2, T, I)

    @jax.jit
    def both(p, xs4):
        lengths = LENGTHS.reshape(2, 2)
        resets = RESETS.reshape(2, 2, T)
        return gru(p, xs4, seq_lengths=lengths, resets=resets), gru(
            p,
            jnp.moveaxis(xs4, 2, 0),
            seq_lengths=lengths,
            resets=np.moveaxis(resets, 2, 0),
            time_major=True,
        )

    (ys, h), (ys_t, h_t) = both(p, xs4)
    assert_trees_close((jnp.moveaxis(ys, 2, 0), h), (ys_t, h_t))


# ------------------------------------------------------------------------- stacks


def test_bidirectional_stack_on_a_packed_row_equals_each_segment_alone():
    stack = gru_jax.init_gru_stack(
        jax.random.key(0), I, H, num_layers=2, bidirectional=True, dtype=jnp.float64
    )
    stack = jax.tree.map(lambda a: a + 0.1, stack)
    _, xs, _, _ = make(7, False)
    seg_xs, _, seg_lengths, where = segment_rows(np.asarray(xs), np.zeros((B, H)), reverse=False)

    @jax.jit
    def run(stack, xs, seg_xs):
        return (
            gru_stack(stack, xs, seq_lengths=LENGTHS, resets=RESETS),
            gru_stack(stack, seg_xs, seq_lengths=seg_lengths)[0],
            gru_stack(
                stack, jnp.swapaxes(xs, 0, 1), seq_lengths=LENGTHS, resets=RESETS.T, time_major=True
            ),
        )

    (ys, h_n), seg_ys, (ys_t, h_t) = run(stack, xs, seg_xs)
    layers = [[(q.w_x, q.w_h, q.b_x, q.b_h, q.reset_after) for q in layer] for layer in stack]
    ref_ys, ref_h = np_gru_stack(layers, xs, None, LENGTHS, RESETS)
    np.testing.assert_allclose(ys, ref_ys, atol=TOL)
    np.testing.assert_allclose(h_n, ref_h, atol=TOL)
    # and each segment run alone through the stack (all segments as one batch)
    for s, (b, a, c) in enumerate(where):
        np.testing.assert_allclose(ys[b, a:c], seg_ys[s, : c - a], atol=TOL)
    assert_trees_close((jnp.swapaxes(ys_t, 0, 1), h_t), (ys, h_n))


def test_gru_stack_cell_steps_equal_gru_stack():
    stack = gru_jax.init_gru_stack(
        jax.random.key(1), I, H, num_layers=3, reset_after=True, dtype=jnp.float64
    )
    _, xs, _, _ = make(8, True)
    h0 = jnp.asarray(np.random.default_rng(8).standard_normal((3, B, H)) * 0.5)

    def step(h, x):
        h = gru_stack_cell(stack, h, x)
        return h, h[-1]

    @jax.jit
    def both(xs, h0):
        return gru_stack(stack, xs, h0), jax.lax.scan(step, h0, jnp.swapaxes(xs, 0, 1))

    (ys, h_n), (h_last, ys_steps) = both(xs, h0)
    assert_trees_close((jnp.swapaxes(ys_steps, 0, 1), h_last), (ys, h_n))


def test_gru_stack_cell_errors():
    bi = gru_jax.init_gru_stack(jax.random.key(0), I, H, num_layers=1, bidirectional=True)
    with pytest.raises(ValueError, match=r"gru_stack_cell: params must be a unidirectional"):
        gru_stack_cell(bi, jnp.zeros((2, 4, H)), jnp.zeros((4, I)))
    uni = gru_jax.init_gru_stack(jax.random.key(0), I, H, num_layers=2)
    with pytest.raises(
        ValueError,
        match=r"gru_stack_cell: h must have shape \(L, \*B, H\) = "
        r"\(2, 4, 5\); got \(1, 4, 5\)",
    ):
        gru_stack_cell(uni, jnp.zeros((1, 4, H)), jnp.zeros((4, I)))


# ------------------------------------------------------------------------- helpers, errors


def test_segment_helpers_find_the_segments():
    ids = np.array([[7, 7, 3, 3, 3, 1, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]])
    resets = gru_jax.resets_from_segment_ids(ids)
    assert resets.tolist() == [
        [False, False, True, False, False, True, True, False],
        [False] + [True] * 7,
    ]
    ends = gru_jax.segment_ends(resets, seq_lengths=np.array([6, 8]))
    assert ends.tolist() == [[False, True, False, False, True, True, False, False], [True] * 8]
    # The forward final state of each segment is ys at its end.
    p, _, _, _ = make(9, False)
    xs = jnp.asarray(np.random.default_rng(9).standard_normal((2, 8, I)))
    (ys, _), (alone, _) = jax.jit(
        lambda p, xs: (gru(p, xs, seq_lengths=np.array([6, 8]), resets=resets), gru(p, xs[0, 2:5]))
    )(p, xs)
    np.testing.assert_allclose(ys[0][np.asarray(ends[0])][1], alone[-1], atol=TOL)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"resets": np.zeros((B, T), np.int32)},
            TypeError,
            "gru: resets must have dtype bool; got int32",
        ),
        (
            {"resets": np.zeros((B, T - 1), bool)},
            ValueError,
            rf"gru: resets must have shape \(\*B, T\) = \({B}, {T}\); got \({B}, {T - 1}\)",
        ),
        (
            {"resets": np.zeros((B, T), bool), "time_major": True},
            ValueError,
            rf"gru: resets must have shape \(T, \*B\) = \({B}, {B}\); got \({B}, {T}\)",
        ),
        ({"time_major": 1}, TypeError, "gru: time_major must be a bool; got int"),
    ],
)
def test_bad_resets_are_clear_errors(kwargs, error, message):
    p, xs, _, _ = make(10, False)
    if kwargs.get("time_major") is True:
        xs = xs[:, :B]  # (T', B, I) read time-major: T' = 4 rows, B' = 4
    with pytest.raises(error, match=message):
        gru(p, xs, **kwargs)


# ------------------------------------------------------------------------- Flax modules


def test_flax_modules_take_resets_time_major_and_step():
    from flax import nnx

    import gru_jax.linen
    import gru_jax.nnx

    _, xs, _, _ = make(11, False)
    xs32 = xs.astype(jnp.float32)
    carry = jnp.ones((2, B, H)) * 0.1
    lin = gru_jax.linen.GRU(H, num_layers=2, return_carry=True)
    lin_t = gru_jax.linen.GRU(H, num_layers=2, return_carry=True, time_major=True)
    variables = jax.jit(lin.init)(jax.random.key(0), xs32)

    @jax.jit
    def linen_run(variables, xs32, carry):
        stack = gru_jax.linen.tree_to_params(variables["params"], reset_after=False)
        return (
            gru_stack(stack, xs32, seq_lengths=LENGTHS, resets=RESETS),
            lin.apply(variables, xs32, seq_lengths=LENGTHS, resets=RESETS),
            lin_t.apply(variables, jnp.swapaxes(xs32, 0, 1), seq_lengths=LENGTHS, resets=RESETS.T),
            lin.apply(variables, carry, xs32[:, 0], method=gru_jax.linen.GRU.step),
            gru_stack_cell(stack, carry, xs32[:, 0]),
        )

    want, got, (ys_t, h_t), step, step_want = linen_run(variables, xs32, carry)
    assert_trees_close(got, want, tol=0)
    assert_trees_close((jnp.swapaxes(ys_t, 0, 1), h_t), want, tol=1e-6)
    assert_trees_close(step, step_want, tol=0)

    mod = gru_jax.nnx.GRU(I, H, num_layers=2, return_carry=True, rngs=nnx.Rngs(0))
    mod_t = gru_jax.nnx.GRU(
        I, H, num_layers=2, return_carry=True, time_major=True, rngs=nnx.Rngs(0)
    )

    @nnx.jit
    def nnx_run(mod, mod_t, xs32, carry):
        return (
            gru_stack(mod.gru_params, xs32, seq_lengths=LENGTHS, resets=RESETS),
            mod(xs32, seq_lengths=LENGTHS, resets=RESETS),
            mod_t(jnp.swapaxes(xs32, 0, 1), seq_lengths=LENGTHS, resets=RESETS.T),
            mod.step(carry, xs32[:, 0]),
            gru_stack_cell(mod.gru_params, carry, xs32[:, 0]),
        )

    want, got, (ys_t, h_t), step, step_want = nnx_run(mod, mod_t, xs32, carry)
    assert_trees_close(got, want, tol=0)
    assert_trees_close(step, step_want, tol=0)
    assert_trees_close((jnp.swapaxes(ys_t, 0, 1), h_t), want, tol=1e-6)


def test_flax_mingru_modules_take_resets_and_time_major():
    from flax import nnx

    import gru_jax.linen
    import gru_jax.nnx

    _, xs, _, _ = make(12, False)
    xs32 = xs.astype(jnp.float32)
    lin = gru_jax.linen.MinGRU(H, return_carry=True)
    lin_t = gru_jax.linen.MinGRU(H, return_carry=True, time_major=True)
    variables = jax.jit(lin.init)(jax.random.key(0), xs32)

    @jax.jit
    def linen_run(variables, xs32):
        params = gru_jax.MinGRUParams(**variables["params"])
        return (
            gru_jax.mingru(params, xs32, seq_lengths=LENGTHS, resets=RESETS),
            lin.apply(variables, xs32, seq_lengths=LENGTHS, resets=RESETS),
            lin_t.apply(variables, jnp.swapaxes(xs32, 0, 1), seq_lengths=LENGTHS, resets=RESETS.T),
        )

    want, got, (ys_t, h_t) = linen_run(variables, xs32)
    assert_trees_close(got, want, tol=0)
    assert_trees_close((jnp.swapaxes(ys_t, 0, 1), h_t), want, tol=1e-6)
    mod = gru_jax.nnx.MinGRU(I, H, return_carry=True, time_major=True, rngs=nnx.Rngs(0))

    @nnx.jit
    def nnx_run(mod, xs32):
        return (
            gru_jax.mingru(mod.mingru_params, xs32, seq_lengths=LENGTHS, resets=RESETS),
            mod(jnp.swapaxes(xs32, 0, 1), seq_lengths=LENGTHS, resets=RESETS.T),
        )

    want, (ys_t, h_t) = nnx_run(mod, xs32)
    assert_trees_close((jnp.swapaxes(ys_t, 0, 1), h_t), want, tol=1e-6)


def test_task_models_step_like_a_length_one_sequence():
    """Sampling (charlm) and greedy decoding (seq2seq) step the stack with GRU.step."""
    from gru_jax.tasks.charlm import CharLM
    from gru_jax.tasks.seq2seq import Seq2Seq

    tokens = jnp.array([3, 5, 7])
    carry = jnp.full((2, 3, 6), 0.2)
    lm = CharLM(vocab_size=11, embed_dim=4, hidden_size=6, num_layers=2)
    s2s = Seq2Seq(vocab_size=11, embed_dim=4, hidden_size=6, num_layers=2)
    batch = {
        "source": jnp.ones((3, 5), jnp.int32),
        "source_lengths": jnp.array([5, 3, 1]),
        "decoder_inputs": jnp.ones((3, 4), jnp.int32),
    }

    @jax.jit
    def run(tokens, carry, batch):
        lm_params = lm.init(jax.random.key(0), {"inputs": jnp.zeros((3, 4), jnp.int32)})
        s2s_params = s2s.init(jax.random.key(1), batch)
        return (
            lm.apply(lm_params, tokens[:, None], carry, method=CharLM.logits_and_carry),
            lm.apply(lm_params, tokens, carry, method=CharLM.next_logits),
            s2s.apply(s2s_params, tokens[:, None], carry, method=Seq2Seq.decode),
            s2s.apply(s2s_params, tokens, carry, method=Seq2Seq.next_logits),
        )

    lm_want, lm_got, s2s_want, s2s_got = run(tokens, carry, batch)
    for (want_logits, want_carry), got in ((lm_want, lm_got), (s2s_want, s2s_got)):
        assert_trees_close(got, (want_logits[:, 0], want_carry), tol=1e-6)
