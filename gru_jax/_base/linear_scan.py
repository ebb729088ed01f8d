"""The linear recurrence ``h_t = a_t ⊙ h_{t−1} + b_t``, sequential, parallel or chunked.

The minGRU (:mod:`gru_jax._mingru`) runs on it, and so can any elementwise linear recurrence
(LRU, S5, a leaky integrator): :func:`linear_recurrence` is public. Three evaluation modes:

* ``"sequential"``: a ``jax.lax.scan`` over the steps;
* ``"parallel"``: ``jax.lax.associative_scan`` over the pairs ``(a_t, b_t)`` with
  ``(a₁, b₁) ∘ (a₂, b₂) = (a₁ a₂, a₂ b₁ + b₂)``: depth ``O(log T)``;
* ``"chunked"``: an associative scan inside blocks of ``chunk_size`` steps, sequential across
  them.

A reset (a new segment) is the step ``a_t = 0``: the affine map ``h ↦ b_t``, which composes like
any other, so every mode takes it natively. The pairwise operator never divides, so the scan is
exact for any sign of ``b`` and ``h0`` (no log space is needed). The custom JVP
``dh_t = a_t dh_{t−1} + (da_t h_{t−1} + db_t)`` is again such a recurrence; its transpose
(reverse mode) is the reverse recurrence, so autodiff never differentiates through the scan's
internals, and forward mode, reverse mode and higher orders work in every mode.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax._base import checks
from gru_jax._base.typing import Array, ArrayLike

MODES = ("auto", "sequential", "parallel", "chunked")
DEFAULT_CHUNK_SIZE = 256
# "auto" on XLA:CPU is "sequential" at every length: on 2 cores (jax 0.10), forward+backward
# at B=8, I=64, H=128, T from 64 to 16384, it was the fastest mode or close to it on an idle and
# on a busy machine, while "parallel" and "chunked" won only when the second core was free (at
# T <= 256 and T = 4096) and lost 2-3x when it was not (benchmarks/bench_mingru.py; numbers in
# docs/mingru.md). On GPU and TPU the choice is *not* measured in this library: it follows
# the paper's evidence (parallel scans far faster at long T, where a sequential loop pays a kernel
# launch per step) and the general rule that a loop of tiny steps leaves an accelerator idle:
# "parallel" from AUTO_PARALLEL_MIN_T steps on, "sequential" below.
AUTO_PARALLEL_MIN_T = 64


def _combine(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    """Compose two affine maps ``h ↦ a h + b``: first ``(a₁, b₁)``, then ``(a₂, b₂)``."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def scan_sequential(a: Array, b: Array, h0: Array | None = None) -> Array:
    def step(h: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
        h = ab[0] * h + ab[1]
        return h, h

    return jax.lax.scan(step, jnp.zeros_like(b[0]) if h0 is None else h0, (a, b))[1]


def _parallel(a: Array, b: Array) -> Array:
    h: Array = jax.lax.associative_scan(_combine, (a, b), axis=0)[1]
    return h


def _chunked(a: Array, b: Array, chunk_size: int) -> Array:
    steps = a.shape[0]
    size = min(chunk_size, steps) if checks.known_dim(steps) else chunk_size
    blocks = -(-steps // size)
    pad = blocks * size - steps
    if not checks.known_dim(pad) or pad:  # identity steps (a = 1, b = 0) change nothing before
        a = jnp.concatenate([a, jnp.ones((pad, *a.shape[1:]), a.dtype)])
        b = jnp.concatenate([b, jnp.zeros((pad, *b.shape[1:]), b.dtype)])
    a = a.reshape(blocks, size, *a.shape[1:])
    b = b.reshape(blocks, size, *b.shape[1:])
    # Within each block, from a zero state: prefix products A and states h_local.
    prod, h_local = jax.lax.associative_scan(_combine, (a, b), axis=1)

    # Across blocks, sequentially: the state entering each block.
    def step(h: Array, block_end: tuple[Array, Array]) -> tuple[Array, Array]:
        return block_end[0] * h + block_end[1], h

    _, h_enter = jax.lax.scan(step, jnp.zeros_like(b[0, 0]), (prod[:, -1], h_local[:, -1]))
    h: Array = h_local + prod * h_enter[:, None]
    return h.reshape(blocks * size, *h.shape[2:])[:steps]


def _recurrence_impl(mode: str, chunk_size: int, a: Array, b: Array) -> Array:
    if mode == "sequential":
        return scan_sequential(a, b)
    if mode == "parallel":
        return _parallel(a, b)
    return _chunked(a, b, chunk_size)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def recurrence(mode: str, chunk_size: int, a: Array, b: Array) -> Array:
    return _recurrence_impl(mode, chunk_size, a, b)


@recurrence.defjvp
def _recurrence_jvp(
    mode: str, chunk_size: int, primals: tuple[Array, Array], tangents: tuple[Array, Array]
) -> tuple[Array, Array]:
    a, b = primals
    da, db = tangents
    h = recurrence(mode, chunk_size, a, b)
    h_prev = jnp.concatenate([jnp.zeros_like(h[:1]), h[:-1]])
    # Linear in the tangents: JAX transposes it into the reverse recurrence for reverse mode.
    return h, recurrence(mode, chunk_size, a, da * h_prev + db)


def check_mode(fn: str, mode: object) -> str:
    """``mode`` if it is one of :data:`MODES`, else raise."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"{fn}: mode must be one of {MODES}; got {mode!r}")
    return mode


def resolve_mode(mode: str, steps: int, backend: str | None = None) -> str:
    """The mode ``"auto"`` stands for at ``steps`` time steps on ``backend`` (default: JAX's).

    XLA:CPU: ``"sequential"`` (measured fastest, or close, at every ``T``). GPU and TPU:
    ``"parallel"`` from :data:`AUTO_PARALLEL_MIN_T` steps on, ``"sequential"`` below (from the
    paper and general evidence, not measured here). Any other mode is returned unchanged.

    A symbolic ``steps`` (``jax.export``): ``"sequential"`` on CPU, ``"chunked"`` elsewhere
    (parallel within blocks of a fixed length); ``"parallel"`` itself cannot take a symbolic
    time axis (``lax.associative_scan`` needs its length) and is refused.
    """
    known = checks.known_dim(steps)
    if mode == "parallel" and not known:
        raise ValueError(
            f"mingru: mode='parallel' needs a known number of steps (lax.associative_scan "
            f"cannot take a symbolic length); got T = {steps}. Use mode='chunked' (parallel "
            "within blocks, exact), 'sequential' or 'auto'"
        )
    if mode != "auto":
        return mode
    backend = jax.default_backend() if backend is None else backend
    if backend == "cpu":
        return "sequential"
    if not known:
        return "chunked"
    return "sequential" if steps < AUTO_PARALLEL_MIN_T else "parallel"


def linear_recurrence(
    a: ArrayLike,
    b: ArrayLike,
    h0: ArrayLike | None = None,
    *,
    resets: ArrayLike | None = None,
    mode: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Array:
    """All states of the elementwise linear recurrence ``h_t = a_t ⊙ h_{t−1} + b_t``.

    The scan under :func:`gru_jax.mingru`, for any recurrence of this form: a diagonal linear
    RNN (LRU, S5), a leaky integrator, an exponential moving average. Time is axis 0. With
    ``resets``, several segments share one row: where ``resets[t]`` is True the state before
    step ``t`` is zeros, so each segment's states are those of running it alone from zeros (in
    the recurrence, ``a_t = 0`` there). Every mode computes the same values and gradients, up to
    rounding.

    Args:
      a: ``(T, *S)`` floating-point decay factors (``*S`` any trailing shape).
      b: ``(T, *S)`` inputs, of the dtype and shape of ``a``.
      h0: ``(*S)`` the state before step 0; zeros when ``None``. A reset at step 0 ignores it.
      resets: optional ``(T, *P)`` bool, ``P`` a prefix of ``S`` (``(T,)``, ``(T, B)`` for
        ``S = (B, H)``, or ``(T, *S)``): True where a segment starts. Broadcast over the
        trailing axes of ``S`` that it lacks.
      mode: ``"sequential"`` (``lax.scan``), ``"parallel"`` (``lax.associative_scan``,
        ``O(log T)`` depth), ``"chunked"`` (parallel within blocks of ``chunk_size`` steps,
        sequential across them) or ``"auto"`` (``"sequential"`` on CPU; on GPU/TPU
        ``"parallel"`` from 64 steps on). ``"parallel"`` needs a known ``T`` (not symbolic).
      chunk_size: block length of ``"chunked"``, a positive int.

    Returns:
      ``(T, *S)``, the state after every step, in the dtype of ``a``. Differentiable in ``a``,
      ``b`` and ``h0``, in forward and reverse mode, to any order.

    Example:
      >>> import jax.numpy as jnp
      >>> from gru_jax import linear_recurrence
      >>> a, b = jnp.full((4, 1), 0.5), jnp.ones((4, 1))
      >>> linear_recurrence(a, b, jnp.zeros(1), mode="parallel")[:, 0].tolist()
      [1.0, 1.5, 1.75, 1.875]
      >>> resets = jnp.array([False, False, True, False])
      >>> linear_recurrence(a, b, resets=resets)[:, 0].tolist()
      [1.0, 1.5, 1.0, 1.5]
    """
    fn = "linear_recurrence"
    a = checks.as_float_array(fn, "a", a)
    b = checks.as_float_array(fn, "b", b)
    if a.ndim < 1 or a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(
            f"{fn}: a and b must have one shape (T, *S) and dtype; got {a.shape} {a.dtype} "
            f"and {b.shape} {b.dtype}"
        )
    mode = resolve_mode(check_mode(fn, mode), a.shape[0])
    chunk_size = checks.check_size(fn, "chunk_size", chunk_size)
    if resets is not None:
        resets = _check_resets(fn, resets, a.shape)
        resets = resets.reshape(resets.shape + (1,) * (a.ndim - resets.ndim))
        a = jnp.where(resets, jnp.zeros((), a.dtype), a)
    if h0 is not None:
        h0 = checks.as_float_array(fn, "h0", h0)
        checks.check_shape(fn, "h0", h0, a.shape[1:], "(*S)")
        if a.shape[0]:
            if resets is not None:  # 0 · h0 would be NaN for an infinite h0
                h0 = jnp.where(resets[0], jnp.zeros((), h0.dtype), h0)
            b = b.at[0].add(a[0] * h0.astype(b.dtype))
    if a.shape[0] == 0:
        return b
    return recurrence(mode, chunk_size, a, b)


def _check_resets(fn: str, resets: ArrayLike, shape: tuple[int, ...]) -> Array:
    """``resets`` as a bool array of shape ``shape[:k]`` for some ``k >= 1``, else raise."""
    if not isinstance(resets, jax.Array | np.ndarray | np.generic):
        resets = np.asarray(resets)
    if resets.dtype != np.bool_:
        raise TypeError(f"{fn}: resets must have dtype bool; got {resets.dtype}")
    if not 1 <= resets.ndim <= len(shape) or tuple(resets.shape) != shape[: resets.ndim]:
        raise ValueError(
            f"{fn}: resets must have shape (T, *P), a prefix of a's shape {tuple(shape)}; "
            f"got {tuple(resets.shape)}"
        )
    return jnp.asarray(resets)
