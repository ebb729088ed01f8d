"""The Pallas kernels of ``impl="pallas"``: the GRU's recurrence, and its transpose, in one launch.

Both kernels run the whole time loop of one layer and direction inside the kernel; the input
projections (``x W_x``) and the weight gradients stay large XLA matmuls outside it.

* :func:`forward_kernel`: the recurrence. Given the input projections of the three gates
  ``(T, N, H)`` (biases folded in), each step's recurrent matmuls, gates, update and masks
  (``seq_lengths``, ``resets``, ``reverse``) run inside a ``fori_loop`` over time; it writes
  ``ys``, ``h_last`` and, for the derivative, the residuals ``(h_prev, z, r, n[, ghn])``.
* :func:`transpose_kernel`: the transpose of the state tangent's linear recurrence
  (:func:`gru_jax._gru.tangents.tangent_scan`), run in the opposite time order: from the
  cotangents of ``ys`` and ``h_last`` it gives those of the gate pre-activations ``q`` and of
  ``h0``. JAX then transposes the rest (the weight gradients as ``X^T dG``, ``H_prev^T dG``).

Layout. The grid runs over tiles of ``block_b`` batch rows; one program keeps its tile's state
``(block_b, H_p)`` in registers across the time loop and reads the recurrent kernel, one
``(H_p, H_p)`` block per gate, at every step (from L2 on a GPU). Triton wants power-of-two
blocks of at least 16 in a matmul, so the batch is padded to a multiple of ``block_b`` and the
hidden size to ``H_p``, a power of two ``>= 16``, with zeros: a padded hidden unit has zero
weights and biases, so its state stays exactly zero (``z = 1/2``, ``n = 0``) and feeds nothing;
padded rows are dropped. Time is never padded (the loop bound is static).

Platforms. On an NVIDIA GPU the kernels compile with Triton; on CPU they run with
``interpret=True`` (slow: for testing). Which one runs is chosen at lowering time by
``lax.platform_dependent``, so lowering for CUDA on a CPU machine gives the Triton kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from gru_jax._base.typing import Array, DTypeLike

BLOCK_B = 16
"""Batch rows per program: the smallest tile Triton's matmul takes."""


def padded_hidden(hidden: int) -> int:
    """``H_p``: the hidden size padded to a power of two, at least 16."""
    return max(16, 1 << (hidden - 1).bit_length())


def _pad(a: Array, axis_sizes: dict[int, int]) -> Array:
    widths = [(0, axis_sizes.get(i, n) - n) for i, n in enumerate(a.shape)]
    return jnp.pad(a, widths) if any(w for _, w in widths) else a


def _dot(a: Array, w: Array, acc: DTypeLike) -> Array:
    return jnp.dot(a, w, preferred_element_type=acc)


def _forward(
    *refs: Any,
    steps: int,
    reverse: bool,
    reset_after: bool,
    has_len: bool,
    has_starts: bool,
    residuals: bool,
    dt: DTypeLike,
    acc: DTypeLike,
) -> None:
    refs_in = list(refs)
    gz_ref, gr_ref, gn_ref, wz_ref, wr_ref, wn_ref = refs_in[:6]
    del refs_in[:6]
    bhn_ref = refs_in.pop(0) if reset_after else None
    len_ref = refs_in.pop(0) if has_len else None
    st_ref = refs_in.pop(0) if has_starts else None
    h0_ref, ys_ref, hl_ref, *res_refs = refs_in

    def body(i: Array, h: Array) -> Array:
        t = steps - 1 - i if reverse else i
        h_in = h
        if st_ref is not None:
            h_in = jnp.where(st_ref[t][:, None] != 0, jnp.zeros((), dt), h)
        h_acc = h_in.astype(acc)
        z = jax.nn.sigmoid(gz_ref[t] + _dot(h_in, wz_ref[...], acc))
        r = jax.nn.sigmoid(gr_ref[t] + _dot(h_in, wr_ref[...], acc))
        if reset_after:
            assert bhn_ref is not None
            ghn = _dot(h_in, wn_ref[...], acc) + bhn_ref[...][None, :]
            n = jnp.tanh(gn_ref[t] + r * ghn)
        else:
            n = jnp.tanh(gn_ref[t] + _dot((r * h_acc).astype(dt), wn_ref[...], acc))
        h_new = (h_acc + z * (n - h_acc)).astype(dt)
        y = h_new
        if len_ref is not None:  # past the length: the state stays, the output is zero
            valid = (t < len_ref[...])[:, None]
            h_new = jnp.where(valid, h_new, h)
            y = jnp.where(valid, h_new, jnp.zeros((), dt))
        ys_ref[t] = y
        if residuals:
            res = (h_in, z, r, n, ghn) if reset_after else (h_in, z, r, n)
            for ref, value in zip(res_refs, res, strict=True):
                ref[t] = value.astype(ref.dtype)
        return h_new

    hl_ref[...] = jax.lax.fori_loop(0, steps, body, h0_ref[...])


