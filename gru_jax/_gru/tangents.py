"""The GRU's tangents: what the hand-written JVP rule (:mod:`gru_jax._gru.jvp`) computes.

* :func:`input_tangents`: every tangent term of the gate pre-activations that does not go
  through the recurrence, for all steps at once, as large matmuls outside the loop;
* :func:`tangent_scan`: the linear recurrence of the state tangent, whose only other factors
  are the stored or recomputed gates, so that its transpose (reverse mode) is a clean reverse
  scan.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gru_jax._base.typing import Array, DTypeLike
from gru_jax._gru.forward import blocks, is_zero, mm_flat, project


def input_tangents(
    primals: Sequence[Any],
    tangents: Sequence[Any],
    res: Sequence[Array],
    *,
    reset_after: bool,
    acc: DTypeLike,
) -> tuple[Array, ...]:
    """``q = (q_z, q_r, q_n)``, each ``(T, N, H)``: every tangent term of the gate
    pre-activations except those through ``dh_prev``, computed for all steps at once as large
    matmuls outside the loop (zeros if all of them are).

    For reset_after, ``q_n = dgx_n + r ⊙ (h_prev dW_hn + db_hn)``: the part of
    ``d(gx_n + r ⊙ ghn)`` that involves neither ``dr`` nor ``dh_prev``.
    """
    w_x, w_h, _, _, xs, _ = primals
    dw_x, dw_h, db_x, db_h, dxs, _ = tangents
    hprev, r = res[0], res[2]
    hidden = w_h.shape[0]
    terms = []  # each a triple of per-gate terms (arrays or broadcastable biases)
    if not is_zero(dxs):
        terms.append(project(dxs, w_x, acc))
    if not is_zero(dw_x):
        terms.append(project(xs, dw_x, acc))
    if not is_zero(db_x):
        terms.append(blocks(db_x.astype(acc), hidden))
    h_terms = []
    if not is_zero(dw_h):
        if reset_after:
            h_terms.append(project(hprev, dw_h, acc))
        else:
            rh = (r * hprev.astype(acc)).astype(hprev.dtype)
            wz, wr, wn = blocks(dw_h, hidden)
            h_terms.append((mm_flat(hprev, wz, acc), mm_flat(hprev, wr, acc), mm_flat(rh, wn, acc)))
    if not is_zero(db_h):
        h_terms.append(blocks(db_h.astype(acc), hidden))
    if h_terms:
        pz, pr, pn = (functools.reduce(jnp.add, g) for g in zip(*h_terms, strict=True))
        terms.append((pz, pr, r * pn) if reset_after else (pz, pr, pn))
    shape = r.shape
    if not terms:
        return (jnp.zeros(shape, acc),) * 3
    return tuple(
        jnp.broadcast_to(functools.reduce(jnp.add, g), shape) for g in zip(*terms, strict=True)
    )


def tangent_scan(
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
            gz, gr, gn = blocks(mm_t(dh, w_hh_t[0]), hidden)
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
