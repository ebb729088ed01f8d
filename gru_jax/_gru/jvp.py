"""The fast GRU scan and its hand-written derivative (a ``custom_jvp``, not a VJP).

:func:`scan_gru` runs a GRU over batch-major inputs ``xs (N, T, I)``. It is a ``jax.custom_jvp``
function whose JVP rule is written by hand so that its *transpose*, which JAX derives for
reverse mode, has the shape of a good hand-written backward pass:

* every tangent that does not go through the recurrence (``dx W_x``, ``x dW_x``,
  ``h_prev dW_h``, the biases) is computed for many steps at once, as large matmuls, outside
  the loop (:func:`input_tangents`);
* the tangent recurrence inside the loop (:func:`tangent_scan`) is linear, with the stored or
  recomputed gates as its only other factors, and has one (``reset_after=True``) or two
  (``reset_after=False``) small recurrent matmuls per step.

Transposing this gives a reverse scan that yields the per-step gate gradients, followed by the
weight gradients as a few large matmuls (``X^T dG``, ``H_prev^T dG``) after the loop, instead
of autodiff's per-step accumulation of ``dW`` in the loop carry. Because it is a JVP rule and
not a ``custom_vjp``, forward mode (``jax.jvp``, ``jax.jacfwd``), reverse mode, ``vmap`` and
higher-order derivatives all work.

How the loops are arranged is a static :class:`Plan`, chosen per backend and shape by
:func:`plan`:

* the forward pass is either the plain scan (:func:`forward`, time-major, with the input
  projection inside the loop or hoisted before it) or chunked (:func:`forward_chunked`: one
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

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from gru_jax._base.typing import Array
from gru_jax._gru.forward import (
    Weights,
    forward,
    forward_chunked,
    gates_at_once,
    is_zero,
    pad_steps,
    valid_mask,
)
from gru_jax._gru.plan import Plan
from gru_jax._gru.tangents import input_tangents, tangent_scan


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
        return forward_chunked(
            (w_x, w_h, b_x, b_h), xs, h0, lengths, chunk=plan.fwd_chunk,
            time_major=plan.time_major, **kw,
        )  # fmt: skip
    xs_t = xs if plan.time_major else jnp.swapaxes(xs, 0, 1)
    mask = valid_mask(lengths, xs_t.shape[0])
    ys, h_last, _ = forward(
        (w_x, w_h, b_x, b_h), xs_t, h0, mask, hoist=plan.hoist, residuals=False, **kw
    )
    return (ys if plan.time_major else jnp.swapaxes(ys, 0, 1)), h_last


_scan_gru = jax.custom_jvp(_primal, nondiff_argnums=(8,))
""":func:`_primal` with the JVP rule :func:`_scan_gru_jvp` (its transpose is the backward)."""


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
    ys, h_last, res = forward(
        (w_x, w_h, b_x, b_h),
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
    q = input_tangents(primals, tangents, res, reset_after=reset_after, acc=acc)
    dh0 = tangents[5]
    dh0 = jnp.zeros_like(h0, acc) if is_zero(dh0) else dh0
    dys, dh_last = tangent_scan(
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
    if is_zero(tangents[4]):
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
        mask = valid_mask(lengths, steps)
        (ys, h_last), (dys, dh_last) = _jvp_whole(primals, tangents, mask, hoist=plan.hoist, **kw)
        ys = time_major(ys)
    return (ys, h_last), (time_major(dys), dh_last)


_scan_gru.defjvp(_scan_gru_jvp, symbolic_zeros=True)


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
        xs_p, ys_p = (pad_steps(a, padded - steps, axis) for a in (xs, ys))
        if starts is not None:
            starts = pad_steps(starts, padded - steps)
    mask = valid_mask(lengths, padded)
    if reverse and mask is not None:  # is step t + 1 valid: else the state before t is h0
        valid_next = jnp.concatenate([mask[1:], jnp.zeros_like(mask[:1])])
    else:
        valid_next = None

    def chunked(a: Array | None) -> Array | None:
        return None if a is None else a.reshape(num_chunks, chunk, *a.shape[1:])

    if not is_zero(dxs) and padded != steps:
        dxs = pad_steps(dxs, padded - steps)
    dparams = (dw_x, dw_h, db_x, db_h)
    dh0 = jnp.zeros_like(h0, acc) if is_zero(dh0) else dh0.astype(acc)
    scan_in = (
        jnp.arange(num_chunks),
        None if is_zero(dxs) else chunked(dxs),
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
        res = (
            hprev,
            *gates_at_once((w_x, w_h, b_x, b_h), x, hprev, reset_after=reset_after, acc=acc),
        )
        sub_t = (*dparams, SymbolicZero(jax.typeof(x)) if dx is None else dx, None)
        q = input_tangents(
            (w_x, w_h, b_x, b_h, x, None), sub_t, res, reset_after=reset_after, acc=acc
        )
        dys, dh_new = tangent_scan(
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


def scan_gru(
    weights: Weights,
    xs: Array,
    h0: Array,
    lengths: Array | None = None,
    starts: Array | None = None,
    *,
    plan: Plan,
) -> tuple[Array, Array]:
    """Run the GRU with ``weights = (w_x, w_h, b_x, b_h)`` over ``xs (N, T, I)``
    (``(T, N, I)`` if ``plan.time_major``); returns ``(ys, h_last (N, H))`` with ``ys`` in the
    layout of ``xs``. ``starts (T, N, 1)`` bool: the state before a marked step is zeros."""
    return _scan_gru(*weights, xs, h0, lengths, starts, plan)