def _transpose(
    *refs: Any,
    steps: int,
    reverse: bool,
    reset_after: bool,
    has_len: bool,
    has_starts: bool,
    dt: DTypeLike,
    acc: DTypeLike,
) -> None:
    refs_in = list(refs)
    ct_y_ref, ct_hl_ref, wz_ref, wr_ref, wn_ref = refs_in[:5]
    del refs_in[:5]
    hp_ref, z_ref, r_ref, n_ref = refs_in[:4]
    del refs_in[:4]
    ghn_ref = refs_in.pop(0) if reset_after else None
    len_ref = refs_in.pop(0) if has_len else None
    st_ref = refs_in.pop(0) if has_starts else None
    cqz_ref, cqr_ref, cqn_ref, cdh0_ref = refs_in

    def body(i: Array, lam: Array) -> Array:
        # The tangent ran forward in time unless reverse: its transpose runs the other way.
        t = i if reverse else steps - 1 - i
        a = lam + ct_y_ref[t].astype(acc)  # the cotangent of this step's new state
        hprev = hp_ref[t].astype(acc)
        z, r, n = z_ref[t], r_ref[t], n_ref[t]
        ct_dh: Array = a - z * a
        ct_dan = z * a
        ct_dan = ct_dan - ct_dan * n * n
        ct_z = a * (n - hprev)
        if reset_after:
            assert ghn_ref is not None
            ct_r = ct_dan * ghn_ref[t]
            ct_gn = r * ct_dan
        else:
            ct_rh = _dot(ct_dan.astype(dt), wn_ref[...], acc)  # through r h W_hn
            ct_r = ct_rh * hprev
            ct_dh = ct_dh + r * ct_rh
        ct_qz = ct_z * z - ct_z * z * z
        ct_qr = ct_r * r - ct_r * r * r
        ct_dh = ct_dh + _dot(ct_qz.astype(dt), wz_ref[...], acc)
        ct_dh = ct_dh + _dot(ct_qr.astype(dt), wr_ref[...], acc)
        if reset_after:
            ct_dh = ct_dh + _dot(ct_gn.astype(dt), wn_ref[...], acc)
        if st_ref is not None:  # a segment starts: the state before the step was zeros
            ct_dh = jnp.where(st_ref[t][:, None] != 0, jnp.zeros((), acc), ct_dh)
        if len_ref is not None:  # past the length: the step passed its state through
            valid = (t < len_ref[...])[:, None]
            zero = jnp.zeros((), acc)
            ct_qz, ct_qr, ct_dan = (jnp.where(valid, c, zero) for c in (ct_qz, ct_qr, ct_dan))
            ct_dh = jnp.where(valid, ct_dh, lam)
        cqz_ref[t], cqr_ref[t], cqn_ref[t] = ct_qz, ct_qr, ct_dan
        return ct_dh

    cdh0_ref[...] = jax.lax.fori_loop(0, steps, body, ct_hl_ref[...].astype(acc))


