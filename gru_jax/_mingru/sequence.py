"""The minGRU over a sequence: its linear recurrence, evaluated in one of three modes.

:func:`mingru` computes the gates ``(a, b)`` of :mod:`gru_jax._mingru.cell` and runs
``h_t = a_t ⊙ h_{t−1} + b_t`` (:mod:`gru_jax._base.linear_scan`):

* ``"sequential"``: a ``jax.lax.scan`` over blocks of 16 or 128 steps; each block
  projects its inputs with one matmul, then runs its steps with an inner ``lax.scan``. The block
  body is rematerialised (``jax.checkpoint``), so the backward pass recomputes a block's gates
  from its inputs and no ``(T, *B, 2H)`` gate array is ever stored. Every step is still done in
  order, one after the other.
* ``"parallel"``: the gates for all steps at once, then ``jax.lax.associative_scan`` over the
  pairs ``(a_t, b_t)`` with ``(a₁, b₁) ∘ (a₂, b₂) = (a₁ a₂, a₂ b₁ + b₂)``: depth ``O(log T)``.
* ``"chunked"``: the blocked scan of ``"sequential"`` with blocks of ``chunk_size`` steps and an
  associative scan inside each block: parallel within blocks, sequential across them.

Segment resets (``resets=``) need no other machinery: a reset step has ``a_t = 0``, which every
mode takes natively. The associative scan runs in linear space, not log space. The paper's
log-space scan exists to keep its cumulative-*sum* formulation (``h_t = A_t (h_0 + Σ b_s /
A_s)``, ``A_t = Π a_s``) from dividing by products that underflow; the pairwise operator above
never divides, its products ``a₁ a₂`` only shrink towards 0 (which is correct: old state
forgotten), and every mode is exact for any sign of ``h̃`` and ``h_0``.

Gradients: the recurrence has a custom JVP, again a linear recurrence of the same kind, whose
transpose (reverse mode) is the reverse recurrence, so the backward pass of the parallel mode is
a parallel scan too. Everything else is plain JAX, so forward mode (``jax.jvp``,
``jax.jacfwd``), reverse mode and higher orders all work in every mode.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gru_jax._base import checks
from gru_jax._base.dtypes import compute_dtype
from gru_jax._base.linear_scan import (
    DEFAULT_CHUNK_SIZE,
    check_mode,
    recurrence,
    resolve_mode,
    scan_sequential,
)
from gru_jax._base.resets import segment_starts
from gru_jax._base.sequence import check_sequence
from gru_jax._base.typing import Array, ArrayLike
from gru_jax._mingru.cell import MinGRUParams, check_params, gates

# Steps per block of mode="sequential": SMALL_BLOCK, or LARGE_BLOCK when the input projection
# is heavy (at least LARGE_BLOCK_FLOPS per step, 2·B·I·2H). Measured on 2 CPU cores: with a
# light projection (B=32, I=2, H=32) blocks of 16 beat 64-256 by 20-30 % (the loop's data stays in
# cache); with a heavy one (B=8, I=64, H=128) blocks of 128-256 were 1.5x faster than 16 when
# the second core was free (the per-block matmuls become large enough to use it) and 10-20 %
# slower when it was not.
SMALL_BLOCK, LARGE_BLOCK, LARGE_BLOCK_FLOPS = 16, 128, 2**17


def sequential_block(batch_size: int, input_size: int, hidden_size: int) -> int:
    """The block length of ``mode="sequential"`` for these sizes (see ``LARGE_BLOCK_FLOPS``);
    ``SMALL_BLOCK`` for a symbolic batch (``jax.export``), which may be small."""
    if not checks.known_dim(batch_size):
        return SMALL_BLOCK
    flops_per_step = 2 * batch_size * input_size * 2 * hidden_size
    return LARGE_BLOCK if flops_per_step >= LARGE_BLOCK_FLOPS else SMALL_BLOCK


def _blocked(
    params: MinGRUParams,
    xs_t: Array,
    h0: Array,
    limit: Array | None,
    starts: Array | None,
    acc: jnp.dtype,
    block: int,
    inner: str,
) -> tuple[Array, Array]:
    """The minGRU over time-major ``xs_t (T, *B, I)``, ``block`` steps at a time.

    A ``lax.scan`` over blocks carries the state; each block projects its ``block`` inputs with
    one matmul, computes the gates and runs its part of the recurrence, ``inner`` =
    ``"sequential"`` (a ``lax.scan`` over its steps) or ``"parallel"`` (an associative scan).
    The block body is rematerialised (``jax.checkpoint``): the backward pass recomputes a block's
    gates from its inputs instead of storing them, so no ``(T, *B, 2H)`` array ever exists.
    Steps at ``t >= limit`` (``(*B,)``, or ``None`` for none) are identity steps and output
    zeros; so are the steps that pad ``T`` to a multiple of ``block``. Where ``starts``
    (``(T, *B, 1)`` bool, or ``None``) is True a segment starts: ``a = 0`` at that step
    (the state before it is zeros).

    Returns ``(hs (T, *B, H), h_last (*B, H))`` in dtype ``acc``.
    """
    steps, batch = xs_t.shape[0], xs_t.shape[1:-1]
    blocks = -(-steps // block)
    pad = blocks * block - steps
    if not checks.known_dim(pad) or pad:  # a symbolic T (jax.export): padded, maybe by 0 steps
        xs_t = jnp.concatenate([xs_t, jnp.zeros((pad, *xs_t.shape[1:]), xs_t.dtype)])
        # The padding steps must be identity steps, even for a (traced) length above T.
        limit = jnp.full(batch, steps) if limit is None else jnp.minimum(limit, steps)
        if starts is not None:
            starts = jnp.concatenate([starts, jnp.zeros((pad, *starts.shape[1:]), bool)])
    xs_b = xs_t.reshape(blocks, block, *xs_t.shape[1:])
    offsets = jnp.arange(block).reshape((block,) + (1,) * len(batch))
    scanned: tuple[Array, ...] = (xs_b, jnp.arange(blocks) * block)
    if starts is not None:
        scanned += (starts.reshape(blocks, block, *starts.shape[1:]),)

    def body(h: Array, inputs: tuple[Array, ...]) -> tuple[Array, Array]:
        x, start = inputs[:2]
        # (block, *B, H) each; a = 0 where a segment starts (the state before it is zeros)
        a, b = gates(params, x, acc, None if starts is None else inputs[2])
        if limit is not None:
            valid = (start + offsets < limit)[..., None]  # (block, *B, 1)
            a = jnp.where(valid, a, jnp.ones((), acc))
            b = jnp.where(valid, b, jnp.zeros((), acc))
        if inner == "sequential":
            hs = scan_sequential(a, b, h)
        else:
            hs = recurrence("parallel", 0, a, b.at[0].add(a[0] * h))
        if limit is not None:
            hs_out = jnp.where(valid, hs, jnp.zeros((), acc))
        else:
            hs_out = hs
        return hs[-1], hs_out

    h_last, hs = jax.lax.scan(jax.checkpoint(body), h0, scanned)
    return hs.reshape(blocks * block, *hs.shape[2:])[:steps], h_last


def _reverse_valid(x: Array, seq_lengths: Array | None) -> Array:
    """``x (T, *B, ...)`` with each row's first ``seq_lengths`` steps in reverse order (the
    padding stays in place); the whole time axis flipped when ``seq_lengths`` is None. Applying
    it twice gives ``x`` back."""
    if seq_lengths is None:
        return jnp.flip(x, axis=0)
    steps, batch = x.shape[0], seq_lengths.shape
    t = jnp.arange(steps).reshape((steps,) + (1,) * len(batch))
    index = jnp.where(t < seq_lengths, seq_lengths - 1 - t, t)  # (T, *B)
    index = index.reshape(index.shape + (1,) * (x.ndim - index.ndim))
    return jnp.take_along_axis(x, index, axis=0)


def mingru(
    params: MinGRUParams,
    xs: ArrayLike,
    h0: ArrayLike | None = None,
    *,
    seq_lengths: ArrayLike | None = None,
    resets: ArrayLike | None = None,
    reverse: bool = False,
    time_major: bool = False,
    mode: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[Array, Array]:
    """Run a minGRU over a sequence, sequentially or with a parallel scan.

    Computes exactly, for ``t = 0 … T−1`` (blocks ``[z | h̃]`` of ``w_x`` and ``b_x``)::

        z_t = σ(x_t W_z + b_z)
        h̃_t = x_t W_h + b_h                       params.candidate == "linear"
        h̃_t = g(x_t W_h + b_h)                    params.candidate == "g",
                                                  g(v) = v + 0.5 if v ≥ 0 else σ(v)
        h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t,    h_{−1} = h0

    ``z`` weights the candidate, as in :func:`gru_jax.gru`. The gates depend on the inputs only,
    so the state follows the elementwise linear recurrence ``h_t = a_t ⊙ h_{t−1} + b_t`` with
    ``a_t = 1 − z_t``, ``b_t = z_t ⊙ h̃_t``, evaluated in the chosen ``mode`` (see
    ``mode`` below). All modes give the same values and gradients up to rounding
    (agreement to 1e-5 in float32 is tested, with ``seq_lengths`` and ``h0``).

    Args:
      params: a :class:`MinGRUParams`.
      xs: ``(T, I)`` or ``(*B, T, I)`` inputs, batch-major (time is the second-to-last axis);
        ``(T, *B, I)`` if ``time_major``.
      h0: ``(*B, H)`` initial state; zeros when ``None``.
      seq_lengths: optional ``(*B,)`` integer lengths in ``[0, T]``, as for :func:`gru_jax.gru`:
        steps at ``t >= length`` leave the state unchanged (they become the identity step
        ``a = 1, b = 0``, exactly, in every mode) and output zeros, so ``h_last`` is the state
        after the last valid step. Whatever lies in the padding (even NaN or Inf) changes no
        output, state or gradient. Under ``jit`` the lengths are traced and not range-checked;
        a length above ``T`` then acts as ``T`` and a negative one as ``0``.
      resets: optional ``(*B, T)`` bool array (``(T, *B)`` if ``time_major``), for several
        segments in one row (packed sequences, the episodes of a rollout): where
        ``resets[..., t]`` is True, step ``t`` starts a new segment and the state before it is
        zeros instead of ``h_{t−1}``, at ``t = 0`` too (the segment then ignores ``h0``). Each
        segment's values and gradients are those of running it alone from a zero state. In the
        recurrence this is the step ``a_t = 0``, taken natively by every mode. Resets in the
        padding (``t >= length``) are ignored. :func:`gru_jax.resets_from_segment_ids` builds
        them from packing ids, :func:`gru_jax.segment_ends` finds each segment's last step.
      reverse: run each sequence's valid prefix from its last step to its first, as
        :func:`gru_jax.gru`'s ``reverse`` (the backward direction of a bidirectional layer):
        ``h0`` enters at the last valid step, outputs stay at their own positions, ``h_last``
        is the state after step 0, and with ``resets`` each segment runs backward alone from
        its own last step.
      time_major: if True, time is the leading axis of ``xs``, ``ys`` and ``resets``
        (``h0``, ``seq_lengths`` and ``h_last`` are unchanged). The scans run time-major, so this
        layout saves the transposes of ``xs`` and ``ys`` that the batch-major one costs.
      mode: how the recurrence is evaluated: ``"sequential"`` (``lax.scan``, in blocks of
        steps whose gates are recomputed in the backward pass rather than stored),
        ``"parallel"`` (``lax.associative_scan``, ``O(log T)`` depth), ``"chunked"`` (parallel
        within blocks of ``chunk_size`` steps, sequential across them), or ``"auto"``.
        ``"auto"`` picks ``"sequential"`` on CPU at every ``T`` (measured fastest or close to it
        there, see docs/mingru.md), and on GPU/TPU ``"parallel"`` from 64 steps on, ``"sequential"``
        below; the accelerator choice follows the paper's and general evidence and was not
        measured in this library. Memory: for the backward pass ``"sequential"`` and
        ``"chunked"`` store only the state at each block boundary, besides their inputs;
        ``"parallel"`` stores several ``(T, *B, H)`` arrays (the gates and the scan's levels).
      chunk_size: block length for ``mode="chunked"`` (a positive int).

    Returns:
      ``(ys, h_last)``: ``ys (*B, T, H)`` (``(T, *B, H)`` if ``time_major``) the state after
      every step (zeros past a length) and ``h_last (*B, H)``, the state after the last valid
      step, in the promoted dtype of ``params``, ``xs`` and ``h0``. The gates and
      the recurrence are computed in at least float32 (bfloat16 in, float32 arithmetic, bfloat16
      out).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_mingru, mingru
      >>> params = init_mingru(jax.random.key(0), 3, 8)
      >>> xs = jax.random.normal(jax.random.key(1), (4, 20, 3))       # (B, T, I)
      >>> ys, h = jax.jit(mingru, static_argnames="mode")(params, xs, mode="parallel")
      >>> ys.shape, h.shape
      ((4, 20, 8), (4, 8))
      >>> ys_seq, _ = mingru(params, xs, mode="sequential")
      >>> bool(jnp.allclose(ys, ys_seq, atol=1e-5))
      True
      >>> ys, h = mingru(params, xs, seq_lengths=jnp.array([20, 7, 3, 0]))
      >>> bool((ys[1, 7:] == 0).all()), bool((h[1] == ys[1, 6]).all()), bool((h[3] == 0).all())
      (True, True, True)

      Two segments packed in one row equal the two run separately:

      >>> resets = jnp.zeros((4, 20), bool).at[:, 12].set(True)
      >>> ys, h = mingru(params, xs, resets=resets)
      >>> ys_a, _ = mingru(params, xs[:, :12])
      >>> ys_b, h_b = mingru(params, xs[:, 12:])
      >>> bool(jnp.allclose(ys, jnp.concatenate([ys_a, ys_b], 1), atol=1e-6))
      True
      >>> bool(jnp.allclose(h, h_b, atol=1e-6))
      True
    """
    fn = "mingru"
    input_size, hidden = check_params(fn, params)
    checks.check_flags(fn, reverse=reverse, time_major=time_major)
    xs, batch, steps, h0, seq_lengths, resets = check_sequence(
        fn, xs, input_size, hidden, h0, seq_lengths, resets, time_major=time_major
    )
    mode = resolve_mode(check_mode(fn, mode), steps)
    chunk_size = checks.check_size(fn, "chunk_size", chunk_size)

    dtype = compute_dtype(xs, *jax.tree.leaves(params), *([] if h0 is None else [h0]))
    acc = jnp.promote_types(dtype, jnp.float32)
    if checks.known_dim(steps) and steps == 0:
        h_last = jnp.zeros((*batch, hidden), dtype) if h0 is None else h0.astype(dtype)
        empty = (0, *batch, hidden) if time_major else (*batch, 0, hidden)
        return jnp.zeros(empty, dtype), h_last

    # The scans run over axis 0: time-major xs_t (T, *B, I), transposed only if batch-major.
    xs_t = xs.astype(dtype) if time_major else jnp.moveaxis(xs.astype(dtype), -2, 0)
    h0 = jnp.zeros((*batch, hidden), acc) if h0 is None else h0.astype(acc)
    valid = None
    if seq_lengths is not None:
        valid = (jnp.arange(steps).reshape((steps,) + (1,) * len(batch)) < seq_lengths)[..., None]
        # Zero the padding first, so that NaN/Inf there cannot leak into values or gradients.
        xs_t = jnp.where(valid, xs_t, jnp.zeros((), dtype))
    starts = None  # (T, *B, 1): True where the state before the step is zeros
    if resets is not None:
        size = math.prod(batch)
        layout = (steps, size) if time_major else (size, steps)
        lengths = None if seq_lengths is None else seq_lengths.reshape(size)
        marks = segment_starts(
            resets.reshape(layout), lengths, reverse=reverse, time_major=time_major
        )
        starts = marks.reshape(steps, *batch, 1)
    if reverse:  # run forward over each row's valid prefix in reverse order, then undo it
        xs_t = _reverse_valid(xs_t, seq_lengths)
        starts = None if starts is None else _reverse_valid(starts, seq_lengths)
    if starts is not None:
        # a_0 = 0 alone would still compute 0 · h0: NaN for an h0 of Inf or NaN. Replace it.
        h0 = jnp.where(starts[0], jnp.zeros((), acc), h0)
    if mode == "parallel":
        a, b = gates(params, xs_t, acc, starts)  # a = 0 where a segment starts
        if valid is not None:
            a = jnp.where(valid, a, jnp.ones((), acc))
            b = jnp.where(valid, b, jnp.zeros((), acc))
        b = b.at[0].add(a[0] * h0)  # fold h0 into step 0: h_0 = a_0 h0 + b_0
        hs = recurrence(mode, chunk_size, a, b)  # (T, *B, H)
        h_last = hs[-1]  # past a length every step is the identity: the last valid state
        if valid is not None:
            hs = jnp.where(valid, hs, jnp.zeros((), acc))
    else:
        batch_size = math.prod(batch)
        if mode == "sequential":
            block = sequential_block(batch_size, input_size, hidden)
        else:
            block = chunk_size
        inner = "sequential" if mode == "sequential" else "parallel"
        if checks.known_dim(steps):  # else symbolic (jax.export): blocks of the full length
            block = min(block, steps)
        hs, h_last = _blocked(params, xs_t, h0, seq_lengths, starts, acc, block, inner)
    if reverse:
        hs = _reverse_valid(hs, seq_lengths)
    ys = hs if time_major else jnp.moveaxis(hs, 0, -2)
    return ys.astype(dtype), h_last.astype(dtype)
