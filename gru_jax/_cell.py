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

from gru_jax import _checks
from gru_jax._typing import Array, ArrayLike, DTypeLike, Initializer, PRNGKey, Shape

default_kernel_init: Initializer = jax.nn.initializers.glorot_uniform()
"""The input kernel's initializer: Glorot uniform, drawn per gate block of shape ``(I, H)``."""

default_recurrent_init: Initializer = jax.nn.initializers.orthogonal()
"""The recurrent kernel's initializer: orthogonal, drawn per gate block of shape ``(H, H)``."""

default_bias_init: Initializer = jax.nn.initializers.zeros
"""The biases' initializer: zeros, for ``b_x`` and ``b_h`` of shape ``(3H,)``."""


def at_least_float32(init: Initializer) -> Initializer:
    """Wrap ``init`` to draw in ``promote_types(dtype, float32)`` and cast the result to ``dtype``.

    Orthogonal initialisation needs a QR decomposition, which has no bfloat16 kernel; bfloat16
    parameters are then the rounded float32 draws.
    """

    def init_fn(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        return init(key, shape, jnp.promote_types(dtype, jnp.float32)).astype(dtype)

    return init_fn


def gate_blocks(init: Initializer) -> Initializer:
    """An initializer for a ``(rows, 3H)`` kernel that calls ``init`` once per gate block.

    Each of the blocks ``[z | r | n]`` is drawn independently with shape ``(rows, H)`` (so a
    Glorot or orthogonal ``init`` is Glorot or orthogonal per gate), in at least float32.
    """
    init = at_least_float32(init)

    def init_fn(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        rows, cols = shape
        if cols % 3:
            raise ValueError(f"gate_blocks: the last dim must be 3H; got shape {tuple(shape)}")
        keys = jax.random.split(key, 3)
        return jnp.concatenate([init(k, (rows, cols // 3), dtype) for k in keys], axis=1)

    return init_fn


CHRONO_SALT = 0x6368726F
"""Folded into a bias's key (``jax.random.fold_in``) to draw its chrono block, so that the rest
of the bias, drawn from the key itself, is the same with and without ``chrono``."""


def chrono_bias_init(bias_init: Initializer, hidden_size: int, chrono: int | None) -> Initializer:
    """The initializer of an input bias ``b_x`` whose first ``H`` entries are the update gate's.

    With ``chrono=None`` it is ``at_least_float32(bias_init)``. With ``chrono=T_max`` it draws
    the bias the same way, then replaces its update-gate block ``b_x[:H]`` by ``−log u``,
    ``u ~ U(1, T_max − 1)`` (in at least float32, cast to the bias's dtype), drawn with the key
    ``jax.random.fold_in(key, CHRONO_SALT)``: the other entries are bit-identical to the
    ``chrono=None`` draw with the same key. ``chrono`` must already be checked
    (``_checks.check_chrono``). The z block is the first ``H`` entries in both
    :class:`GRUParams` (``[z | r | n]``) and :class:`gru_jax.MinGRUParams` (``[z | h̃]``).
    """
    init = at_least_float32(bias_init)
    if chrono is None:
        return init
    t_max = chrono

    def init_fn(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        bias = init(key, shape, dtype)
        u = jax.random.uniform(
            jax.random.fold_in(key, CHRONO_SALT),
            (hidden_size,),
            jnp.promote_types(dtype, jnp.float32),
            minval=1.0,
            maxval=float(t_max - 1),
        )
        return bias.at[:hidden_size].set((-jnp.log(u)).astype(bias.dtype))

    return init_fn


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
    input_size = _checks.check_size(fn, "input_size", input_size)
    hidden_size = _checks.check_size(fn, "hidden_size", hidden_size)
    dtype = _checks.check_float_dtype(fn, "dtype", dtype)
    if not isinstance(reset_after, bool):
        raise TypeError(f"{fn}: reset_after must be a bool; got {type(reset_after).__name__}")
    chrono = _checks.check_chrono(fn, chrono)
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
    for field in ("w_x", "w_h", "b_x", "b_h"):
        leaf = getattr(params, field)
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise TypeError(f"{fn}: {name}.{field} must be an array; got {type(leaf).__name__}")
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"{fn}: {name}.{field} must have a floating-point dtype; got {leaf.dtype}"
            )
    if params.w_h.ndim != 2 or params.w_h.shape[1] != 3 * params.w_h.shape[0]:
        raise ValueError(f"{fn}: {name}.w_h must have shape (H, 3H); got {tuple(params.w_h.shape)}")
    hidden = params.w_h.shape[0]
    if params.w_x.ndim != 2 or params.w_x.shape[1] != 3 * hidden:
        raise ValueError(
            f"{fn}: {name}.w_x must have shape (I, 3H) = (I, {3 * hidden}); "
            f"got {tuple(params.w_x.shape)}"
        )
    for field in ("b_x", "b_h"):
        _checks.check_shape(fn, f"{name}.{field}", getattr(params, field), (3 * hidden,), "(3H,)")
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


def compute_dtype(*dtypes: DTypeLike) -> jnp.dtype:
    """The dtype the GRU computes in: JAX's type promotion of its inputs' dtypes."""
    return jnp.result_type(*dtypes)


def cast_params(params: GRUParams, dtype: jnp.dtype) -> GRUParams:
    """``params`` with every array cast to ``dtype`` (a no-op where it already is)."""
    out: GRUParams = jax.tree.map(lambda a: a.astype(dtype), params)
    return out


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
    h, x = _checks.check_cell_inputs(fn, h, x, input_size, hidden)
    dtype = compute_dtype(h, x, *jax.tree.leaves(params))
    return _step(cast_params(params, dtype), h.astype(dtype), x.astype(dtype))