def _call(
    kernel: Callable[..., None],
    inputs: Sequence[Array],
    specs: Sequence[pl.BlockSpec],
    out_shapes: Sequence[jax.ShapeDtypeStruct],
    out_specs: Sequence[pl.BlockSpec],
    grid: tuple[int, ...],
) -> list[Array]:
    """``pallas_call`` of ``kernel``: Triton on CUDA, interpreted elsewhere (CPU)."""
    from jax.experimental.pallas import triton as pl_triton

    def run(interpret: bool) -> Any:
        return pl.pallas_call(
            kernel,
            grid=grid,
            in_specs=specs,
            out_specs=out_specs,
            out_shape=out_shapes,
            interpret=interpret,
            compiler_params=None if interpret else pl_triton.CompilerParams(num_warps=4),
        )(*inputs)

    return cast(
        list[Array], jax.lax.platform_dependent(cpu=lambda: run(True), cuda=lambda: run(False))
    )


def _time_spec(steps: int, width: int) -> pl.BlockSpec:
    return pl.BlockSpec((steps, BLOCK_B, width), lambda b: (0, b, 0))


def _row_spec(width: int) -> pl.BlockSpec:
    return pl.BlockSpec((BLOCK_B, width), lambda b: (b, 0))


def _whole(shape: tuple[int, ...]) -> pl.BlockSpec:
    return pl.BlockSpec(shape, lambda b: (0,) * len(shape))


def _masks(
    lengths: Array | None, starts: Array | None, steps: int, n_p: int
) -> tuple[list[Array], list[pl.BlockSpec]]:
    """The padded mask inputs and their specs: ``lengths (N_p,)`` (padded rows have length 0),
    ``starts (T, N_p)`` int32."""
    inputs, specs = [], []
    if lengths is not None:
        inputs.append(_pad(lengths.astype(jnp.int32), {0: n_p}))
        specs.append(pl.BlockSpec((BLOCK_B,), lambda b: (b,)))
    if starts is not None:
        inputs.append(_pad(starts.reshape(steps, -1).astype(jnp.int32), {1: n_p}))
        specs.append(pl.BlockSpec((steps, BLOCK_B), lambda b: (0, b)))
    return inputs, specs


def _kernel_blocks(w_h: Array, h_p: int, transposed: bool) -> list[Array]:
    blocks = jnp.split(w_h, 3, axis=1)
    if transposed:
        blocks = [b.T for b in blocks]
    return [_pad(b, {0: h_p, 1: h_p}) for b in blocks]


