"""The GRU's forward recurrence, as the fast paths run it.

* :func:`forward`: the plain time-major scan, with the input projection inside the loop or
  hoisted before it (``hoist``), optionally writing the residuals (the state before each step
  and the gates) that the stored-gates derivative needs;
* :func:`forward_chunked`: one input-projection matmul per chunk of steps, batch-major (or
  time-major) in and out, without transposed copies;
* :func:`gates_at_once`: the gates of many steps at once from their inputs and the states
  before them (two large matmuls, no recurrence), for the recomputing derivative.

This is one of three deliberate implementations of the gate arithmetic (with
:func:`gru_jax._gru.cell._step`, the single step, and :func:`gates_at_once`): each is arranged
for what XLA:CPU runs fastest where it is used; see :mod:`gru_jax._gru.jvp` for the facts.
Parameters are in the compute dtype; matmuls accumulate, and gates are computed, in
``acc = promote_types(dtype, float32)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from gru_jax._base.typing import Array, DTypeLike

Gates = tuple[Array, Array, Array]  # one array per gate, (z, r, n)
Weights = tuple[Array, Array, Array, Array]  # (w_x, w_h, b_x, b_h), in the compute dtype
Cell = Callable[[Array, Gates], tuple[Array, tuple[Array, ...]]]  # see make_cell


def mm(a: Array, b: Array, acc: DTypeLike) -> Array:
    return jnp.matmul(a, b, preferred_element_type=acc)


def is_zero(t: object) -> bool:
    return isinstance(t, SymbolicZero)


def split_bias(
    b_x: Array, b_h: Array, reset_after: bool, acc: DTypeLike
) -> tuple[Array, Array | None]:
    """The bias added to the input projection and, for reset_after, the candidate's ``b_hn``."""
    hidden = b_h.shape[0] // 3
    b_x, b_h = b_x.astype(acc), b_h.astype(acc)
    if not reset_after:
        return b_x + b_h, None
    folded = b_x + jnp.concatenate([b_h[: 2 * hidden], jnp.zeros((hidden,), acc)])
    return folded, b_h[2 * hidden :]


def pad_steps(a: Array, extra: int, axis: int = 0) -> Array:
    """``a`` with ``extra`` zero (or False) steps appended along its time ``axis``."""
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, extra)
    return jnp.pad(a, widths)


def valid_mask(lengths: Array | None, steps: int) -> Array | None:
    if lengths is None:
        return None
    return (jnp.arange(steps)[:, None] < lengths[None, :])[..., None]  # (T, N, 1)


def blocks(a: Array, hidden: int) -> tuple[Array, Array, Array]:
    """The gate blocks ``(z, r, n)`` of the last axis of ``a (..., 3H)``.

    ``lax.split`` rather than slicing: its transpose is a concatenation, where three slices
    transpose to three pads and two adds (a slow fusion on XLA:CPU).
    """
    z, r, n = jax.lax.split(a, (hidden,) * 3, axis=a.ndim - 1)
    return z, r, n


