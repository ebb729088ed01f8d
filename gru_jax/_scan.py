"""The GRU over a sequence: :func:`gru_cell` as the body of a ``jax.lax.scan``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gru_jax import _checks
from gru_jax._cell import GRUParams, _step, cast_params, check_params, compute_dtype
from gru_jax._typing import Array, ArrayLike


def check_xs(fn: str, xs: ArrayLike, input_size: int) -> Array:
    """Check that ``xs`` is a float ``(*B, T, I)`` array with the given ``I``."""
    xs = _checks.as_float_array(fn, "xs", xs)
    if xs.ndim < 2 or xs.shape[-1] != input_size:
        raise ValueError(
            f"{fn}: xs must have shape (T, I) or (*B, T, I) with I = {input_size}; "
            f"got {tuple(xs.shape)}"
        )
    return xs


def gru(
    params: GRUParams,
    xs: ArrayLike,
    h0: ArrayLike | None = None,
    *,
    seq_lengths: ArrayLike | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    remat: bool = False,
) -> tuple[Array, Array]:
    """Run a GRU over a sequence with ``jax.lax.scan``.

    Args:
      params: a :class:`GRUParams`.
      xs: ``(T, I)`` or ``(*B, T, I)`` inputs, batch-major (time is the second-to-last axis).
      h0: ``(*B, H)`` initial state; zeros when ``None``.
      seq_lengths: optional ``(*B,)`` integer lengths in ``[0, T]``. Steps at ``t >= length``
        leave the state unchanged and output zeros, so ``h_last`` is the state after the last
        valid step. Whatever lies in the padding (even NaN or Inf) changes no output, state or
        gradient. Under ``jit`` the lengths are traced and not range-checked; a length above
        ``T`` then acts as ``T`` and a negative one as ``0``.
      reverse: run each sequence's valid prefix from its last step to its first. Outputs stay at
        their own time positions, as with torch's packed sequences, and ``h_last`` is the state
        after step 0.
      unroll: steps per iteration of the compiled loop, as in ``lax.scan`` (an int >= 1, or
        ``True`` to unroll fully).
      remat: recompute each step's activations in the backward pass (``jax.checkpoint`` on the
        scan body) instead of storing them.

    Returns:
      ``(ys, h_last)``: ``ys (*B, T, H)`` the state after every step, and ``h_last (*B, H)``.
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
    xs = check_xs(fn, xs, input_size)
    batch, T = xs.shape[:-2], xs.shape[-2]
    if h0 is not None:
        h0 = _checks.as_float_array(fn, "h0", h0)
        _checks.check_shape(fn, "h0", h0, (*batch, hidden), "(*B, H)")
    if seq_lengths is not None:
        seq_lengths = _checks.check_seq_lengths(fn, seq_lengths, batch, T)
    unroll = _checks.check_unroll(fn, unroll)
    if not isinstance(reverse, bool):
        raise TypeError(f"{fn}: reverse must be a bool; got {type(reverse).__name__}")

    dtype = compute_dtype(xs, *jax.tree.leaves(params), *([] if h0 is None else [h0]))
    params = cast_params(params, dtype)
    h0 = jnp.zeros((*batch, hidden), dtype) if h0 is None else h0.astype(dtype)
    xs_t = jnp.moveaxis(xs.astype(dtype), -2, 0)  # (T, *B, I)

    if seq_lengths is None:

        def step(h, x):
            h = _step(params, h, x)
            return h, h

        scan_in = xs_t
    else:
        mask = jnp.arange(T).reshape((T,) + (1,) * len(batch)) < seq_lengths  # (T, *B)
        mask = mask[..., None]
        # Zero the padding first, so that NaN/Inf there cannot leak into values or gradients.
        scan_in = (jnp.where(mask, xs_t, jnp.zeros((), dtype)), mask)

        def step(h, inp):
            x, valid = inp
            h = jnp.where(valid, _step(params, h, x), h)
            return h, jnp.where(valid, h, jnp.zeros((), dtype))

    if remat:
        step = jax.checkpoint(step)
    h_last, ys = jax.lax.scan(step, h0, scan_in, reverse=reverse, unroll=unroll)
    return jnp.moveaxis(ys, 0, -2), h_last
