"""``impl="pallas"``: the GRU over a sequence with the recurrence in Pallas kernels, and its
derivative.

The structure is that of :mod:`gru_jax._gru.jvp`, with the two loops in kernels
(:mod:`gru_jax._gru.kernels`):

* the forward pass is one large XLA matmul for the input projections, then
  :func:`~gru_jax._gru.kernels.forward_kernel` for the recurrence;
* :func:`fused_gru` is a ``jax.custom_jvp`` whose rule computes the input tangents as large
  matmuls (:func:`~gru_jax._gru.tangents.input_tangents`) and the state tangent's linear
  recurrence with the primitive ``gru_tangent``;
* ``gru_tangent`` is linear in its tangent operands. Its transpose is
  :func:`~gru_jax._gru.kernels.transpose_kernel`, the reverse-time kernel, so reverse mode is the
  forward kernel, the reverse-time kernel, and then the weight gradients as large matmuls (JAX
  transposes :func:`~gru_jax._gru.tangents.input_tangents`). Its batching rule folds a mapped
  axis into the kernel's batch (``vmap``, ``vmap(grad)``, ``grad(vmap)``); evaluated directly
  (forward mode, ``jax.jvp``) and differentiated again (higher orders) it is
  :func:`~gru_jax._gru.tangents.tangent_scan`, the same recurrence as a ``lax.scan``.

Why a primitive: a ``pallas_call`` in the tangent path of a ``custom_jvp`` cannot be transposed,
``custom_vjp`` rules have no transpose, and ``jax.custom_derivatives.linear_call`` has no
batching rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from gru_jax._base.typing import Array
from gru_jax._gru.forward import Weights, blocks, is_zero, project, split_bias, valid_mask
from gru_jax._gru.kernels import forward_kernel, transpose_kernel
from gru_jax._gru.tangents import input_tangents, tangent_scan


class Fused(NamedTuple):
    """The static options of :func:`fused_gru`."""

    reset_after: bool
    reverse: bool = False
    time_major: bool = False


def _projections(
    weights: Weights, xs_t: Array, reset_after: bool, acc: Any
) -> tuple[tuple[Array, Array, Array], Array | None]:
    w_x, w_h, b_x, b_h = weights
    bias, b_hn = split_bias(b_x, b_h, reset_after, acc)
    hidden = w_h.shape[0]
    gx = cast(
        tuple[Array, Array, Array],
        tuple(g + b for g, b in zip(project(xs_t, w_x, acc), blocks(bias, hidden), strict=True)),
    )
    return gx, b_hn


def _run(
    weights: Weights,
    xs: Array,
    h0: Array,
    lengths: Array | None,
    starts: Array | None,
    opts: Fused,
    residuals: bool,
) -> tuple[Array, Array, tuple[Array, ...] | None]:
    """The forward pass; ``xs (N, T, I)`` or time-major. Returns time-major ``ys``."""
    xs_t = xs if opts.time_major else jnp.swapaxes(xs, 0, 1)
    acc = jnp.promote_types(xs.dtype, jnp.float32)
    gx, b_hn = _projections(weights, xs_t, opts.reset_after, acc)
    return forward_kernel(
        gx,
        weights[1],
        b_hn,
        h0,
        lengths,
        starts,
        reset_after=opts.reset_after,
        reverse=opts.reverse,
        residuals=residuals,
    )


_run = jax.custom_jvp(_run, nondiff_argnums=(5, 6))


@_run.defjvp
def _run_jvp(opts: Fused, residuals: bool, primals: Any, tangents: Any) -> Any:
    raise NotImplementedError(
        "gru: second and higher derivatives of impl='pallas' are not implemented (the kernels "
        "have first derivatives only); use impl='xla' for them"
    )


def _primal(
    w_x: Array,
    w_h: Array,
    b_x: Array,
    b_h: Array,
    xs: Array,
    h0: Array,
    lengths: Array | None,
    starts: Array | None,
    opts: Fused,
) -> tuple[Array, Array]:
    ys, h_last, _ = _run((w_x, w_h, b_x, b_h), xs, h0, lengths, starts, opts, residuals=False)
    return (ys if opts.time_major else jnp.swapaxes(ys, 0, 1)), h_last


_fused = jax.custom_jvp(_primal, nondiff_argnums=(8,))


def _fused_jvp(
    opts: Fused, primals: Sequence[Any], tangents: Sequence[Any]
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    *primals, lengths, starts = primals
    w_x, w_h, b_x, b_h, xs, h0 = primals
    ys, h_last, res = _run((w_x, w_h, b_x, b_h), xs, h0, lengths, starts, opts, residuals=True)
    assert res is not None
    dt, acc = xs.dtype, res[1].dtype
    tangents = list(tangents[:6])
    xs_t = xs if opts.time_major else jnp.swapaxes(xs, 0, 1)
    if is_zero(tangents[4]):
        tangents[4] = SymbolicZero(jax.typeof(xs_t))
    elif not opts.time_major:
        tangents[4] = jnp.swapaxes(tangents[4], 0, 1)
    q = input_tangents(
        (w_x, w_h, b_x, b_h, xs_t, h0), tangents, res, reset_after=opts.reset_after, acc=acc
    )
    dh0 = jnp.zeros(h0.shape, acc) if is_zero(tangents[5]) else tangents[5].astype(acc)
    dys, dh_last = tangent(
        w_h, res, lengths, starts, q, dh0, reset_after=opts.reset_after, reverse=opts.reverse
    )
    dys, dh_last = dys.astype(dt), dh_last.astype(dt)
    if not opts.time_major:
        ys, dys = jnp.swapaxes(ys, 0, 1), jnp.swapaxes(dys, 0, 1)
    return (ys, h_last), (dys, dh_last)


_fused.defjvp(_fused_jvp, symbolic_zeros=True)


def fused_gru(
    weights: Weights,
    xs: Array,
    h0: Array,
    lengths: Array | None,
    starts: Array | None,
    opts: Fused,
) -> tuple[Array, Array]:
    """:func:`gru_jax._gru.jvp.scan_gru` with the loops in Pallas kernels: ``xs (N, T, I)``
    (``(T, N, I)`` if ``opts.time_major``), ``h0 (N, H)``, ``lengths (N,)``, ``starts (T, N, 1)``;
    returns ``(ys, h_last (N, H))`` with ``ys`` in the layout of ``xs``."""
    return _fused(*weights, xs, h0, lengths, starts, opts)


# --- gru_tangent: the state tangent's linear recurrence, transposed by the reverse-time kernel

gru_tangent_p = Primitive("gru_tangent")
gru_tangent_p.multiple_results = True

_LINEAR = 4  # the last four operands (q_z, q_r, q_n, dh0) are the linear ones


def tangent(
    w_h: Array,
    res: Sequence[Array],
    lengths: Array | None,
    starts: Array | None,
    q: Sequence[Array],
    dh0: Array,
    *,
    reset_after: bool,
    reverse: bool,
) -> tuple[Array, Array]:
    """``(dys (T, N, H), dh_last (N, H))`` in ``acc``: the state tangent's recurrence, as
    :func:`~gru_jax._gru.tangents.tangent_scan` computes it, linear in ``(q, dh0)``."""
    operands = [w_h, *res]
    if lengths is not None:
        operands.append(lengths)
    if starts is not None:
        operands.append(starts)
    dys, dh_last = gru_tangent_p.bind(
        *operands,
        *q,
        dh0,
        reset_after=reset_after,
        reverse=reverse,
        has_len=lengths is not None,
        has_starts=starts is not None,
    )
    return dys, dh_last


def _unpack(
    operands: Sequence[Any], reset_after: bool, has_len: bool, has_starts: bool
) -> tuple[Any, tuple[Any, ...], Any, Any, list[Any], Any]:
    ops = list(operands)
    w_h, res = ops[0], tuple(ops[1 : (6 if reset_after else 5)])
    del ops[: (6 if reset_after else 5)]
    lengths = ops.pop(0) if has_len else None
    starts = ops.pop(0) if has_starts else None
    return w_h, res, lengths, starts, ops[:3], ops[3]


def _tangent_scan(
    *operands: Array, reset_after: bool, reverse: bool, has_len: bool, has_starts: bool
) -> tuple[Array, Array]:
    w_h, res, lengths, starts, q, dh0 = _unpack(operands, reset_after, has_len, has_starts)
    acc = res[1].dtype
    mask = valid_mask(lengths, res[1].shape[0])
    dys, dh_last = tangent_scan(
        w_h,
        q,
        dh0,
        res,
        mask,
        reset_after=reset_after,
        reverse=reverse,
        unroll=1,
        dt=acc,
        acc=acc,
        starts=starts,
    )
    return dys, dh_last


def _abstract(
    *operands: Any, reset_after: bool, reverse: bool, has_len: bool, has_starts: bool
) -> tuple[jax.core.ShapedArray, jax.core.ShapedArray]:
    q0, dh0 = operands[-_LINEAR], operands[-1]
    return (jax.core.ShapedArray(q0.shape, q0.dtype), jax.core.ShapedArray(dh0.shape, dh0.dtype))


def _transpose(
    cts: Any, *operands: Any, reset_after: bool, reverse: bool, has_len: bool, has_starts: bool
) -> list[Array | None]:
    if any(ad.is_undefined_primal(a) for a in operands[:-_LINEAR]):
        raise NotImplementedError("gru_tangent is linear only in (q_z, q_r, q_n, dh0)")
    w_h, res, lengths, starts, q, _ = _unpack(operands, reset_after, has_len, has_starts)
    ct_ys, ct_h_last = cts
    shape = q[0].aval.shape if ad.is_undefined_primal(q[0]) else q[0].shape
    acc = res[1].dtype
    ct_ys = jnp.zeros(shape, acc) if type(ct_ys) is ad.Zero else ct_ys
    ct_h_last = jnp.zeros(shape[1:], acc) if type(ct_h_last) is ad.Zero else ct_h_last
    cq, cdh0 = transpose_kernel(
        w_h, res, lengths, starts, ct_ys, ct_h_last, reset_after=reset_after, reverse=reverse
    )
    return [None] * (len(operands) - _LINEAR) + [*cq, cdh0]


def _jvp(primals: Sequence[Any], tangents: Sequence[Any], **params: Any) -> tuple[Any, Any]:
    """Forward mode through the tangent recurrence (second and higher derivatives): that of
    the same recurrence written as a ``lax.scan``."""
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    return jax.jvp(lambda *a: _tangent_scan(*a, **params), primals, tangents)


def _batch(
    args: Sequence[Any],
    dims: Sequence[Any],
    *,
    reset_after: bool,
    reverse: bool,
    has_len: bool,
    has_starts: bool,
) -> tuple[list[Array], list[int]]:
    """Fold the mapped axis into the kernel's batch axis ``N`` (axis 1 of the ``(T, N, ·)``
    operands, axis 0 of ``lengths`` and ``dh0``); a mapped ``w_h`` runs one kernel per index."""
    params = dict(reset_after=reset_after, reverse=reverse, has_len=has_len, has_starts=has_starts)
    size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
    if dims[0] is not None:
        mapped = [batching.bdim_at_front(a, d, size) for a, d in zip(args, dims, strict=True)]
        out = jax.lax.map(lambda a: tuple(gru_tangent_p.bind(*a, **params)), tuple(mapped))
        return list(out), [0, 0]
    num_res = 5 if reset_after else 4
    n_axes = [1] * num_res + [0] * has_len + [1] * has_starts + [1, 1, 1, 0]
    folded = [args[0]]  # w_h, not mapped
    for a, d, axis in zip(args[1:], dims[1:], n_axes, strict=True):
        a = jnp.moveaxis(batching.bdim_at_front(a, d, size), 0, axis)  # the mapped axis before N
        folded.append(a.reshape(*a.shape[:axis], -1, *a.shape[axis + 2 :]))
    dys, dh_last = gru_tangent_p.bind(*folded, **params)
    dys = dys.reshape(dys.shape[0], size, -1, dys.shape[2])
    return [dys, dh_last.reshape(size, -1, dh_last.shape[1])], [1, 0]


gru_tangent_p.def_impl(_tangent_scan)
gru_tangent_p.def_abstract_eval(_abstract)
mlir.register_lowering(gru_tangent_p, mlir.lower_fun(_tangent_scan, multiple_results=True))
ad.primitive_transposes[gru_tangent_p] = _transpose
ad.primitive_jvps[gru_tangent_p] = _jvp
batching.primitive_batchers[gru_tangent_p] = _batch
