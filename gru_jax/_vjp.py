"""The fast GRU scan and its hand-written derivative.

:func:`scan_gru` runs a GRU over batch-major inputs ``xs (N, T, I)``. It is a ``jax.custom_jvp``
function whose JVP rule is written by hand so that its *transpose*, which JAX derives for
reverse mode, has the shape of a good hand-written backward pass:

* every tangent that does not go through the recurrence (``dx W_x``, ``x dW_x``,
  ``h_prev dW_h``, the biases) is computed for many steps at once, as large matmuls, outside
  the loop (:func:`_input_tangents`);
* the tangent recurrence inside the loop (:func:`_tangent_scan`) is linear, with the stored or
  recomputed gates as its only other factors, and has one (``reset_after=True``) or two
  (``reset_after=False``) small recurrent matmuls per step.

Transposing this gives a reverse scan that yields the per-step gate gradients, followed by the
weight gradients as a few large matmuls (``X^T dG``, ``H_prev^T dG``) after the loop, instead
of autodiff's per-step accumulation of ``dW`` in the loop carry. Because it is a JVP rule and
not a ``custom_vjp``, forward mode (``jax.jvp``, ``jax.jacfwd``), reverse mode, ``vmap`` and
higher-order derivatives all work.

How the loops are arranged is a static :class:`Plan`, chosen per backend and shape by
:func:`plan`:

* the forward pass is either the plain scan (:func:`_forward`, time-major, with the input
  projection inside the loop or hoisted before it) or chunked (:func:`_forward_chunked`: one
  input-projection matmul per chunk of steps, batch-major in and out);
* the derivative either stores the gates in the forward scan (:func:`_jvp_whole`) or, with
  ``remat`` or for small steps on CPU, recomputes them chunk by chunk from the outputs under
  ``jax.checkpoint`` (:func:`_jvp_recompute`): the state before each step is the previous
  output, so a chunk's gates are two large matmuls, not a recurrence.

Shapes: ``xs (N, T, I)`` with one flattened batch axis ``N``, ``h0 (N, H)``, ``lengths (N,)`` or
``None``, ``ys (N, T, H)``; internally the tangents are time-major ``(T, N, ...)``. Parameters
are in the compute dtype; matmuls accumulate, and gates are computed, in
``acc = promote_types(dtype, float32)``.

Two XLA:CPU facts shaped the code (measured with ``jax.profiler``): a fused loop that slices an
operand the scan dynamically sliced is not vectorised (so per-step inputs are one array per
gate), and a matmul whose operand is transposed runs ~2x slower at small batch (so the reverse
scan multiplies by an explicitly transposed ``W_h``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from gru_jax import _checks
from gru_jax._typing import Array, DTypeLike

Gates = tuple[Array, Array, Array]  # one array per gate, (z, r, n)
Cell = Callable[[Array, Gates], tuple[Array, tuple[Array, ...]]]  # see _make_cell


def _mm(a: Array, b: Array, acc: DTypeLike) -> Array:
    return jnp.matmul(a, b, preferred_element_type=acc)


def _is_zero(t: object) -> bool:
    return isinstance(t, SymbolicZero)


def _split_bias(
    b_x: Array, b_h: Array, reset_after: bool, acc: DTypeLike
) -> tuple[Array, Array | None]:
    """The bias added to the input projection and, for reset_after, the candidate's ``b_hn``."""
    hidden = b_h.shape[0] // 3
    b_x, b_h = b_x.astype(acc), b_h.astype(acc)
    if not reset_after:
        return b_x + b_h, None
    folded = b_x + jnp.concatenate([b_h[: 2 * hidden], jnp.zeros((hidden,), acc)])
    return folded, b_h[2 * hidden :]


def _pad_steps(a: Array, extra: int, axis: int = 0) -> Array:
    """``a`` with ``extra`` zero (or False) steps appended along its time ``axis``."""
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, extra)
    return jnp.pad(a, widths)


def _valid_mask(lengths: Array | None, steps: int) -> Array | None:
    if lengths is None:
        return None
    return (jnp.arange(steps)[:, None] < lengths[None, :])[..., None]  # (T, N, 1)


# ----------------------------------------------------------------------------- forward


def _blocks(a: Array, hidden: int) -> tuple[Array, Array, Array]:
    """The gate blocks ``(z, r, n)`` of the last axis of ``a (..., 3H)``.

    ``lax.split`` rather than slicing: its transpose is a concatenation, where three slices
    transpose to three pads and two adds (a slow fusion on XLA:CPU).
    """
    z, r, n = jax.lax.split(a, (hidden,) * 3, axis=a.ndim - 1)
    return z, r, n


