"""Type aliases and the shape notation used across ``gru_jax``.

Shape notation in docstrings and comments:

====  ==========================================================
 B    batch dimensions: any number of leading axes, possibly none
 T    time (sequence length)
 I    input features
 H    hidden features (state size)
 L    number of layers in a stack
 D    number of directions: 1, or 2 when bidirectional
====  ==========================================================

Gate blocks are laid out on the last axis in the order (z, r, n) = (update, reset, candidate),
so a ``(I, 3H)`` kernel is ``[W_z | W_r | W_n]``.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
DTypeLike = jax.typing.DTypeLike
PRNGKey = jax.Array
Shape = Sequence[int]
Initializer = Callable[[PRNGKey, Shape, Any], Array]
"""``init(key, shape, dtype) -> array``, the signature of ``jax.nn.initializers``."""
