"""How the GRU's loops are arranged: a static :class:`Plan`, chosen per backend and shape.

The choices were measured on XLA:CPU (2 cores, AMD EPYC, AVX-512); see :func:`plan` and the
performance guide. On accelerators the plan hoists the input projection before the loop and
stores the gates.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax

from gru_jax._base import checks


class Plan(NamedTuple):
    """How :func:`scan_gru` runs: static choices, made per backend and shape by :func:`plan`.

    Attributes:
      reset_after, reverse, unroll: as in :func:`gru_jax.gru`.
      fwd_chunk: steps per chunk of the batch-major chunked forward (:func:`forward_chunked`);
        0 for the plain time-major scan (:func:`forward`).
      hoist: in the plain scan, compute ``x W_x`` for all steps before the loop.
      recompute: in the derivative, recompute the gates chunk by chunk from the outputs
        (:func:`_jvp_recompute`) instead of storing them in the forward scan.
      train_chunk: steps per chunk of that recomputation.
      remat: checkpoint the recomputation, so that reverse mode stores only ``xs`` and ``ys``.
      time_major: ``xs`` and ``ys`` are ``(T, N, ·)`` instead of ``(N, T, ·)``. A layout, not a
        choice of :func:`plan`: every path reads and writes it in place.
    """

    reset_after: bool
    reverse: bool = False
    unroll: int | bool = 1
    fwd_chunk: int = 0
    hoist: bool = False
    recompute: bool = False
    train_chunk: int = 16
    remat: bool = False
    time_major: bool = False


def pick_chunk(steps: int, target: int) -> int:
    """A chunk length near ``target`` (at most ``steps``), preferring one that divides ``steps``
    (no padding) within a factor of two of ``target``."""
    target = max(1, min(target, steps))
    for k in sorted(
        range(max(1, target // 2), min(steps, 2 * target) + 1), key=lambda k: abs(k - target)
    ):
        if steps % k == 0:
            return k
    return target


def default_chunk(steps: int) -> int:
    """Chunk length for ``remat``: about ``sqrt(T)``, at least 16."""
    return max(16, math.ceil(math.sqrt(steps)))


# Tuned on XLA:CPU, 2 cores (AMD EPYC, AVX-512); see plan() and the README's Performance section.
_CPU_CHUNK_ROWS = 1024  # rows (N·K) of a chunk's input-projection matmul
_CPU_SMALL_STEP_FLOPS = 4e6  # below this, a step is loop-overhead bound
SYMBOLIC_CHUNK = 32  # steps per chunk when the batch or the length is symbolic (jax.export)


def plan(
    steps: int,
    batch: int,
    input_size: int,
    hidden: int,
    *,
    reset_after: bool,
    reverse: bool = False,
    unroll: int | bool = 1,
    remat: bool = False,
    backend: str | None = None,
    time_major: bool = False,
) -> Plan:
    """The :class:`Plan` for a GRU over ``steps`` steps of ``batch`` sequences on ``backend``.

    On CPU (measured, 2 cores): the forward pass runs in chunks of about 1024 rows (``N·K``)
    whose input projection is one matmul (10-25% faster than a projection per step, and no
    transposed copies); the derivative stores the gates in the forward scan, except when a step
    is small (``2·N·(I+H)·3H`` below 4 MFLOP): then the loop overhead of writing five residuals
    per step costs more than recomputing the gates in chunks, and the checkpointed recompute
    path (:func:`_jvp_recompute`) is used, which also needs far less memory. ``unroll > 1``
    measured no faster on CPU, so the default stays 1. On accelerators: one large input matmul
    before the loop (``hoist``) and stored gates.
    """
    backend = jax.default_backend() if backend is None else backend
    # Under jax.export a dimension may be symbolic (not an int): a plan must not compare it
    # with a threshold. It then takes the arrangement it would take at any size: chunks of a
    # fixed length (the padding to a multiple of it is symbolic), and for an unknown batch the
    # stored gates.
    known_steps, known_batch = checks.known_dim(steps), checks.known_dim(batch)
    target = -(-_CPU_CHUNK_ROWS // max(batch, 1)) if known_batch else SYMBOLIC_CHUNK
    chunk = pick_chunk(steps, target) if known_steps else target
    several_steps = not known_steps or steps > 1
    if backend == "cpu":
        fwd_chunk = chunk if several_steps else 0
        hoist = False
        small = known_batch and 2.0 * batch * (input_size + hidden) * 3 * hidden < (
            _CPU_SMALL_STEP_FLOPS
        )
        recompute = small and several_steps
    else:
        fwd_chunk, hoist, recompute = 0, True, False
    if remat:
        train_chunk = pick_chunk(steps, default_chunk(steps)) if known_steps else SYMBOLIC_CHUNK
    else:
        train_chunk = chunk
    return Plan(
        reset_after=reset_after,
        reverse=reverse,
        unroll=unroll,
        fwd_chunk=fwd_chunk,
        hoist=hoist,
        recompute=recompute,
        train_chunk=train_chunk,
        remat=remat or recompute,
        time_major=time_major,
    )
