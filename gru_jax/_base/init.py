"""Initializers shared by every cell: the defaults, drawing per gate block in at least float32,
and the "chrono" update-gate bias (Tallec & Ollivier, 2018)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gru_jax._base.typing import Array, DTypeLike, Initializer, PRNGKey, Shape

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


def _per_block(init: Initializer, count: int, fn: str, layout: str) -> Initializer:
    """An initializer for a ``(rows, count·H)`` kernel that calls ``init`` once per block of
    shape ``(rows, H)``, in at least float32; ``fn`` and ``layout`` name it in errors."""
    init = at_least_float32(init)

    def init_fn(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        rows, cols = shape
        if cols % count:
            raise ValueError(f"{fn}: the last dim must be {layout}; got shape {tuple(shape)}")
        keys = jax.random.split(key, count)
        return jnp.concatenate([init(k, (rows, cols // count), dtype) for k in keys], axis=1)

    return init_fn


def gate_blocks(init: Initializer) -> Initializer:
    """An initializer for a GRU's ``(rows, 3H)`` kernel that calls ``init`` once per gate block.

    Each of the blocks ``[z | r | n]`` is drawn independently with shape ``(rows, H)`` (so a
    Glorot or orthogonal ``init`` is Glorot or orthogonal per gate), in at least float32.
    """
    return _per_block(init, 3, "gate_blocks", "3H")


def two_blocks(init: Initializer) -> Initializer:
    """An initializer for a minGRU's ``(rows, 2H)`` kernel that calls ``init`` once per block
    ``[z | h̃]``, with shape ``(rows, H)``, in at least float32 (like :func:`gate_blocks`)."""
    return _per_block(init, 2, "two_blocks", "2H")


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
    (``checks.check_chrono``). The z block is the first ``H`` entries in both
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