def forward_kernel(
    gx: tuple[Array, Array, Array],
    w_h: Array,
    b_hn: Array | None,
    h0: Array,
    lengths: Array | None,
    starts: Array | None,
    *,
    reset_after: bool,
    reverse: bool,
    residuals: bool,
) -> tuple[Array, Array, tuple[Array, ...] | None]:
    """The GRU recurrence in one kernel, time-major.

    Args:
      gx: the input projections of ``(z, r, n)``, each ``(T, N, H)`` in the accumulation dtype
        ``acc``, biases folded in as :func:`gru_jax._gru.forward.split_bias` folds them.
      w_h: ``(H, 3H)`` in the compute dtype ``dt``; b_hn: ``(H,)`` (reset_after only).
      h0: ``(N, H)`` ``dt``; lengths: ``(N,)`` or None; starts: ``(T, N, 1)`` bool or None.

    Returns:
      ``(ys (T, N, H), h_last (N, H), res)``, as :func:`gru_jax._gru.forward.forward` returns
      them: ``res = (h_prev, z, r, n[, ghn])`` when ``residuals``, else None.
    """
    steps, batch, hidden = gx[0].shape
    dt, acc = h0.dtype, gx[0].dtype
    h_p = padded_hidden(hidden)
    n_p = -(-batch // BLOCK_B) * BLOCK_B
    inputs = [_pad(g, {1: n_p, 2: h_p}) for g in gx] + _kernel_blocks(w_h, h_p, False)
    specs = [_time_spec(steps, h_p)] * 3 + [_whole((h_p, h_p))] * 3
    if reset_after:
        assert b_hn is not None
        inputs.append(_pad(b_hn, {0: h_p}))
        specs.append(_whole((h_p,)))
    mask_inputs, mask_specs = _masks(lengths, starts, steps, n_p)
    inputs += [*mask_inputs, _pad(h0, {0: n_p, 1: h_p})]
    specs += [*mask_specs, _row_spec(h_p)]
    num_res = (5 if reset_after else 4) if residuals else 0
    res_dtypes = [dt, acc, acc, acc, acc][:num_res]
    out_shapes = [
        jax.ShapeDtypeStruct((steps, n_p, h_p), dt),
        jax.ShapeDtypeStruct((n_p, h_p), dt),
        *(jax.ShapeDtypeStruct((steps, n_p, h_p), d) for d in res_dtypes),
    ]
    out_specs = [_time_spec(steps, h_p), _row_spec(h_p), *[_time_spec(steps, h_p)] * num_res]
    kernel = functools.partial(
        _forward,
        steps=steps,
        reverse=reverse,
        reset_after=reset_after,
        has_len=lengths is not None,
        has_starts=starts is not None,
        residuals=residuals,
        dt=dt,
        acc=acc,
    )
    ys, h_last, *res = _call(kernel, inputs, specs, out_shapes, out_specs, (n_p // BLOCK_B,))
    ys, h_last = ys[:, :batch, :hidden], h_last[:batch, :hidden]
    return ys, h_last, (tuple(a[:, :batch, :hidden] for a in res) if residuals else None)


def transpose_kernel(
    w_h: Array,
    res: tuple[Array, ...],
    lengths: Array | None,
    starts: Array | None,
    ct_ys: Array,
    ct_h_last: Array,
    *,
    reset_after: bool,
    reverse: bool,
) -> tuple[tuple[Array, Array, Array], Array]:
    """The transpose of :func:`gru_jax._gru.tangents.tangent_scan`, in one kernel.

    Args:
      w_h: ``(H, 3H)`` in the compute dtype ``dt``.
      res: the forward residuals ``(h_prev, z, r, n[, ghn])``, each ``(T, N, H)``.
      lengths, starts: as in :func:`forward_kernel`.
      ct_ys: ``(T, N, H)`` the cotangent of the state tangents ``dys``; ct_h_last: ``(N, H)``.

    Returns:
      ``((ct_qz, ct_qr, ct_qn), ct_dh0)``: ``(T, N, H)`` each and ``(N, H)``, in ``acc``.
    """
    steps, batch, hidden = res[1].shape
    dt, acc = w_h.dtype, res[1].dtype
    h_p = padded_hidden(hidden)
    n_p = -(-batch // BLOCK_B) * BLOCK_B

    def time_pad(a: Array) -> Array:
        return _pad(a, {1: n_p, 2: h_p})

    inputs = [time_pad(ct_ys.astype(acc)), _pad(ct_h_last.astype(acc), {0: n_p, 1: h_p})]
    inputs += _kernel_blocks(w_h, h_p, True) + [time_pad(a) for a in res]
    specs = [_time_spec(steps, h_p), _row_spec(h_p), *[_whole((h_p, h_p))] * 3]
    specs += [_time_spec(steps, h_p)] * len(res)
    mask_inputs, mask_specs = _masks(lengths, starts, steps, n_p)
    inputs += mask_inputs
    specs += mask_specs
    out_shapes = [jax.ShapeDtypeStruct((steps, n_p, h_p), acc)] * 3
    out_shapes.append(jax.ShapeDtypeStruct((n_p, h_p), acc))
    out_specs = [*[_time_spec(steps, h_p)] * 3, _row_spec(h_p)]
    kernel = functools.partial(
        _transpose,
        steps=steps,
        reverse=reverse,
        reset_after=reset_after,
        has_len=lengths is not None,
        has_starts=starts is not None,
        dt=dt,
        acc=acc,
    )
    cqz, cqr, cqn, cdh0 = _call(kernel, inputs, specs, out_shapes, out_specs, (n_p // BLOCK_B,))
    cq = tuple(c[:, :batch, :hidden] for c in (cqz, cqr, cqn))
    return (cq[0], cq[1], cq[2]), cdh0[:batch, :hidden]