def _project(a: Array, w: Array, acc: DTypeLike) -> Gates:
    """``a @ w`` for ``a (T, N, K)`` and ``w (K, 3H)``, as one ``(T, N, H)`` array per gate.

    Per-step inputs of a scan are kept one array per gate: XLA:CPU does not vectorise a fused
    loop that slices a dynamically-sliced operand, and would run the gates ~7x slower. The
    matmul is written on ``(T·N, K)`` so that its transpose, the weight gradient ``a^T ct``, is
    one plain 2-D matmul.
    """
    wz, wr, wn = _blocks(w, w.shape[1] // 3)
    return _mm_flat(a, wz, acc), _mm_flat(a, wr, acc), _mm_flat(a, wn, acc)


def _mm_flat(a: Array, w: Array, acc: DTypeLike) -> Array:
    """``a @ w`` computed on ``a`` flattened to 2-D (see :func:`_project`)."""
    return _mm(a.reshape(-1, a.shape[-1]), w, acc).reshape(*a.shape[:-1], w.shape[-1])


def _make_cell(
    w_h: Array, b_hn: Array | None, *, reset_after: bool, dt: DTypeLike, acc: DTypeLike
) -> Cell:
    """``cell(h, (gz, gr, gn)) -> (h_new, (h, z, r, n[, ghn]))``: one step, given the input
    projections of the three gates (biases included)."""
    hidden = w_h.shape[0]
    if reset_after:
        w_hh: tuple[Array, ...] = (w_h,)
    else:
        w_hh = (w_h[:, : 2 * hidden], w_h[:, 2 * hidden :])

    def cell(h: Array, gx: Gates) -> tuple[Array, tuple[Array, ...]]:
        gz, gr, gn = gx
        h_acc = h.astype(acc)
        if reset_after:
            hz, hr, hn = _blocks(_mm(h, w_hh[0], acc), hidden)  # one fused H x 3H matmul
            z = jax.nn.sigmoid(gz + hz)
            r = jax.nn.sigmoid(gr + hr)
            assert b_hn is not None  # _split_bias gives it for reset_after
            ghn = hn + b_hn
            n = jnp.tanh(gn + r * ghn)
            extra: tuple[Array, ...] = (ghn,)
        else:
            g = _mm(h, w_hh[0], acc)  # [z | r] first: n needs r
            hz, hr = g[..., :hidden], g[..., hidden:]
            z = jax.nn.sigmoid(gz + hz)
            r = jax.nn.sigmoid(gr + hr)
            rh = (r * h_acc).astype(dt)
            n = jnp.tanh(gn + _mm(rh, w_hh[1], acc))
            extra = ()
        h_new = (h_acc + z * (n - h_acc)).astype(dt)
        return h_new, (h, z, r, n, *extra)

    return cell


def _run_cells(
    cell: Cell,
    h0: Array,
    gates_x: Callable[[Any], Gates],
    scan_x: Any,
    mask: Array | None,
    *,
    reverse: bool,
    unroll: int | bool,
    residuals: bool,
    dt: DTypeLike,
    starts: Array | None = None,
) -> tuple[Array, Any]:
    """``lax.scan`` of ``cell`` over ``scan_x`` (``gates_x`` maps one step of it to the gate
    inputs), masked when ``mask`` is given. Where ``starts (T, N, 1)`` is True, the state
    before the step is zeros (a segment starts there). Returns ``(h_last, ys)`` or
    ``(h_last, (ys, res))``."""

    def step(h: Array, inp: Any, /) -> tuple[Array, Any]:
        x, valid, start = inp
        h_in = h if start is None else jnp.where(start, jnp.zeros((), h.dtype), h)
        h_new, res = cell(h_in, gates_x(x))
        y = h_new
        if valid is not None:  # past the length: the state stays, the output is zero
            h_new = jnp.where(valid, h_new, h)
            y = jnp.where(valid, h_new, jnp.zeros((), dt))
        return h_new, ((y, res) if residuals else y)

    return jax.lax.scan(step, h0, (scan_x, mask, starts), reverse=reverse, unroll=unroll)


def _forward(
    w_x: Array,
    w_h: Array,
    b_x: Array,
    b_h: Array,
    xs: Array,
    h0: Array,
    mask: Array | None,
    *,
    reset_after: bool,
    reverse: bool,
    unroll: int | bool,
    hoist: bool,
    residuals: bool,
    starts: Array | None = None,
) -> tuple[Array, Array, tuple[Array, ...] | None]:
    """The forward recurrence on time-major ``xs (T, N, I)``. Returns ``(ys, h_last, res)``;
    ``res`` is None unless asked.

    ``res = (hprev, z, r, n[, ghn])``, each ``(T, N, H)``: the state before each step (zeros
    where ``starts`` marks a segment start) and the gates (``ghn = h W_hn + b_hn`` only for
    reset_after).
    """
    dt = xs.dtype
    acc = jnp.promote_types(dt, jnp.float32)
    hidden = w_h.shape[0]
    bias, b_hn = _split_bias(b_x, b_h, reset_after, acc)
    cell = _make_cell(w_h, b_hn, reset_after=reset_after, dt=dt, acc=acc)
    if hoist:  # x W_x for all steps at once, as three large matmuls
        bias_blocks = _blocks(bias, hidden)
        scan_x: tuple[Array, ...] | Array = tuple(
            g + b for g, b in zip(_project(xs, w_x, acc), bias_blocks, strict=True)
        )

        def gates_x(inp: Any) -> Any:
            return inp
    else:
        scan_x = xs

        def gates_x(inp: Any) -> Any:
            return _blocks(_mm(inp, w_x, acc) + bias, hidden)

    h_last, out = _run_cells(
        cell,
        h0,
        gates_x,
        scan_x,
        mask,
        reverse=reverse,
        unroll=unroll,
        residuals=residuals,
        dt=dt,
        starts=starts,
    )
    if residuals:
        ys, res = out
        return ys, h_last, res
    return out, h_last, None


def _forward_chunked(
    w_x: Array,
    w_h: Array,
    b_x: Array,
    b_h: Array,
    xs: Array,
    h0: Array,
    lengths: Array | None,
    *,
    reset_after: bool,
    reverse: bool,
    unroll: int | bool,
    chunk: int,
    starts: Array | None = None,
    time_major: bool = False,
) -> tuple[Array, Array]:
    """The forward recurrence on ``xs (N, T, I)`` (``(T, N, I)`` if ``time_major``), ``chunk``
    steps at a time.

    Each chunk's input projection is one ``(N·chunk, I) x (I, 3H)`` matmul (instead of ``chunk``
    small ones inside the loop, and without a ``(T, N, 3H)`` buffer for all of them), the
    chunk's outputs are written into ``ys`` in the layout of ``xs``, and ``xs`` is read in
    place: no transposed copies of the inputs or outputs. ``starts (T, N, 1)`` marks the steps
    before which the state is zeros. Returns ``(ys, h_last)``.
    """
    dt = xs.dtype
    acc = jnp.promote_types(dt, jnp.float32)
    axis = 0 if time_major else 1  # the time axis of xs and ys
    steps, batch = xs.shape[axis], xs.shape[1 - axis]
    hidden = w_h.shape[0]
    bias, b_hn = _split_bias(b_x, b_h, reset_after, acc)
    cell = _make_cell(w_h, b_hn, reset_after=reset_after, dt=dt, acc=acc)
    num_chunks = -(-steps // chunk)
    padded = num_chunks * chunk
    if padded != steps:
        if lengths is None:
            lengths = jnp.full((batch,), steps, jnp.int32)
        xs = _pad_steps(xs, padded - steps, axis)
        if starts is not None:
            starts = _pad_steps(starts, padded - steps)

    def to_time_major(a: Array) -> Array:
        return a if time_major else jnp.swapaxes(a, 0, 1)

    def body(carry: tuple[Array, Array], c: Array) -> tuple[tuple[Array, Array], None]:
        h, ys = carry
        start = c * chunk
        x = jax.lax.dynamic_slice_in_dim(xs, start, chunk, axis=axis)  # (N, K, I) or (K, N, I)
        # one (N·K, I) x (I, 3H) matmul
        gx: tuple[Array, ...] = _blocks(_mm_flat(x, w_x, acc) + bias, hidden)
        gx = tuple(to_time_major(g) for g in gx)  # per gate (K, N, H)
        mask = None
        if lengths is not None:
            mask = ((start + jnp.arange(chunk))[:, None] < lengths[None, :])[..., None]
        st = None if starts is None else jax.lax.dynamic_slice_in_dim(starts, start, chunk, 0)
        h, y = _run_cells(
            cell,
            h,
            lambda g: g,
            gx,
            mask,
            reverse=reverse,
            unroll=unroll,
            residuals=False,
            dt=dt,
            starts=st,
        )
        ys = jax.lax.dynamic_update_slice_in_dim(ys, to_time_major(y), start, axis=axis)
        return (h, ys), None

    shape = (padded, batch, hidden) if time_major else (batch, padded, hidden)
    ys = jnp.zeros(shape, dt)
    (h_last, ys), _ = jax.lax.scan(body, (h0, ys), jnp.arange(num_chunks), reverse=reverse)
    if padded != steps:  # drop the padded steps (no slice op when there are none)
        ys = jax.lax.slice_in_dim(ys, 0, steps, axis=axis)
    return ys, h_last


# ----------------------------------------------------------------------------- tangents


def _input_tangents(
    primals: Sequence[Any],
    tangents: Sequence[Any],
    res: Sequence[Array],
    *,
    reset_after: bool,
    acc: DTypeLike,
) -> tuple[Array, ...] | None:
    """``q = (q_z, q_r, q_n)``, each ``(T, N, H)``: every tangent term of the gate
    pre-activations except those through ``dh_prev``, computed for all steps at once as large
    matmuls outside the loop. ``None`` if all of them are zero.

    For reset_after, ``q_n = dgx_n + r ⊙ (h_prev dW_hn + db_hn)``: the part of
    ``d(gx_n + r ⊙ ghn)`` that involves neither ``dr`` nor ``dh_prev``.
    """
    w_x, w_h, _, _, xs, _ = primals
    dw_x, dw_h, db_x, db_h, dxs, _ = tangents
    hprev, r = res[0], res[2]
    hidden = w_h.shape[0]
    terms = []  # each a triple of per-gate terms (arrays or broadcastable biases)
    if not _is_zero(dxs):
        terms.append(_project(dxs, w_x, acc))
    if not _is_zero(dw_x):
        terms.append(_project(xs, dw_x, acc))
    if not _is_zero(db_x):
        terms.append(_blocks(db_x.astype(acc), hidden))
    h_terms = []
    if not _is_zero(dw_h):
        if reset_after:
            h_terms.append(_project(hprev, dw_h, acc))
        else:
            rh = (r * hprev.astype(acc)).astype(hprev.dtype)
            wz, wr, wn = _blocks(dw_h, hidden)
            h_terms.append(
                (_mm_flat(hprev, wz, acc), _mm_flat(hprev, wr, acc), _mm_flat(rh, wn, acc))
            )
    if not _is_zero(db_h):
        h_terms.append(_blocks(db_h.astype(acc), hidden))
    if h_terms:
        pz, pr, pn = (functools.reduce(jnp.add, g) for g in zip(*h_terms, strict=True))
        terms.append((pz, pr, r * pn) if reset_after else (pz, pr, pn))
    if not terms:
        return None
    shape = r.shape
    return tuple(
        jnp.broadcast_to(functools.reduce(jnp.add, g), shape) for g in zip(*terms, strict=True)
    )


def _tangent_scan(
    w_h: Array,
    q: Sequence[Array],
    dh0: Array,
    res: Sequence[Array],
    mask: Array | None,
    *,
    reset_after: bool,
    reverse: bool,
    unroll: int | bool,
    dt: DTypeLike,
    acc: DTypeLike,
    starts: Array | None = None,
) -> tuple[Array, Array]:
    """The linear recurrence of the state tangent. Every operation is linear in ``(q, dh)``
    with the stored gates as the only other factors, so its transpose is a clean reverse scan.
    Where ``starts`` marks a segment start, the tangent of the state before the step is zero.

    Returns ``(dys (T, N, H) dt, dh_last (N, H) dt)``.
    """
    hidden = w_h.shape[0]
    # The recurrent kernels, transposed once here. ``dh @ W`` is written as ``dh @ (W^T)^T`` so
    # that its transpose in the reverse scan, ``ct @ W^T``, is a plain matmul on a stored
    # ``W^T``; XLA:CPU runs the transposed-operand form ~2x slower at small batch. The barrier
    # stops XLA from folding the transpose back into the matmul.
    if reset_after:
        w_hh_t: tuple[Array, ...] = (jax.lax.optimization_barrier(w_h.T),)
    else:
        w_hh_t = jax.lax.optimization_barrier((w_h[:, : 2 * hidden].T, w_h[:, 2 * hidden :].T))

    def mm_t(a: Array, w_t: Array) -> Array:  # a @ w_t^T
        return jax.lax.dot_general(
            a.astype(dt), w_t, (((a.ndim - 1,), (1,)), ((), ())), preferred_element_type=acc
        )

    def sig_prime(d: Array, s: Array) -> Array:  # s (1 - s) d, written linearly in d
        ds = d * s
        return ds - ds * s

    def cell(
        dh: Array,
        qz: Array,
        qr: Array,
        qn: Array,
        hprev: Array,
        z: Array,
        r: Array,
        n: Array,
        *extra: Array,
    ) -> Array:
        hprev = hprev.astype(acc)
        if reset_after:
            (ghn,) = extra
            gz, gr, gn = _blocks(mm_t(dh, w_hh_t[0]), hidden)
            dz = sig_prime(qz + gz, z)
            dr = sig_prime(qr + gr, r)
            dan = qn + dr * ghn + r * gn
        else:
            gz, gr = jax.lax.split(mm_t(dh, w_hh_t[0]), (hidden, hidden), axis=1)
            dz = sig_prime(qz + gz, z)
            dr = sig_prime(qr + gr, r)
            drh = dr * hprev + r * dh
            dan = qn + mm_t(drh, w_hh_t[1])
        dn = dan - (dan * n) * n
        return dh + dz * n - dz * hprev + z * dn - z * dh

    def step(dh: Array, inp: Any) -> tuple[Array, Array]:
        valid, start, rest = inp
        dh_in = dh if start is None else jnp.where(start, jnp.zeros((), dh.dtype), dh)
        dh_new = cell(dh_in, *rest)
        if valid is None:
            return dh_new, dh_new.astype(dt)
        dh_new = jnp.where(valid, dh_new, dh)
        return dh_new, jnp.where(valid, dh_new, jnp.zeros((), acc)).astype(dt)

    scan_in = (mask, starts, (*q, *res))
    dh_last, dys = jax.lax.scan(step, dh0.astype(acc), scan_in, reverse=reverse, unroll=unroll)
    return dys, dh_last.astype(dt)


# ----------------------------------------------------------------------------- the function


class Plan(NamedTuple):
    """How :func:`scan_gru` runs: static choices, made per backend and shape by :func:`plan`.

    Attributes:
      reset_after, reverse, unroll: as in :func:`gru_jax.gru`.
      fwd_chunk: steps per chunk of the batch-major chunked forward (:func:`_forward_chunked`);
        0 for the plain time-major scan (:func:`_forward`).
      hoist: in the plain scan, compute ``x W_x`` for all steps before the loop.
      recompute: in the derivative, recompute the gates chunk by chunk from the outputs
        (:func:`_jvp_recompute`) instead of storing them in the forward scan.
      train_chunk: steps per chunk of that recomputation.
      remat: checkpoint the recomputation, so that reverse mode stores only ``xs`` and ``ys``.
      time_major: ``xs`` and ``ys`` are ``(T, N, ·)`` instead of ``(N, T, ·)``. A layout, not a
        choice of :func:`plan`: every path reads and writes it in place.
    """

    reset_after: bool
    reverse: bool = False
    unroll: int | bool = 1
    fwd_chunk: int = 0
    hoist: bool = False
    recompute: bool = False
    train_chunk: int = 16
    remat: bool = False
    time_major: bool = False


def _primal(
    w_x: Array,
    w_h: Array,
    b_x: Array,
    b_h: Array,
    xs: Array,
    h0: Array,
    lengths: Array | None,
    starts: Array | None,
    plan: Plan,
) -> tuple[Array, Array]:
    """The forward pass on ``xs (N, T, I)`` (``(T, N, I)`` if ``plan.time_major``):
    ``(ys, h_last (N, H))``, ``ys`` in the layout of ``xs``."""
    kw: dict[str, Any] = {
        "reset_after": plan.reset_after,
        "reverse": plan.reverse,
        "unroll": plan.unroll,
        "starts": starts,
    }
    if plan.fwd_chunk:
        return _forward_chunked(
            w_x, w_h, b_x, b_h, xs, h0, lengths, chunk=plan.fwd_chunk,
            time_major=plan.time_major, **kw,
        )  # fmt: skip
    xs_t = xs if plan.time_major else jnp.swapaxes(xs, 0, 1)
    mask = _valid_mask(lengths, xs_t.shape[0])
    ys, h_last, _ = _forward(
        w_x, w_h, b_x, b_h, xs_t, h0, mask, hoist=plan.hoist, residuals=False, **kw
    )
    return (ys if plan.time_major else jnp.swapaxes(ys, 0, 1)), h_last


@functools.partial(jax.custom_jvp, nondiff_argnums=(8,))
def _scan_gru(
    w_x: Array,
    w_h: Array,
    b_x: Array,
    b_h: Array,
    xs: Array,
    h0: Array,
    lengths: Array | None,
    starts: Array | None,
    plan: Plan,
) -> tuple[Array, Array]:
    return _primal(w_x, w_h, b_x, b_h, xs, h0, lengths, starts, plan)


def _jvp_whole(
    primals: Sequence[Array],
    tangents: Sequence[Any],
    mask: Array | None,
    *,
    reset_after: bool,
    reverse: bool,
    unroll: int | bool,
    hoist: bool,
    starts: Array | None,
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    w_x, w_h, b_x, b_h, xs, h0 = primals
    dt = xs.dtype
    acc = jnp.promote_types(dt, jnp.float32)
    ys, h_last, res = _forward(
        w_x,
        w_h,
        b_x,
        b_h,
        xs,
        h0,
        mask,
        reset_after=reset_after,
        reverse=reverse,
        unroll=unroll,
        hoist=hoist,
        residuals=True,
        starts=starts,
    )
    assert res is not None  # residuals=True
    q = _input_tangents(primals, tangents, res, reset_after=reset_after, acc=acc)
    if q is None:
        q = (jnp.zeros(res[1].shape, acc),) * 3
    dh0 = tangents[5]
    dh0 = jnp.zeros_like(h0, acc) if _is_zero(dh0) else dh0
    dys, dh_last = _tangent_scan(
        w_h,
        q,
        dh0,
        res,
        mask,
        reset_after=reset_after,
        reverse=reverse,
        unroll=unroll,
        dt=dt,
        acc=acc,
        starts=starts,
    )
    return (ys, h_last), (dys, dh_last)


def _scan_gru_jvp(
    plan: Plan, primals: Sequence[Any], tangents: Sequence[Any]
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    *primals, lengths, starts = primals
    primals, tangents = list(primals), list(tangents[:6])

    def time_major(a: Array) -> Array:  # (N, T, ·) <-> (T, N, ·) unless already time-major
        return a if plan.time_major else jnp.swapaxes(a, 0, 1)

    # The tangents work time-major: dxs (T, N, I), dys (T, N, H).
    xs_t = time_major(primals[4])
    if _is_zero(tangents[4]):
        tangents[4] = SymbolicZero(jax.typeof(xs_t))
    else:
        tangents[4] = time_major(tangents[4])
    steps = xs_t.shape[0]
    kw: dict[str, Any] = {
        "reset_after": plan.reset_after,
        "reverse": plan.reverse,
        "unroll": plan.unroll,
        "starts": starts,
    }
    if (plan.recompute or plan.remat) and steps > 1:
        (ys, h_last), (dys, dh_last) = _jvp_recompute(
            primals, tangents, lengths, chunk=plan.train_chunk, remat=plan.remat, plan=plan, **kw
        )
    else:
        primals[4] = xs_t
        mask = _valid_mask(lengths, steps)
        (ys, h_last), (dys, dh_last) = _jvp_whole(primals, tangents, mask, hoist=plan.hoist, **kw)
        ys = time_major(ys)
    return (ys, h_last), (time_major(dys), dh_last)


_scan_gru.defjvp(_scan_gru_jvp, symbolic_zeros=True)


def _gates(
    w_x: Array,
    w_h: Array,
    b_x: Array,
    b_h: Array,
    xs: Array,
    hprev: Array,
    *,
    reset_after: bool,
    acc: DTypeLike,
) -> tuple[Array, ...]:
    """The gates of many steps at once, from their inputs and the states before them:
    ``xs (K, N, I)``, ``hprev (K, N, H)`` -> ``(z, r, n[, ghn])``, as :func:`_forward` computes
    them step by step, but as large matmuls."""
    dt = xs.dtype
    hidden = w_h.shape[0]
    bias, b_hn = _split_bias(b_x, b_h, reset_after, acc)
    gz, gr, gn = (g + b for g, b in zip(_project(xs, w_x, acc), _blocks(bias, hidden), strict=True))
    if reset_after:
        hz, hr, hn = _blocks(_mm_flat(hprev, w_h, acc), hidden)
    else:
        g = _mm_flat(hprev, w_h[:, : 2 * hidden], acc)
        hz, hr = jax.lax.split(g, (hidden, hidden), axis=g.ndim - 1)
    z = jax.nn.sigmoid(gz + hz)
    r = jax.nn.sigmoid(gr + hr)
    if reset_after:
        assert b_hn is not None  # _split_bias gives it for reset_after
        ghn = hn + b_hn
        return z, r, jnp.tanh(gn + r * ghn), ghn
    rh = (r * hprev.astype(acc)).astype(dt)
    return z, r, jnp.tanh(gn + _mm_flat(rh, w_h[:, 2 * hidden :], acc))


def _jvp_recompute(
    primals: Sequence[Array],
    tangents: Sequence[Any],
    lengths: Array | None,
    *,
    reset_after: bool,
    reverse: bool,
    unroll: int | bool,
    chunk: int,
    remat: bool,
    plan: Plan,
    starts: Array | None,
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """The JVP in chunks of ``chunk`` steps whose gates are recomputed from the outputs.

    ``primals`` hold ``xs (N, T, I)`` (``(T, N, I)`` if ``plan.time_major``); ``tangents`` a
    time-major ``dxs (T, N, I)``. Returns ``ys`` in the layout of ``xs`` and time-major ``dys``.
    Where ``starts (T, N, 1)`` marks a segment start, the state before the step is zeros, also
    at a chunk's first step.

    The forward pass computes nothing but ``ys``. The tangent is computed chunk by chunk: the
    states before a chunk's steps are its outputs shifted by one step, so its gates come from
    two large matmuls (no recurrence), followed by the chunk's part of the tangent recurrence.
    Under ``jax.checkpoint`` (``remat``), reverse mode keeps only ``xs`` and ``ys`` (read in
    place, batch-major) and recomputes one chunk's gates at a time; the weight gradients are
    per-chunk matmuls summed over chunks.
    """
    w_x, w_h, b_x, b_h, xs, h0 = primals
    dw_x, dw_h, db_x, db_h, dxs, dh0 = tangents
    dt = xs.dtype
    acc = jnp.promote_types(dt, jnp.float32)
    axis = 0 if plan.time_major else 1  # the time axis of xs and ys
    steps, batch = xs.shape[axis], xs.shape[1 - axis]
    ys, h_last = _primal(w_x, w_h, b_x, b_h, xs, h0, lengths, starts, plan)
    num_chunks = -(-steps // chunk)
    padded = num_chunks * chunk
    xs_p, ys_p = xs, ys
    if padded != steps:
        if lengths is None:
            lengths = jnp.full((batch,), steps, jnp.int32)
        xs_p, ys_p = (_pad_steps(a, padded - steps, axis) for a in (xs, ys))
        if starts is not None:
            starts = _pad_steps(starts, padded - steps)
    mask = _valid_mask(lengths, padded)
    if reverse and mask is not None:  # is step t + 1 valid: else the state before t is h0
        valid_next = jnp.concatenate([mask[1:], jnp.zeros_like(mask[:1])])
    else:
        valid_next = None

    def chunked(a: Array | None) -> Array | None:
        return None if a is None else a.reshape(num_chunks, chunk, *a.shape[1:])

    if not _is_zero(dxs) and padded != steps:
        dxs = _pad_steps(dxs, padded - steps)
    dparams = (dw_x, dw_h, db_x, db_h)
    dh0 = jnp.zeros_like(h0, acc) if _is_zero(dh0) else dh0.astype(acc)
    scan_in = (
        jnp.arange(num_chunks),
        None if _is_zero(dxs) else chunked(dxs),
        chunked(mask),
        chunked(valid_next),
        chunked(starts),
    )

    def time_major(a: Array, start: Array) -> Array:
        # a[:, start : start + chunk] (or a[start : start + chunk]) as (chunk, N, ...)
        piece = jax.lax.dynamic_slice_in_dim(a, start, chunk, axis=axis)
        return piece if plan.time_major else jnp.swapaxes(piece, 0, 1)

    def body(
        dh: Array,
        inp: tuple[Array, Array | None, Array | None, Array | None, Array | None],
    ) -> tuple[Array, Array]:
        c, dx, m, vn, st = inp
        start = c * chunk
        x, y = time_major(xs_p, start), time_major(ys_p, start)
        if not reverse:  # before step t: the output of step t - 1, or h0
            bound = jax.lax.dynamic_index_in_dim(ys_p, jnp.maximum(start - 1, 0), axis, False)
            bound = jnp.where(c == 0, h0, bound)
            hprev = jnp.concatenate([bound[None], y[:-1]])
        else:  # before step t: the output of step t + 1, or h0
            nxt = jnp.minimum(start + chunk, padded - 1)
            bound = jax.lax.dynamic_index_in_dim(ys_p, nxt, axis, False)
            bound = jnp.where(c == num_chunks - 1, h0, bound)
            hprev = jnp.concatenate([y[1:], bound[None]])
            if vn is not None:
                hprev = jnp.where(vn, hprev, h0)
        if st is not None:  # a segment starts: the state before the step is zeros
            hprev = jnp.where(st, jnp.zeros((), hprev.dtype), hprev)
        res = (hprev, *_gates(w_x, w_h, b_x, b_h, x, hprev, reset_after=reset_after, acc=acc))
        sub_t = (*dparams, SymbolicZero(jax.typeof(x)) if dx is None else dx, None)
        q = _input_tangents(
            (w_x, w_h, b_x, b_h, x, None), sub_t, res, reset_after=reset_after, acc=acc
        )
        if q is None:
            q = (jnp.zeros(hprev.shape, acc),) * 3
        dys, dh_new = _tangent_scan(
            w_h,
            q,
            dh,
            res,
            m,
            reset_after=reset_after,
            reverse=reverse,
            unroll=unroll,
            dt=dt,
            acc=acc,
            starts=st,
        )
        return dh_new.astype(acc), dys

    if remat:
        body = jax.checkpoint(body)
    dh_last, dys = jax.lax.scan(body, dh0, scan_in, reverse=reverse)
    dys = dys.reshape(padded, *dys.shape[2:])[:steps]
    return (ys, h_last), (dys, dh_last.astype(dt))


def _pick_chunk(steps: int, target: int) -> int:
    """A chunk length near ``target`` (at most ``steps``), preferring one that divides ``steps``
    (no padding) within a factor of two of ``target``."""
    target = max(1, min(target, steps))
    for k in sorted(
        range(max(1, target // 2), min(steps, 2 * target) + 1), key=lambda k: abs(k - target)
    ):
        if steps % k == 0:
            return k
    return target


def default_chunk(steps: int) -> int:
    """Chunk length for ``remat``: about ``sqrt(T)``, at least 16."""
    return max(16, math.ceil(math.sqrt(steps)))


# Tuned on XLA:CPU, 2 cores (AMD EPYC, AVX-512); see plan() and the README's Performance section.
_CPU_CHUNK_ROWS = 1024  # rows (N·K) of a chunk's input-projection matmul
_CPU_SMALL_STEP_FLOPS = 4e6  # below this, a step is loop-overhead bound
SYMBOLIC_CHUNK = 32  # steps per chunk when the batch or the length is symbolic (jax.export)


def plan(
    steps: int,
    batch: int,
    input_size: int,
    hidden: int,
    *,
    reset_after: bool,
    reverse: bool = False,
    unroll: int | bool = 1,
    remat: bool = False,
    backend: str | None = None,
    time_major: bool = False,
) -> Plan:
    """The :class:`Plan` for a GRU over ``steps`` steps of ``batch`` sequences on ``backend``.

    On CPU (measured, 2 cores): the forward pass runs in chunks of about 1024 rows (``N·K``)
    whose input projection is one matmul (10-25% faster than a projection per step, and no
    transposed copies); the derivative stores the gates in the forward scan, except when a step
    is small (``2·N·(I+H)·3H`` below 4 MFLOP): then the loop overhead of writing five residuals
    per step costs more than recomputing the gates in chunks, and the checkpointed recompute
    path (:func:`_jvp_recompute`) is used, which also needs far less memory. ``unroll > 1``
    measured no faster on CPU, so the default stays 1. On accelerators: one large input matmul
    before the loop (``hoist``) and stored gates.
    """
    backend = jax.default_backend() if backend is None else backend
    # Under jax.export a dimension may be symbolic (not an int): a plan must not compare it
    # with a threshold. It then takes the arrangement it would take at any size: chunks of a
    # fixed length (the padding to a multiple of it is symbolic), and for an unknown batch the
    # stored gates.
    known_steps, known_batch = _checks.known_dim(steps), _checks.known_dim(batch)
    target = -(-_CPU_CHUNK_ROWS // max(batch, 1)) if known_batch else SYMBOLIC_CHUNK
    chunk = _pick_chunk(steps, target) if known_steps else target
    several_steps = not known_steps or steps > 1
    if backend == "cpu":
        fwd_chunk = chunk if several_steps else 0
        hoist = False
        small = known_batch and 2.0 * batch * (input_size + hidden) * 3 * hidden < (
            _CPU_SMALL_STEP_FLOPS
        )
        recompute = small and several_steps
    else:
        fwd_chunk, hoist, recompute = 0, True, False
    if remat:
        train_chunk = _pick_chunk(steps, default_chunk(steps)) if known_steps else SYMBOLIC_CHUNK
    else:
        train_chunk = chunk
    return Plan(
        reset_after=reset_after,
        reverse=reverse,
        unroll=unroll,
        fwd_chunk=fwd_chunk,
        hoist=hoist,
        recompute=recompute,
        train_chunk=train_chunk,
        remat=remat or recompute,
        time_major=time_major,
    )


def scan_gru(
    w_x: Array,
    w_h: Array,
    b_x: Array,
    b_h: Array,
    xs: Array,
    h0: Array,
    lengths: Array | None = None,
    starts: Array | None = None,
    *,
    plan: Plan,
) -> tuple[Array, Array]:
    """Run the GRU over ``xs (N, T, I)`` (``(T, N, I)`` if ``plan.time_major``); returns
    ``(ys, h_last (N, H))`` with ``ys`` in the layout of ``xs``. ``starts (T, N, 1)`` bool: the
    state before a marked step is zeros."""
    return _scan_gru(w_x, w_h, b_x, b_h, xs, h0, lengths, starts, plan)
