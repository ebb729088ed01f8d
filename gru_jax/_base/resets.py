"""Segments inside a sequence: ``resets`` flags from packing ids, and the last step of each.

``resets[..., t]`` is True where step ``t`` starts a new segment (an episode of an RL rollout,
one of several sequences packed into a row): the state before that step is zeros, the state of
a fresh sequence, instead of the previous step's state. :func:`gru_jax.gru`,
:func:`gru_jax.gru_stack` and :func:`gru_jax.mingru` take them as ``resets=``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax._base import checks
from gru_jax._base.typing import Array, ArrayLike


def check_resets(fn: str, resets: ArrayLike, shape: tuple[int, ...], layout: str) -> Array:
    """Check that ``resets`` is a bool array of ``shape`` (spelled ``layout``); return it."""
    if not isinstance(resets, jax.Array | np.ndarray | np.generic):
        resets = np.asarray(resets)
    if resets.dtype != np.bool_:
        raise TypeError(f"{fn}: resets must have dtype bool; got {resets.dtype}")
    checks.check_shape(fn, "resets", resets, shape, layout)
    return jnp.asarray(resets)


def resets_from_segment_ids(segment_ids: ArrayLike) -> Array:
    """The ``resets`` of packed rows: True where a segment id differs from the one before.

    The packing convention of T5X and MaxText: equal neighbouring ids are one segment. Step 0
    is False, so a row's first segment starts from ``h0`` (zeros unless given); set
    ``resets[..., 0] = True`` to start it from zeros whatever ``h0`` is.

    Args:
      segment_ids: ``(*B, T)`` integer ids.

    Returns:
      ``(*B, T)`` bool ``resets``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gru_jax import resets_from_segment_ids
      >>> resets_from_segment_ids(jnp.array([[1, 1, 1, 2, 2, 3, 0, 0]])).astype(int).tolist()
      [[0, 0, 0, 1, 0, 1, 1, 0]]
    """
    fn = "resets_from_segment_ids"
    if not isinstance(segment_ids, jax.Array | np.ndarray | np.generic):
        segment_ids = np.asarray(segment_ids)
    if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
        raise TypeError(f"{fn}: segment_ids must have an integer dtype; got {segment_ids.dtype}")
    if segment_ids.ndim < 1:
        raise ValueError(f"{fn}: segment_ids must have shape (*B, T); got {segment_ids.shape}")
    ids = jnp.asarray(segment_ids)
    changed = ids[..., 1:] != ids[..., :-1]
    return jnp.concatenate([jnp.zeros_like(ids[..., :1], bool), changed], axis=-1)


def segment_ends(resets: ArrayLike, seq_lengths: ArrayLike | None = None) -> Array:
    """True at the last valid step of every segment.

    A segment ends at step ``t`` when ``t`` is valid and either ``t + 1`` starts a new segment
    or ``t`` is the last valid step (``t + 1 == length``). The forward final state of each
    segment, which packed classifiers and encoders need, is then ``ys`` at these steps.

    Args:
      resets: ``(*B, T)`` bool, as passed to :func:`gru_jax.gru`.
      seq_lengths: optional ``(*B,)`` integer lengths; steps at ``t >= length`` are padding and
        end nothing.

    Returns:
      ``(*B, T)`` bool.

    Example:
      >>> import jax.numpy as jnp
      >>> from gru_jax import segment_ends
      >>> resets = jnp.array([[False, False, True, False, True, False]])
      >>> segment_ends(resets).astype(int).tolist()
      [[0, 1, 0, 1, 0, 1]]
      >>> segment_ends(resets, seq_lengths=jnp.array([5])).astype(int).tolist()
      [[0, 1, 0, 1, 1, 0]]
    """
    fn = "segment_ends"
    if not isinstance(resets, jax.Array | np.ndarray | np.generic):
        resets = np.asarray(resets)
    if resets.ndim < 1:
        raise ValueError(f"{fn}: resets must have shape (*B, T); got {tuple(resets.shape)}")
    resets = check_resets(fn, resets, tuple(resets.shape), "(*B, T)")
    batch, steps = resets.shape[:-1], resets.shape[-1]
    starts_next = jnp.concatenate([resets[..., 1:], jnp.ones_like(resets[..., :1])], axis=-1)
    if seq_lengths is None:
        return starts_next
    lengths = checks.check_seq_lengths(fn, seq_lengths, batch, steps)
    t = jnp.arange(steps)
    valid = t < lengths[..., None]
    return valid & (starts_next | (t + 1 == lengths[..., None]))


def segment_starts(
    resets: Array, seq_lengths: Array | None, *, reverse: bool, time_major: bool
) -> Array:
    """The steps before which the state is zeros, time-major ``(T, N, 1)``, for the scans.

    ``resets`` is ``(N, T)`` (``(T, N)`` if ``time_major``), already checked and flattened to
    one batch axis; ``seq_lengths`` is ``(N,)`` or None. Forward, that is step ``t`` where
    ``resets[t]``; in reverse, step ``t`` where ``resets[t + 1]`` (the segment that starts at
    ``t + 1`` ends at ``t``, and is processed from there), and never at the last valid step,
    which starts from ``h0``. Marks in the padding are dropped.
    """
    marks = resets if time_major else resets.T  # (T, N)
    steps = marks.shape[0]
    if reverse:
        marks = jnp.concatenate([marks[1:], jnp.zeros_like(marks[:1])])
    if seq_lengths is not None:
        marked_step = jnp.arange(steps) + (1 if reverse else 0)
        marks = marks & (marked_step[:, None] < seq_lengths[None, :])
    return marks[..., None]