def project(a: Array, w: Array, acc: DTypeLike) -> Gates:
    """``a @ w`` for ``a (T, N, K)`` and ``w (K, 3H)``, as one ``(T, N, H)`` array per gate.

    Per-step inputs of a scan are kept one array per gate: XLA:CPU does not vectorise a fused
    loop that slices a dynamically-sliced operand, and would run the gates ~7x slower. The
    matmul is written on ``(T·N, K)`` so that its transpose, the weight gradient ``a^T ct``, is
    one plain 2-D matmul.
    """
    wz, wr, wn = blocks(w, w.shape[1] // 3)
    return mm_flat(a, wz, acc), mm_flat(a, wr, acc), mm_flat(a, wn, acc)


def mm_flat(a: Array, w: Array, acc: DTypeLike) -> Array:
    """``a @ w`` computed on ``a`` flattened to 2-D (see :func:`project`)."""
    return mm(a.reshape(-1, a.shape[-1]), w, acc).reshape(*a.shape[:-1], w.shape[-1])


def make_cell(
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
            hz, hr, hn = blocks(mm(h, w_hh[0], acc), hidden)  # one fused H x 3H matmul
            z = jax.nn.sigmoid(gz + hz)
            r = jax.nn.sigmoid(gr + hr)
            assert b_hn is not None  # split_bias gives it for reset_after
            ghn = hn + b_hn
            n = jnp.tanh(gn + r * ghn)
            extra: tuple[Array, ...] = (ghn,)
        else:
            g = mm(h, w_hh[0], acc)  # [z | r] first: n needs r
            hz, hr = g[..., :hidden], g[..., hidden:]
            z = jax.nn.sigmoid(gz + hz)
            r = jax.nn.sigmoid(gr + hr)
            rh = (r * h_acc).astype(dt)
            n = jnp.tanh(gn + mm(rh, w_hh[1], acc))
            extra = ()
        h_new = (h_acc + z * (n - h_acc)).astype(dt)
        return h_new, (h, z, r, n, *extra)

    return cell


def run_cells(
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


def forward(
    weights: Weights,
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
    w_x, w_h, b_x, b_h = weights
    dt = xs.dtype
    acc = jnp.promote_types(dt, jnp.float32)
    hidden = w_h.shape[0]
    bias, b_hn = split_bias(b_x, b_h, reset_after, acc)
    cell = make_cell(w_h, b_hn, reset_after=reset_after, dt=dt, acc=acc)
    if hoist:  # x W_x for all steps at once, as three large matmuls
        bias_blocks = blocks(bias, hidden)
        scan_x: tuple[Array, ...] | Array = tuple(
            g + b for g, b in zip(project(xs, w_x, acc), bias_blocks, strict=True)
        )

        def gates_x(inp: Any) -> Any:
            return inp
    else:
        scan_x = xs

        def gates_x(inp: Any) -> Any:
            return blocks(mm(inp, w_x, acc) + bias, hidden)

    h_last, out = run_cells(
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


def forward_chunked(
    weights: Weights,
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
    w_x, w_h, b_x, b_h = weights
    dt = xs.dtype
    acc = jnp.promote_types(dt, jnp.float32)
    axis = 0 if time_major else 1  # the time axis of xs and ys
    steps, batch = xs.shape[axis], xs.shape[1 - axis]
    hidden = w_h.shape[0]
    bias, b_hn = split_bias(b_x, b_h, reset_after, acc)
    cell = make_cell(w_h, b_hn, reset_after=reset_after, dt=dt, acc=acc)
    num_chunks = -(-steps // chunk)
    padded = num_chunks * chunk
    if padded != steps:
        if lengths is None:
            lengths = jnp.full((batch,), steps, jnp.int32)
        xs = pad_steps(xs, padded - steps, axis)
        if starts is not None:
            starts = pad_steps(starts, padded - steps)

    def to_time_major(a: Array) -> Array:
        return a if time_major else jnp.swapaxes(a, 0, 1)

    def body(carry: tuple[Array, Array], c: Array) -> tuple[tuple[Array, Array], None]:
        h, ys = carry
        start = c * chunk
        x = jax.lax.dynamic_slice_in_dim(xs, start, chunk, axis=axis)  # (N, K, I) or (K, N, I)
        # one (N·K, I) x (I, 3H) matmul
        gx: tuple[Array, ...] = blocks(mm_flat(x, w_x, acc) + bias, hidden)
        gx = tuple(to_time_major(g) for g in gx)  # per gate (K, N, H)
        mask = None
        if lengths is not None:
            mask = ((start + jnp.arange(chunk))[:, None] < lengths[None, :])[..., None]
        st = None if starts is None else jax.lax.dynamic_slice_in_dim(starts, start, chunk, 0)
        h, y = run_cells(
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


def gates_at_once(
    weights: Weights,
    xs: Array,
    hprev: Array,
    *,
    reset_after: bool,
    acc: DTypeLike,
) -> tuple[Array, ...]:
    """The gates of many steps at once, from their inputs and the states before them:
    ``xs (K, N, I)``, ``hprev (K, N, H)`` -> ``(z, r, n[, ghn])``, as :func:`forward` computes
    them step by step, but as large matmuls."""
    w_x, w_h, b_x, b_h = weights
    dt = xs.dtype
    hidden = w_h.shape[0]
    bias, b_hn = split_bias(b_x, b_h, reset_after, acc)
    gz, gr, gn = (g + b for g, b in zip(project(xs, w_x, acc), blocks(bias, hidden), strict=True))
    if reset_after:
        hz, hr, hn = blocks(mm_flat(hprev, w_h, acc), hidden)
    else:
        g = mm_flat(hprev, w_h[:, : 2 * hidden], acc)
        hz, hr = jax.lax.split(g, (hidden, hidden), axis=g.ndim - 1)
    z = jax.nn.sigmoid(gz + hz)
    r = jax.nn.sigmoid(gr + hr)
    if reset_after:
        assert b_hn is not None  # split_bias gives it for reset_after
        ghn = hn + b_hn
        return z, r, jnp.tanh(gn + r * ghn), ghn
    rh = (r * hprev.astype(acc)).astype(dt)
    return z, r, jnp.tanh(gn + mm_flat(rh, w_h[:, 2 * hidden :], acc))
