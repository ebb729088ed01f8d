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
This module holds the parameters, the gates ``(a, b)`` and the single step;
:mod:`gru_jax._mingru.sequence` runs the recurrence over a sequence.

A step that starts a new segment (``resets=``) is the affine map ``h ↦ 0 · h + b_t``: the gates
set ``a_t = σ(−∞) = 0`` exactly through the update gate's pre-activation, whose tangent is zero
too (see :func:`gates`). The ``candidate="g"`` option is offered for models that want the
paper's positive candidate (``h_t > 0`` when ``h_0 > 0``); it changes the model, not the scan.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from gru_jax._base import checks
from gru_jax._base.dtypes import compute_dtype
from gru_jax._base.init import (
    chrono_bias_init,
    default_bias_init,
    default_kernel_init,
    two_blocks,
)
from gru_jax._base.typing import Array, ArrayLike, DTypeLike, Initializer, PRNGKey

CANDIDATES = ("linear", "g")


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
    input_size = checks.check_size(fn, "input_size", input_size)
    hidden_size = checks.check_size(fn, "hidden_size", hidden_size)
    dtype = checks.check_float_dtype(fn, "dtype", dtype)
    candidate = check_candidate(fn, candidate)
    chrono = checks.check_chrono(fn, chrono)
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
    checks.check_float_leaves(fn, name, params, ("w_x", "b_x"))
    if params.w_x.ndim != 2 or params.w_x.shape[1] % 2 or params.w_x.shape[1] == 0:
        raise ValueError(f"{fn}: {name}.w_x must have shape (I, 2H); got {tuple(params.w_x.shape)}")
    hidden = params.w_x.shape[1] // 2
    checks.check_shape(fn, f"{name}.b_x", params.b_x, (2 * hidden,), "(2H,)")
    check_candidate(fn, params.candidate)
    return params.w_x.shape[0], hidden


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


def gates(
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
    h, x = checks.check_cell_inputs(fn, h, x, input_size, hidden)
    dtype = compute_dtype(h, x, *jax.tree.leaves(params))
    acc = jnp.promote_types(dtype, jnp.float32)
    a, b = gates(params, x.astype(dtype), acc)
    return (a * h.astype(acc) + b).astype(dtype)
