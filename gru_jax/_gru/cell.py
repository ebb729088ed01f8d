"""GRU parameters, their initialisation, and the single-step cell.

The maths, with gate blocks (z, r, n) = (update, reset, candidate)::

    z  = σ(x W_xz + b_xz + h W_hz + b_hz)
    r  = σ(x W_xr + b_xr + h W_hr + b_hr)
    n  = tanh(x W_xn + b_xn + (r ⊙ h) W_hn + b_hn)     reset_after=False (Cho et al., the default)
    n  = tanh(x W_xn + b_xn + r ⊙ (h W_hn + b_hn))     reset_after=True  (cuDNN / torch form)
    h' = (1 − z) ⊙ h + z ⊙ n

``z`` weights the *candidate*, as in Cho et al. and Haiku. torch, Flax, Keras and Equinox use the
opposite convention, ``h' = z ⊙ h + (1 − z) ⊙ n``; converting between the two negates the z-gate
weights and biases exactly, since σ(−a) = 1 − σ(a).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from gru_jax._base import checks
from gru_jax._base.dtypes import cast_params, compute_dtype
from gru_jax._base.init import (
    at_least_float32,
    chrono_bias_init,
    default_bias_init,
    default_kernel_init,
    default_recurrent_init,
    gate_blocks,
)
from gru_jax._base.typing import Array, ArrayLike, DTypeLike, Initializer, PRNGKey


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GRUParams:
    """Parameters of one GRU layer in one direction.

    A pytree whose leaves are the four arrays; ``reset_after`` is static metadata (part of the
    tree structure, so it is never traced, and ``jax.jit`` specialises on it).

    Attributes:
      w_x: ``(I, 3H)`` input kernel, column blocks ``[z | r | n]``.
      w_h: ``(H, 3H)`` recurrent kernel, column blocks ``[z | r | n]``.
      b_x: ``(3H,)`` input bias.
      b_h: ``(3H,)`` recurrent bias. With ``reset_after=False`` only ``b_x + b_h`` matters for
        every gate; with ``reset_after=True`` the candidate block of ``b_h`` sits inside ``r ⊙ ·``.
      reset_after: where the reset gate is applied; see :func:`gru_cell`.

    Example:
      >>> import jax.numpy as jnp
      >>> from gru_jax import GRUParams
      >>> p = GRUParams(w_x=jnp.zeros((3, 6)), w_h=jnp.zeros((2, 6)),
      ...               b_x=jnp.zeros(6), b_h=jnp.zeros(6))
      >>> p.input_size, p.hidden_size, p.reset_after
      (3, 2, False)
      >>> p.replace(b_h=jnp.ones(6)).b_h.sum().item()
      6.0
    """

    w_x: Array
    w_h: Array
    b_x: Array
    b_h: Array
    reset_after: bool = dataclasses.field(default=False, metadata={"static": True})

    @property
    def input_size(self) -> int:
        """``I``, the number of input features."""
        return self.w_x.shape[0]

    @property
    def hidden_size(self) -> int:
        """``H``, the number of hidden features."""
        return self.w_h.shape[0]

    def replace(self, **changes: Any) -> GRUParams:
        """Return a copy with the given fields replaced (like ``NamedTuple._replace``)."""
        return dataclasses.replace(self, **changes)

    _replace = replace


def init_gru(
    key: PRNGKey,
    input_size: int,
    hidden_size: int,
    *,
    reset_after: bool = False,
    dtype: DTypeLike = jnp.float32,
    kernel_init: Initializer = default_kernel_init,
    recurrent_init: Initializer = default_recurrent_init,
    bias_init: Initializer = default_bias_init,
    chrono: int | None = None,
) -> GRUParams:
    """Initialise the parameters of one GRU layer.

    Each initializer has the ``jax.nn.initializers`` signature ``init(key, shape, dtype)``.
    ``kernel_init`` and ``recurrent_init`` are called once per gate block, with shapes
    ``(I, H)`` and ``(H, H)``, so the defaults give a Glorot-uniform input kernel and an
    orthogonal recurrent kernel *per gate*; ``bias_init`` is called with ``(3H,)`` for each of
    ``b_x`` and ``b_h`` (zeros by default). Initializers are called with the dtype
    ``promote_types(dtype, float32)`` and their results cast to ``dtype``, so that bfloat16
    parameters are rounded float32 draws.

    ``chrono=T_max`` is the "chrono" initialisation of Tallec & Ollivier (2018, "Can recurrent
    neural networks warp time?"), for memories of up to about ``T_max`` steps: the update-gate
    block of ``b_x`` (its first ``H`` entries, ``b_xz``) is drawn as ``−log u`` with
    ``u ~ U(1, T_max − 1)``. Why: a leaky unit ``h' = (1 − z) h + z n`` with a constant gate
    ``z`` keeps a fraction ``(1 − z)^t ≈ e^{−z t}`` of its state after ``t`` steps, a timescale
    of about ``1/z`` steps. At zero input, with the recurrent term ``h W_hz`` small,
    ``z = σ(b_z)``, which is ``≈ e^{b_z}`` for a very negative ``b_z`` (here exactly
    ``1/(1 + u)``); so ``b_z = −log u`` gives ``z ≈ 1/u``, a timescale of about ``u`` steps, and
    the units' timescales are spread uniformly over ``[1, T_max − 1]`` (their biases over
    ``(−log(T_max − 1), 0]``). The bias is negative because ``z`` weights the candidate here: a
    small ``z`` keeps the state (in torch's convention, where ``z`` weights the old state, the
    same initialisation is ``+log u``). The gate sees ``b_xz + b_hz``, and ``b_hz`` keeps
    ``bias_init``'s value (zero by default). The chrono values are drawn with a key folded from
    ``b_x``'s, so every other entry of ``b_x`` and every other parameter is bit-identical to
    ``chrono=None`` with the same ``key``. The guide: docs/long-memory.md.

    Args:
      key: a PRNG key.
      input_size: ``I``, a positive int.
      hidden_size: ``H``, a positive int.
      reset_after: ``False`` for the reset gate before the recurrent matmul (Cho et al.),
        ``True`` for the cuDNN/torch form.
      dtype: floating-point dtype of the parameters, which is also the compute dtype.
      kernel_init, recurrent_init, bias_init: initializers, see above.
      chrono: ``None``, or ``T_max``, an int ``>= 3`` (not a bool): the chrono initialisation of
        the update-gate bias, see above.

    Returns:
      A :class:`GRUParams` with ``w_x (I, 3H)``, ``w_h (H, 3H)``, ``b_x (3H,)``, ``b_h (3H,)``.

    Example:
      >>> import jax
      >>> from gru_jax import init_gru
      >>> p = init_gru(jax.random.key(0), 4, 8)
      >>> p.w_x.shape, p.w_h.shape, p.b_x.shape, p.reset_after
      ((4, 24), (8, 24), (24,), False)

      With ``chrono``, only the update-gate block of ``b_x`` changes:

      >>> q = init_gru(jax.random.key(0), 4, 8, chrono=1000)
      >>> bool((q.b_x[8:] == p.b_x[8:]).all()), bool((q.w_h == p.w_h).all())
      (True, True)
      >>> bool((q.b_x[:8] <= 0).all() and (q.b_x[:8] > -jax.numpy.log(999.0)).all())
      True
    """
    fn = "init_gru"
    input_size = checks.check_size(fn, "input_size", input_size)
    hidden_size = checks.check_size(fn, "hidden_size", hidden_size)
    dtype = checks.check_float_dtype(fn, "dtype", dtype)
    checks.check_flags(fn, reset_after=reset_after)
    chrono = checks.check_chrono(fn, chrono)
    kx, kh, kbx, kbh = jax.random.split(key, 4)
    return GRUParams(
        w_x=gate_blocks(kernel_init)(kx, (input_size, 3 * hidden_size), dtype),
        w_h=gate_blocks(recurrent_init)(kh, (hidden_size, 3 * hidden_size), dtype),
        b_x=chrono_bias_init(bias_init, hidden_size, chrono)(kbx, (3 * hidden_size,), dtype),
        b_h=at_least_float32(bias_init)(kbh, (3 * hidden_size,), dtype),
        reset_after=reset_after,
    )


def check_params(fn: str, params: GRUParams, name: str = "params") -> tuple[int, int]:
    """Check that ``params`` is a consistent :class:`GRUParams`; return ``(I, H)``."""
    if not isinstance(params, GRUParams):
        raise TypeError(f"{fn}: {name} must be a GRUParams; got {type(params).__name__}")
    checks.check_float_leaves(fn, name, params, ("w_x", "w_h", "b_x", "b_h"))
    if params.w_h.ndim != 2 or params.w_h.shape[1] != 3 * params.w_h.shape[0]:
        raise ValueError(f"{fn}: {name}.w_h must have shape (H, 3H); got {tuple(params.w_h.shape)}")
    hidden = params.w_h.shape[0]
    if params.w_x.ndim != 2 or params.w_x.shape[1] != 3 * hidden:
        raise ValueError(
            f"{fn}: {name}.w_x must have shape (I, 3H) = (I, {3 * hidden}); "
            f"got {tuple(params.w_x.shape)}"
        )
    for field in ("b_x", "b_h"):
        checks.check_shape(fn, f"{name}.{field}", getattr(params, field), (3 * hidden,), "(3H,)")
    return params.w_x.shape[0], hidden


def _matmul(a: Array, b: Array, acc: jnp.dtype) -> Array:
    return jnp.matmul(a, b, preferred_element_type=acc)


def _step(params: GRUParams, h: Array, x: Array) -> Array:
    """One GRU step without argument checks: ``h (*B, H)``, ``x (*B, I)`` -> ``(*B, H)``.

    Matmuls accumulate, and the gates are computed, in at least float32; the new state is cast
    back to ``h.dtype``. For float32 and float64 this changes nothing; for bfloat16 it keeps the
    gate arithmetic accurate while parameters, inputs and state stay bfloat16.
    """
    hidden = params.w_h.shape[0]
    acc = jnp.promote_types(h.dtype, jnp.float32)
    gx = _matmul(x, params.w_x, acc) + params.b_x.astype(acc)
    w_h, b_h = params.w_h, params.b_h.astype(acc)
    if params.reset_after:
        gh = _matmul(h, w_h, acc) + b_h
        zr = jax.nn.sigmoid(gx[..., : 2 * hidden] + gh[..., : 2 * hidden])
        z, r = zr[..., :hidden], zr[..., hidden:]
        n = jnp.tanh(gx[..., 2 * hidden :] + r * gh[..., 2 * hidden :])
    else:
        gh_zr = _matmul(h, w_h[:, : 2 * hidden], acc) + b_h[: 2 * hidden]
        zr = jax.nn.sigmoid(gx[..., : 2 * hidden] + gh_zr)
        z, r = zr[..., :hidden], zr[..., hidden:]
        rh = (r * h.astype(acc)).astype(h.dtype)
        n = jnp.tanh(
            gx[..., 2 * hidden :] + _matmul(rh, w_h[:, 2 * hidden :], acc) + b_h[2 * hidden :]
        )
    h_acc = h.astype(acc)
    return (h_acc + z * (n - h_acc)).astype(h.dtype)


def gru_cell(params: GRUParams, h: ArrayLike, x: ArrayLike) -> Array:
    """One GRU step: the new state from the state ``h`` and the input ``x``.

    Computes exactly (gate blocks (z, r, n) of the parameters)::

        z  = σ(x W_xz + b_xz + h W_hz + b_hz)                 update gate
        r  = σ(x W_xr + b_xr + h W_hr + b_hr)                 reset gate
        n  = tanh(x W_xn + b_xn + (r ⊙ h) W_hn + b_hn)        if not params.reset_after
        n  = tanh(x W_xn + b_xn + r ⊙ (h W_hn + b_hn))        if params.reset_after
        h' = (1 − z) ⊙ h + z ⊙ n

    Note that ``z`` weights the *candidate* ``n`` (as in Cho et al. and Haiku), the opposite of
    torch, Flax, Keras and Equinox, where ``z`` weights the old state.

    The computation runs in the promoted dtype of ``params``, ``h`` and ``x``; for bfloat16 the
    gate arithmetic is done in float32 and the result cast back.

    Args:
      params: a :class:`GRUParams`.
      h: ``(*B, H)`` state.
      x: ``(*B, I)`` input, with the same leading batch dims as ``h``.

    Returns:
      ``(*B, H)``, the new state.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_gru, gru_cell
      >>> p = init_gru(jax.random.key(0), 3, 5)
      >>> gru_cell(p, jnp.zeros((2, 5)), jnp.ones((2, 3))).shape
      (2, 5)
    """
    fn = "gru_cell"
    input_size, hidden = check_params(fn, params)
    h, x = checks.check_cell_inputs(fn, h, x, input_size, hidden)
    dtype = compute_dtype(h, x, *jax.tree.leaves(params))
    return _step(cast_params(params, dtype), h.astype(dtype), x.astype(dtype))
