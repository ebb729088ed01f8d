"""The arguments every sequence function shares: ``xs``, ``h0``, ``seq_lengths``, ``resets``.

:func:`gru_jax.gru`, :func:`gru_jax.mingru` and both stacks check them the same way, in the
same order, so that a mistake gets the same message from each (named after the function).
"""

from __future__ import annotations

from typing import NamedTuple

from gru_jax._base import checks
from gru_jax._base.resets import check_resets
from gru_jax._base.typing import Array, ArrayLike


class SequenceArgs(NamedTuple):
    """The checked arguments of a sequence function (see :func:`check_sequence`)."""

    xs: Array  # (*B, T, I), or (T, *B, I) if time-major
    batch: tuple[int, ...]  # B
    steps: int  # T
    h0: Array | None  # (*lead, *B, H)
    seq_lengths: Array | None  # (*B,)
    resets: Array | None  # (*B, T), or (T, *B) if time-major


def check_time_inputs(
    fn: str,
    batch: tuple[int, ...],
    T: int,
    seq_lengths: ArrayLike | None,
    resets: ArrayLike | None,
    time_major: bool,
) -> tuple[Array | None, Array | None]:
    """Check ``seq_lengths (*B,)`` and ``resets (*B, T)`` (``(T, *B)`` if ``time_major``)."""
    if seq_lengths is not None:
        seq_lengths = checks.check_seq_lengths(fn, seq_lengths, batch, T)
    if resets is not None:
        shape, layout = ((T, *batch), "(T, *B)") if time_major else ((*batch, T), "(*B, T)")
        resets = check_resets(fn, resets, shape, layout)
    return seq_lengths, resets


def check_sequence(
    fn: str,
    xs: ArrayLike,
    input_size: int,
    hidden: int,
    h0: ArrayLike | None,
    seq_lengths: ArrayLike | None,
    resets: ArrayLike | None,
    *,
    time_major: bool,
    h0_lead: tuple[int, ...] = (),
    h0_layout: str = "(*B, H)",
) -> SequenceArgs:
    """Check ``xs``, then ``h0 (*h0_lead, *B, H)`` (spelled ``h0_layout``), then the lengths
    and resets, with the batch shape ``B`` and the length ``T`` taken from ``xs``."""
    xs = checks.check_xs(fn, xs, input_size, time_major)
    batch, steps = checks.batch_and_steps(xs, time_major)
    if h0 is not None:
        h0 = checks.as_float_array(fn, "h0", h0)
        checks.check_shape(fn, "h0", h0, (*h0_lead, *batch, hidden), h0_layout)
    seq_lengths, resets = check_time_inputs(fn, batch, steps, seq_lengths, resets, time_major)
    return SequenceArgs(xs, batch, steps, h0, seq_lengths, resets)
