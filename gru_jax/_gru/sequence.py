"""The GRU over a sequence: :func:`gru_cell`'s step as the body of a ``jax.lax.scan``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gru_jax._base import checks
from gru_jax._base.dtypes import cast_params, compute_dtype
from gru_jax._base.resets import segment_starts
from gru_jax._base.sequence import check_sequence
from gru_jax._base.typing import Array, ArrayLike
from gru_jax._gru.cell import GRUParams, check_params
from gru_jax._gru.fused import Fused, fused_gru
from gru_jax._gru.impl import Impl, resolve_impl
from gru_jax._gru.jvp import scan_gru
from gru_jax._gru.plan import plan


def gru(
    params: GRUParams,
    xs: ArrayLike,
    h0: ArrayLike | None = None,
    *,
    seq_lengths: ArrayLike | None = None,
    resets: ArrayLike | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int | bool = 1,
    remat: bool = False,
    impl: Impl = "auto",
) -> tuple[Array, Array]:
    """Run a GRU over a sequence with ``jax.lax.scan``, or with a fused Pallas kernel.

    Differentiation uses a hand-written rule (``gru_jax._gru.jvp``): a ``custom_jvp`` whose
    transpose is a reverse scan over per-step gate gradients followed by the weight gradients as
    large matmuls, so reverse mode, forward mode (``jax.jvp``), ``vmap`` and higher derivatives
    all work. How the loops are arranged (chunked input projections, stored or recomputed
    gates) is chosen per backend and shape; see ``gru_jax._gru.plan.plan``
    and the performance guide.

    Args:
      params: a :class:`GRUParams`.
      xs: ``(T, I)`` or ``(*B, T, I)`` inputs, batch-major (time is the second-to-last axis).
      h0: ``(*B, H)`` initial state; zeros when ``None``.
      seq_lengths: optional ``(*B,)`` integer lengths in ``[0, T]``. Steps at ``t >= length``
        leave the state unchanged and output zeros, so ``h_last`` is the state after the last
        valid step. Whatever lies in the padding (even NaN or Inf) changes no output, state or
        gradient. Under ``jit`` the lengths are traced and not range-checked; a length above
        ``T`` then acts as ``T`` and a negative one as ``0``.
      resets: optional ``(*B, T)`` bool array (``(T, *B)`` if ``time_major``), for several
        segments in one row (packed sequences, the episodes of a rollout): where
        ``resets[..., t]`` is True, step ``t`` starts a new segment and the state before it is
        zeros instead of the previous state, at ``t = 0`` too (the segment then ignores
        ``h0``). Each segment's values and gradients are those of running it alone from a zero
        state; in reverse, each segment runs backward from its own last step. Resets in the
        padding (``t >= length``) are ignored. :func:`gru_jax.resets_from_segment_ids` builds
        them from packing ids, :func:`gru_jax.segment_ends` finds each segment's last step.
      reverse: run each sequence's valid prefix from its last step to its first. Outputs stay at
        their own time positions, as with torch's packed sequences, and ``h_last`` is the state
        after step 0.
      time_major: if True, time is the leading axis of ``xs``, ``ys`` and ``resets``
        (``(T, *B, ·)``, as ``flax.linen.RNN(time_major=True)``); ``h0``, ``seq_lengths`` and
        ``h_last`` are unchanged. The scans read and write this layout in place.
      unroll: steps per iteration of the compiled loops, as in ``lax.scan`` (an int >= 1, or
        ``True`` to unroll fully). 1, the default, measured fastest on CPU.
      remat: in reverse mode, store no activations but ``xs`` and ``ys``, and recompute the
        gates chunk by chunk (about ``sqrt(T)`` steps each) in the backward pass: memory drops
        from several ``(T, *B, H)`` arrays of gates to a few chunks. Values and gradients are
        the same either way.
      impl: which implementation runs the recurrence: ``"xla"``, the ``lax.scan`` above;
        ``"pallas"``, a fused Pallas kernel that runs the whole time loop in one launch (Triton
        on NVIDIA GPUs, interpreted on CPU, where it is slow and meant for testing), with the
        input projections and the weight gradients as XLA matmuls outside it; or ``"auto"``,
        chosen per platform and shape from the measurements committed with the package
        (``"xla"`` wherever nothing was measured, so on CPU it is ``"xla"``). Values and
        gradients agree to rounding. With ``"pallas"``, ``unroll`` has no effect and ``remat``
        recomputes the forward kernel in the backward pass. ``jax.export`` cannot serialize the
        Triton kernel: pass ``impl="xla"`` in what you export. See the GPU guide.

    Returns:
      ``(ys, h_last)``: ``ys (*B, T, H)`` (``(T, *B, H)`` if ``time_major``) the state after
      every step (zeros past a length), and ``h_last (*B, H)``.
      Both have the promoted dtype of ``params``, ``xs`` and ``h0``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_gru, gru
      >>> params = init_gru(jax.random.key(0), 3, 8)
      >>> xs = jnp.ones((4, 10, 3))                      # (B, T, I)
      >>> ys, h = jax.jit(gru)(params, xs)
      >>> ys.shape, h.shape
      ((4, 10, 8), (4, 8))
      >>> ys, h = gru(params, xs, seq_lengths=jnp.array([10, 7, 3, 0]))
      >>> bool((ys[1, 7:] == 0).all()), bool((h[3] == 0).all())
      (True, True)
    """
    fn = "gru"
    input_size, hidden = check_params(fn, params)
    checks.check_flags(fn, reverse=reverse, time_major=time_major)
    xs, batch, T, h0, seq_lengths, resets = check_sequence(
        fn, xs, input_size, hidden, h0, seq_lengths, resets, time_major=time_major
    )
    unroll = checks.check_unroll(fn, unroll)

    dtype = compute_dtype(xs, *jax.tree.leaves(params), *([] if h0 is None else [h0]))
    params = cast_params(params, dtype)
    h0 = jnp.zeros((*batch, hidden), dtype) if h0 is None else h0.astype(dtype)
    # One flat batch axis N: xs (N, T, I) or, time-major, (T, N, I); h0 (N, H); lengths (N,).
    size = math.prod(batch)
    layout = (T, size) if time_major else (size, T)
    xs = xs.astype(dtype).reshape(*layout, input_size)
    h0 = h0.reshape(size, hidden)
    if seq_lengths is not None:
        seq_lengths = seq_lengths.reshape(size)
        # Zero the padding first, so that NaN/Inf there cannot reach values or gradients.
        t = jnp.arange(T)
        if time_major:
            valid = t[:, None] < seq_lengths[None, :]
        else:
            valid = t[None, :] < seq_lengths[:, None]
        xs = jnp.where(valid[..., None], xs, jnp.zeros((), dtype))
    starts = None
    if resets is not None:
        starts = segment_starts(
            resets.reshape(layout), seq_lengths, reverse=reverse, time_major=time_major
        )
    which = resolve_impl(
        fn,
        impl,
        batch=size,
        steps=T,
        input_size=input_size,
        hidden=hidden,
        dtype=jnp.dtype(dtype).name,
    )
    weights = (params.w_x, params.w_h, params.b_x, params.b_h)
    ys_shape = (T, *batch, hidden) if time_major else (*batch, T, hidden)
    if which == "pallas":
        run = jax.checkpoint(fused_gru, static_argnums=(5,)) if remat else fused_gru
        opts = Fused(params.reset_after, reverse, time_major)
        ys, h_last = run(weights, xs, h0, seq_lengths, starts, opts)
        return ys.reshape(ys_shape), h_last.reshape(*batch, hidden)
    how = plan(
        T,
        size,
        input_size,
        hidden,
        reset_after=params.reset_after,
        reverse=reverse,
        unroll=unroll,
        remat=remat,
        time_major=time_major,
    )
    ys, h_last = scan_gru(weights, xs, h0, seq_lengths, starts, plan=how)
    return ys.reshape(ys_shape), h_last.reshape(*batch, hidden)
