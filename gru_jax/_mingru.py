"""minGRU: a GRU whose gates see only the input, so that it trains with a parallel scan.

From Feng et al., "Were RNNs All We Needed?" (2024). With gate blocks ``(z, h̃)``::

    z_t  = σ(x_t W_z + b_z)                     update gate, from the input only
    h̃_t  = x_t W_h + b_h                        candidate, candidate="linear" (the default)
    h̃_t  = g(x_t W_h + b_h)                     candidate="g", the paper's log-space form:
                                                g(v) = v + 0.5 if v ≥ 0 else σ(v) > 0
    h_t  = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t

``z`` weights the candidate, as in :func:`gru_jax.gru_cell`. Because neither ``z`` nor ``h̃``
depends on ``h``, the recurrence is *linear* in the state: ``h_t = a_t ⊙ h_{t−1} + b_t`` with
``a_t = 1 − z_t = σ(−(x_t W_z + b_z)) ∈ (0, 1)`` and ``b_t = z_t ⊙ h̃_t``, known before the scan.
:func:`mingru` evaluates it in one of three modes:

* ``"sequential"``: a ``jax.lax.scan`` over blocks of 16 or 128 steps; each block
  projects its inputs with one matmul, then runs its steps with an inner ``lax.scan``. The block
  body is rematerialised (``jax.checkpoint``), so the backward pass recomputes a block's gates
  from its inputs and no ``(T, *B, 2H)`` gate array is ever stored. Every step is still done in
  order, one after the other.
* ``"parallel"``: the gates for all steps at once, then ``jax.lax.associative_scan`` over the
  pairs ``(a_t, b_t)`` with ``(a₁, b₁) ∘ (a₂, b₂) = (a₁ a₂, a₂ b₁ + b₂)``: depth ``O(log T)``.
* ``"chunked"``: the blocked scan of ``"sequential"`` with blocks of ``chunk_size`` steps and an
  associative scan inside each block: parallel within blocks, sequential across them.

Segment resets (``resets=`` of :func:`mingru`) need no other machinery: a step that starts a new
segment is the affine map ``h ↦ 0 · h + b_t``, so every mode sets ``a_t = 0`` there and runs
unchanged. It is set through the gate's pre-activation, ``a_t = σ(−∞) = 0`` exactly, whose
tangent is zero too (see ``_gates``).

The associative scan runs in linear space, not log space. The paper's log-space scan exists to
keep its cumulative-*sum* formulation (``h_t = A_t (h_0 + Σ b_s / A_s)``, ``A_t = Π a_s``) from
dividing by products that underflow; the pairwise operator above never divides, its products
``a₁ a₂`` only shrink towards 0 (which is correct: old state forgotten), and every mode is exact
for any sign of ``h̃`` and ``h_0``. The ``candidate="g"`` option is offered for models that want
the paper's positive candidate (``h_t > 0`` when ``h_0 > 0``); it changes the model, not the scan.

Gradients: the associative scan has a custom JVP, ``dh_t = a_t dh_{t−1} + (da_t h_{t−1} + db_t)``,
again a linear recurrence of the same kind; its transpose (reverse mode) is the reverse
recurrence, so the backward pass of the parallel mode is a parallel scan too, and autodiff never
differentiates through the scan's internals. Everything else is plain JAX, so forward mode
(``jax.jvp``, ``jax.jacfwd``), reverse mode and higher orders all work in every mode.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from gru_jax import _checks
from gru_jax._cell import (
    at_least_float32,
    chrono_bias_init,
    compute_dtype,
    default_bias_init,
    default_kernel_init,
)
from gru_jax._resets import segment_starts
from gru_jax._scan import batch_and_steps, check_flags, check_time_inputs, check_xs
from gru_jax._typing import Array, ArrayLike, DTypeLike, Initializer, PRNGKey, Shape

CANDIDATES = ("linear", "g")
MODES = ("auto", "sequential", "parallel", "chunked")
DEFAULT_CHUNK_SIZE = 256
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
    if not _checks.known_dim(batch_size):
        return SMALL_BLOCK
    flops_per_step = 2 * batch_size * input_size * 2 * hidden_size
    return LARGE_BLOCK if flops_per_step >= LARGE_BLOCK_FLOPS else SMALL_BLOCK


# "auto" on XLA:CPU is "sequential" at every length: on 2 cores (jax 0.10), forward+backward
# at B=8, I=64, H=128, T from 64 to 16384, it was the fastest mode or close to it on an idle and
# on a busy machine, while "parallel" and "chunked" won only when the second core was free (at
# T <= 256 and T = 4096) and lost 2-3x when it was not (benchmarks/bench_mingru.py; numbers in
# docs/mingru.md). On GPU and TPU the choice is *not* measured in this library: it follows
# the paper's evidence (parallel scans far faster at long T, where a sequential loop pays a kernel
# launch per step) and the general rule that a loop of tiny steps leaves an accelerator idle:
# "parallel" from AUTO_PARALLEL_MIN_T steps on, "sequential" below.
AUTO_PARALLEL_MIN_T = 64


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MinGRUParams:
    """Parameters of one minGRU layer.

    A pytree whose leaves are the two arrays; ``candidate`` is static metadata (part of the tree
    structure, never traced), like :attr:`GRUParams.reset_after <gru_jax.GRUParams>`.

    Attributes:
      w_x: ``(I, 2H)`` input kernel, column blocks ``[z | h̃]`` (update gate, candidate).
      b_x: ``(2H,)`` bias, blocks ``[b_z | b_h]``.
      candidate: ``"linear"`` for ``h̃ = x W_h + b_h`` (default), ``"g"`` for the paper's
        positive candidate ``h̃ = g(x W_h + b_h)``; see :func:`mingru`.

    Example:
      >>> import jax.numpy as jnp
      >>> from gru_jax import MinGRUParams
      >>> p = MinGRUParams(w_x=jnp.zeros((3, 8)), b_x=jnp.zeros(8))
      >>> p.input_size, p.hidden_size, p.candidate
      (3, 4, 'linear')
      >>> p.replace(candidate="g").candidate
      'g'
    """

    w_x: Array
    b_x: Array
    candidate: str = dataclasses.field(default="linear", metadata={"static": True})

    @property
    def input_size(self) -> int:
        """``I``, the number of input features."""
        return self.w_x.shape[0]

    @property
    def hidden_size(self) -> int:
        """``H``, the number of hidden features."""
        return self.w_x.shape[1] // 2

    def replace(self, **changes: Any) -> MinGRUParams:
        """Return a copy with the given fields replaced (like ``NamedTuple._replace``)."""
        return dataclasses.replace(self, **changes)

    _replace = replace


def check_candidate(fn: str, candidate: object) -> str:
    """``candidate`` if it is one of :data:`CANDIDATES`, else raise."""
    if not isinstance(candidate, str) or candidate not in CANDIDATES:
        raise ValueError(f"{fn}: candidate must be one of {CANDIDATES}; got {candidate!r}")
    return candidate


def two_blocks(init: Initializer) -> Initializer:
    """An initializer for a ``(rows, 2H)`` kernel that calls ``init`` once per block ``[z | h̃]``,
    with shape ``(rows, H)``, in at least float32 (like :func:`gru_jax._cell.gate_blocks`)."""
    init = at_least_float32(init)

    def init_fn(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        rows, cols = shape
        if cols % 2:
            raise ValueError(f"two_blocks: the last dim must be 2H; got shape {tuple(shape)}")
        keys = jax.random.split(key, 2)
        return jnp.concatenate([init(k, (rows, cols // 2), dtype) for k in keys], axis=1)

    return init_fn


def init_mingru(
    key: PRNGKey,
    input_size: int,
    hidden_size: int,
    *,
    candidate: str = "linear",
    dtype: DTypeLike = jnp.float32,
    kernel_init: Initializer = default_kernel_init,
    bias_init: Initializer = default_bias_init,
    chrono: int | None = None,
) -> MinGRUParams:
    """Initialise the parameters of one minGRU layer.

    ``kernel_init`` is called once per block with shape ``(I, H)`` (Glorot uniform by default,
    as for :func:`gru_jax.init_gru`'s input kernel); ``bias_init`` once with ``(2H,)`` (zeros by
    default, so ``z = 0.5`` at first). Both draw in ``promote_types(dtype, float32)`` and are cast
    to ``dtype``.

    With zero biases ``z = σ(0) = 0.5``: each step halves what the state holds. For long
    sequences ``chrono=T_max`` draws the update-gate bias ``b_z`` (the first ``H`` entries of
    ``b_x``) as ``−log u``, ``u ~ U(1, T_max − 1)``, the "chrono" initialisation of Tallec &
    Ollivier (2018). A unit ``h' = (1 − z) h + z h̃`` with a constant gate ``z`` keeps a fraction
    ``(1 − z)^t ≈ e^{−z t}`` of its state after ``t`` steps, a timescale of about ``1/z`` steps;
    at zero input ``z = σ(b_z) ≈ e^{b_z}`` for a very negative ``b_z`` (here exactly
    ``1/(1 + u)``), so ``b_z = −log u`` gives ``z ≈ 1/u``, a timescale of about ``u`` steps, the
    units' timescales spread uniformly over ``[1, T_max − 1]``. The chrono values are drawn with a
    key folded from ``b_x``'s, so ``w_x`` and ``b_h`` are bit-identical to ``chrono=None`` with
    the same ``key``. The guide: docs/long-memory.md.

    Args:
      key: a PRNG key.
      input_size: ``I``, a positive int.
      hidden_size: ``H``, a positive int.
      candidate: ``"linear"`` or ``"g"``; see :func:`mingru`.
      dtype: floating-point dtype of the parameters.
      kernel_init, bias_init: ``jax.nn.initializers``-style initializers, see above.
      chrono: ``None``, or ``T_max``, an int ``>= 3`` (not a bool): the chrono initialisation
        of ``b_z``, see above.

    Returns:
      A :class:`MinGRUParams` with ``w_x (I, 2H)`` and ``b_x (2H,)``.

    Example:
      >>> import jax
      >>> from gru_jax import init_mingru
      >>> p = init_mingru(jax.random.key(0), 4, 8)
      >>> p.w_x.shape, p.b_x.shape, p.candidate
      ((4, 16), (16,), 'linear')
    """
    fn = "init_mingru"
    input_size = _checks.check_size(fn, "input_size", input_size)
    hidden_size = _checks.check_size(fn, "hidden_size", hidden_size)
    dtype = _checks.check_float_dtype(fn, "dtype", dtype)
    candidate = check_candidate(fn, candidate)
    chrono = _checks.check_chrono(fn, chrono)
    kx, kb = jax.random.split(key)
    return MinGRUParams(
        w_x=two_blocks(kernel_init)(kx, (input_size, 2 * hidden_size), dtype),
        b_x=chrono_bias_init(bias_init, hidden_size, chrono)(kb, (2 * hidden_size,), dtype),
        candidate=candidate,
    )


def check_params(fn: str, params: MinGRUParams, name: str = "params") -> tuple[int, int]:
    """Check that ``params`` is a consistent :class:`MinGRUParams`; return ``(I, H)``."""
    if not isinstance(params, MinGRUParams):
        raise TypeError(f"{fn}: {name} must be a MinGRUParams; got {type(params).__name__}")
    for field in ("w_x", "b_x"):
        leaf = getattr(params, field)
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise TypeError(f"{fn}: {name}.{field} must be an array; got {type(leaf).__name__}")
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"{fn}: {name}.{field} must have a floating-point dtype; got {leaf.dtype}"
            )
    if params.w_x.ndim != 2 or params.w_x.shape[1] % 2 or params.w_x.shape[1] == 0:
        raise ValueError(f"{fn}: {name}.w_x must have shape (I, 2H); got {tuple(params.w_x.shape)}")
    hidden = params.w_x.shape[1] // 2
    _checks.check_shape(fn, f"{name}.b_x", params.b_x, (2 * hidden,), "(2H,)")
    check_candidate(fn, params.candidate)
    return params.w_x.shape[0], hidden


# ----------------------------------------------------------------------------- the recurrence


def _combine(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    """Compose two affine maps ``h ↦ a h + b``: first ``(a₁, b₁)``, then ``(a₂, b₂)``."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def _sequential(a: Array, b: Array, h0: Array | None = None) -> Array:
    def step(h: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
        h = ab[0] * h + ab[1]
        return h, h

    return jax.lax.scan(step, jnp.zeros_like(b[0]) if h0 is None else h0, (a, b))[1]


def _parallel(a: Array, b: Array) -> Array:
    h: Array = jax.lax.associative_scan(_combine, (a, b), axis=0)[1]
    return h


def _chunked(a: Array, b: Array, chunk_size: int) -> Array:
    steps = a.shape[0]
    size = min(chunk_size, steps) if _checks.known_dim(steps) else chunk_size
    blocks = -(-steps // size)
    pad = blocks * size - steps
    if not _checks.known_dim(pad) or pad:  # identity steps (a = 1, b = 0) change nothing before
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
        return _sequential(a, b)
    if mode == "parallel":
        return _parallel(a, b)
    return _chunked(a, b, chunk_size)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _recurrence(mode: str, chunk_size: int, a: Array, b: Array) -> Array:
    return _recurrence_impl(mode, chunk_size, a, b)


@_recurrence.defjvp
def _recurrence_jvp(
    mode: str, chunk_size: int, primals: tuple[Array, Array], tangents: tuple[Array, Array]
) -> tuple[Array, Array]:
    a, b = primals
    da, db = tangents
    h = _recurrence(mode, chunk_size, a, b)
    h_prev = jnp.concatenate([jnp.zeros_like(h[:1]), h[:-1]])
    # Linear in the tangents: JAX transposes it into the reverse recurrence for reverse mode.
    return h, _recurrence(mode, chunk_size, a, da * h_prev + db)


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
    known = _checks.known_dim(steps)
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
    mode: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Array:
    """All states of ``h_t = a_t ⊙ h_{t−1} + b_t``, time on axis 0.

    Args:
      a, b: ``(T, *S)`` arrays of one floating-point dtype (``*S`` any trailing shape).
      h0: ``(*S)`` the state before step 0; zeros when ``None``.
      mode: ``"sequential"``, ``"parallel"``, ``"chunked"`` or ``"auto"`` (see :func:`mingru`).
      chunk_size: block length of ``"chunked"``.

    Returns:
      ``(T, *S)``, the state after every step. Differentiable in every argument, in forward and
      reverse mode; see the module docstring.

    Example:
      >>> import jax.numpy as jnp
      >>> from gru_jax._mingru import linear_recurrence
      >>> a, b = jnp.full((4, 1), 0.5), jnp.ones((4, 1))
      >>> linear_recurrence(a, b, jnp.zeros(1), mode="parallel")[:, 0].tolist()
      [1.0, 1.5, 1.75, 1.875]
    """
    fn = "linear_recurrence"
    a = _checks.as_float_array(fn, "a", a)
    b = _checks.as_float_array(fn, "b", b)
    if a.ndim < 1 or a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(
            f"{fn}: a and b must have one shape (T, *S) and dtype; got {a.shape} {a.dtype} "
            f"and {b.shape} {b.dtype}"
        )
    mode = resolve_mode(check_mode(fn, mode), a.shape[0])
    chunk_size = _checks.check_size(fn, "chunk_size", chunk_size)
    if h0 is not None:
        h0 = _checks.as_float_array(fn, "h0", h0)
        _checks.check_shape(fn, "h0", h0, a.shape[1:], "(*S)")
        if a.shape[0]:
            b = b.at[0].add(a[0] * h0.astype(b.dtype))
    if a.shape[0] == 0:
        return b
    return _recurrence(mode, chunk_size, a, b)


# ----------------------------------------------------------------------------- the minGRU


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _matmul(x: Array, w: Array, acc: jnp.dtype) -> Array:
    """``x (N, K) @ w (K, M)``, accumulated in ``acc``, with a JVP whose transpose computes the
    kernel's gradient as the plain matmul ``xᵀ (K, N) @ ct (N, M)``.

    Autodiff of ``x @ w`` gives the kernel gradient as a contraction over ``x``'s *first* axis,
    which XLA:CPU runs several times slower than a matmul on a transposed copy of ``x``; the
    optimisation barrier keeps that copy (small: one block of steps) from being folded back.
    """
    return jnp.matmul(x, w, preferred_element_type=acc)


def _matmul_jvp(
    acc: jnp.dtype, primals: tuple[Array, Array], tangents: tuple[Any, Any]
) -> tuple[Array, Array]:
    x, w = primals
    dx, dw = tangents
    out = _matmul(x, w, acc)
    terms = []
    if not isinstance(dx, SymbolicZero):
        terms.append(jnp.matmul(dx, w, preferred_element_type=acc))
    if not isinstance(dw, SymbolicZero):
        x_t = jax.lax.optimization_barrier(x.T)
        dims = (((0,), (0,)), ((), ()))
        terms.append(jax.lax.dot_general(x_t, dw, dims, preferred_element_type=acc))
    if not terms:  # not reached: JAX calls the rule only when some input is perturbed
        return out, jnp.zeros_like(out)
    return out, functools.reduce(jnp.add, terms)


_matmul.defjvp(_matmul_jvp, symbolic_zeros=True)


def _gates(
    params: MinGRUParams, x: Array, acc: jnp.dtype, starts: Array | None = None
) -> tuple[Array, Array]:
    """``(a, b) = (1 − z, z ⊙ h̃)`` from inputs ``x (..., I)``, in dtype ``acc``; ``a = 0``
    where ``starts`` (bool, broadcastable to ``a``) marks a segment start.

    The two blocks are projected by two matmuls on a 2-D view of ``x``: on XLA:CPU that beats
    one ``(I, 2H)`` matmul and slicing its output, mostly in the backward pass (no padding and
    concatenation of the two gradient blocks), and a 2-D contraction for the kernel's gradient.
    """
    hidden = params.w_x.shape[1] // 2
    x2 = x.reshape(-1, x.shape[-1])
    w_x, b_x = params.w_x, params.b_x.astype(acc)

    def project(lo: int) -> Array:
        w = w_x[:, lo : lo + hidden]
        out = _matmul(x2, w, acc) + b_x[lo : lo + hidden]
        return out.reshape(*x.shape[:-1], hidden)

    gz, gh = project(0), project(hidden)
    if params.candidate == "g":
        gh = jnp.where(gh >= 0, gh + 0.5, jax.nn.sigmoid(gh))
    # 1 − σ(u) = σ(−u), without the cancellation of 1 − σ(u) for large u.
    if starts is None:
        return jax.nn.sigmoid(-gz), jax.nn.sigmoid(gz) * gh
    # A segment start: a = σ(−∞) = 0 exactly, with a zero tangent (σ' = σ(1 − σ) = 0 there).
    # Selecting 0 after the sigmoid is the same maths, but XLA:CPU then fused the select into
    # every level of the chunked mode's associative scan: its forward pass took twice as long.
    return jax.nn.sigmoid(-jnp.where(starts, jnp.inf, gz)), jax.nn.sigmoid(gz) * gh


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
    if not _checks.known_dim(pad) or pad:  # a symbolic T (jax.export): padded, maybe by 0 steps
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
        a, b = _gates(params, x, acc, None if starts is None else inputs[2])
        if limit is not None:
            valid = (start + offsets < limit)[..., None]  # (block, *B, 1)
            a = jnp.where(valid, a, jnp.ones((), acc))
            b = jnp.where(valid, b, jnp.zeros((), acc))
        if inner == "sequential":
            hs = _sequential(a, b, h)
        else:
            hs = _recurrence("parallel", 0, a, b.at[0].add(a[0] * h))
        if limit is not None:
            hs_out = jnp.where(valid, hs, jnp.zeros((), acc))
        else:
            hs_out = hs
        return hs[-1], hs_out

    h_last, hs = jax.lax.scan(jax.checkpoint(body), h0, scanned)
    return hs.reshape(blocks * block, *hs.shape[2:])[:steps], h_last


def mingru_cell(params: MinGRUParams, h: ArrayLike, x: ArrayLike) -> Array:
    """One minGRU step: ``h' = (1 − z) ⊙ h + z ⊙ h̃`` with ``z``, ``h̃`` from ``x`` alone.

    For step-by-step use (streaming, sampling); over a whole sequence :func:`mingru` is faster.

    Args:
      params: a :class:`MinGRUParams`.
      h: ``(*B, H)`` state.
      x: ``(*B, I)`` input, with the same leading batch dims as ``h``.

    Returns:
      ``(*B, H)``, the new state, in the promoted dtype of ``params``, ``h`` and ``x``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_mingru, mingru_cell
      >>> p = init_mingru(jax.random.key(0), 3, 5)
      >>> mingru_cell(p, jnp.zeros((2, 5)), jnp.ones((2, 3))).shape
      (2, 5)
    """
    fn = "mingru_cell"
    input_size, hidden = check_params(fn, params)
    h, x = _checks.check_cell_inputs(fn, h, x, input_size, hidden)
    dtype = compute_dtype(h, x, *jax.tree.leaves(params))
    acc = jnp.promote_types(dtype, jnp.float32)
    a, b = _gates(params, x.astype(dtype), acc)
    return (a * h.astype(acc) + b).astype(dtype)


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
    check_flags(fn, reverse=reverse, time_major=time_major)
    xs = check_xs(fn, xs, input_size, time_major)
    batch, steps = batch_and_steps(xs, time_major)
    if h0 is not None:
        h0 = _checks.as_float_array(fn, "h0", h0)
        _checks.check_shape(fn, "h0", h0, (*batch, hidden), "(*B, H)")
    seq_lengths, resets = check_time_inputs(fn, batch, steps, seq_lengths, resets, time_major)
    mode = resolve_mode(check_mode(fn, mode), steps)
    chunk_size = _checks.check_size(fn, "chunk_size", chunk_size)

    dtype = compute_dtype(xs, *jax.tree.leaves(params), *([] if h0 is None else [h0]))
    acc = jnp.promote_types(dtype, jnp.float32)
    if _checks.known_dim(steps) and steps == 0:
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
        a, b = _gates(params, xs_t, acc, starts)  # a = 0 where a segment starts
        if valid is not None:
            a = jnp.where(valid, a, jnp.ones((), acc))
            b = jnp.where(valid, b, jnp.zeros((), acc))
        b = b.at[0].add(a[0] * h0)  # fold h0 into step 0: h_0 = a_0 h0 + b_0
        hs = _recurrence(mode, chunk_size, a, b)  # (T, *B, H)
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
        if _checks.known_dim(steps):  # else symbolic (jax.export): blocks of the full length
            block = min(block, steps)
        hs, h_last = _blocked(params, xs_t, h0, seq_lengths, starts, acc, block, inner)
    if reverse:
        hs = _reverse_valid(hs, seq_lengths)
    ys = hs if time_major else jnp.moveaxis(hs, 0, -2)
    return ys.astype(dtype), h_last.astype(dtype)
