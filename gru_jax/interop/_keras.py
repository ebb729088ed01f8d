"""``keras.layers.GRU`` weight lists: :func:`from_keras`, :func:`to_keras`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from gru_jax._gru.cell import GRUParams, check_params
from gru_jax.interop._common import (
    as_array,
    check_kernels,
    check_type,
    host,
    negate_z,
    zero_biases,
)


def from_keras(weights: Sequence[Any], *, reset_after: bool) -> GRUParams:
    """Convert ``keras.layers.GRU(...).get_weights()`` to :class:`GRUParams`.

    Keras's columns are ``[z | r | h]``, gru_jax's order, but its z weights the old state: the
    z blocks are negated. ``reset_after`` must say which Keras variant the layer is
    (``layer.reset_after``; ``True`` by default in Keras), and the result has the same one.

    Args:
      weights: ``[kernel (I, 3U), recurrent_kernel (U, 3U), bias]`` with ``bias (2, 3U)`` =
        ``[input bias; recurrent bias]`` when ``reset_after`` else ``(3U,)``; or just the two
        kernels for a layer with ``use_bias=False`` (zero biases). NumPy or JAX arrays, or Keras
        variables. (``keras.layers.GRUCell`` has the same weights.)
      reset_after: the Keras layer's ``reset_after``.

    Returns:
      A :class:`GRUParams` with the given ``reset_after``; for ``reset_after=False`` the bias
      goes to ``b_x`` and ``b_h`` is zero.

    Example:
      >>> import numpy as np
      >>> from gru_jax.interop import from_keras, to_keras
      >>> rng = np.random.default_rng(0)
      >>> shapes = [(3, 12), (4, 12), (2, 12)]    # kernel, recurrent_kernel, bias: I=3, U=4
      >>> weights = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
      >>> p = from_keras(weights, reset_after=True)
      >>> p.w_x.shape, p.reset_after
      ((3, 12), True)
      >>> all(np.array_equal(a, b) for a, b in zip(to_keras(p), weights))
      True
    """
    fn = "from_keras"
    check_type(fn, "reset_after", reset_after, bool, "a bool")
    if isinstance(weights, Mapping) or not isinstance(weights, Sequence):
        raise TypeError(
            f"{fn}: weights must be the list that keras.layers.GRU.get_weights() returns; "
            f"got {type(weights).__name__}"
        )
    if len(weights) not in (2, 3):
        raise ValueError(
            f"{fn}: weights must hold 3 arrays [kernel, recurrent_kernel, bias] (or 2 for "
            f"use_bias=False), as keras.layers.GRU.get_weights() returns; got {len(weights)}"
        )
    kernel = as_array(fn, "weights[0] (kernel)", weights[0])
    recurrent = as_array(fn, "weights[1] (recurrent_kernel)", weights[1])
    _, units = check_kernels(
        fn,
        "weights[0] (kernel)",
        kernel,
        "weights[1] (recurrent_kernel)",
        recurrent,
        gates_first=False,
        unit="U",
    )
    if len(weights) == 3:
        bias = as_array(fn, "weights[2] (bias)", weights[2])
        expected, layout = ((2, 3 * units), "(2, 3U)") if reset_after else ((3 * units,), "(3U,)")
        if tuple(bias.shape) != expected:
            other = (3 * units,) if reset_after else (2, 3 * units)
            hint = (
                f", the layout of reset_after={not reset_after}: pass the reset_after the Keras "
                "layer was built with"
                if tuple(bias.shape) == other
                else ""
            )
            raise ValueError(
                f"{fn}: weights[2] (bias) must have shape {layout} = {expected} for "
                f"reset_after={reset_after}; got {tuple(bias.shape)}{hint}"
            )
        b_x, b_h = (bias[0], bias[1]) if reset_after else (bias, jnp.zeros_like(bias))
    else:
        b_x = b_h = jnp.zeros((3 * units,), kernel.dtype)
    return GRUParams(
        w_x=negate_z(kernel, units),
        w_h=negate_z(recurrent, units),
        b_x=negate_z(b_x, units),
        b_h=negate_z(b_h, units),
        reset_after=reset_after,
    )


def to_keras(params: GRUParams, *, use_bias: bool = True) -> list[np.ndarray]:
    """Convert :class:`GRUParams` to the list ``keras.layers.GRU.set_weights`` takes.

    Both Keras variants exist, so both of gru_jax's convert: build the layer as
    ``keras.layers.GRU(H, reset_after=params.reset_after)`` (Keras's default activations) and
    call ``layer.set_weights(to_keras(params))``. For ``reset_after=False`` Keras has one bias,
    and ``b_x + b_h`` goes into it (exact: both are added outside ``r ⊙ ·``).

    Args:
      params: :class:`GRUParams`, either variant.
      use_bias: ``False`` for a layer built with ``use_bias=False``: only the two kernels are
        returned, and the biases must all be zero (``ValueError`` otherwise).

    Returns:
      ``[kernel (I, 3U), recurrent_kernel (U, 3U), bias]`` as writable NumPy arrays, with
      ``bias (2, 3U)`` if ``params.reset_after`` else ``(3U,)``; the bias is left out when
      ``use_bias`` is false.

    Example:
      >>> import jax
      >>> from gru_jax import init_gru
      >>> from gru_jax.interop import to_keras
      >>> [w.shape for w in to_keras(init_gru(jax.random.key(0), 3, 4, reset_after=True))]
      [(3, 12), (4, 12), (2, 12)]
      >>> [w.shape for w in to_keras(init_gru(jax.random.key(0), 3, 4))]
      [(3, 12), (4, 12), (12,)]
    """
    fn = "to_keras"
    _, hidden = check_params(fn, params)
    check_type(fn, "use_bias", use_bias, bool, "a bool")
    kernel = host(negate_z(params.w_x, hidden))
    recurrent = host(negate_z(params.w_h, hidden))
    if not use_bias:
        if not zero_biases(params):
            raise ValueError(
                f"{fn}: use_bias=False, but params.b_x or params.b_h is non-zero; a Keras GRU "
                "without biases cannot hold them: use use_bias=True"
            )
        return [kernel, recurrent]
    if params.reset_after:
        bias = jnp.stack([negate_z(params.b_x, hidden), negate_z(params.b_h, hidden)])
    else:
        bias = negate_z(params.b_x + params.b_h, hidden)
    return [kernel, recurrent, host(bias)]
