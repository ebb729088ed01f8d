"""``flax.nnx.GRUCell`` modules: :func:`from_flax_nnx`, :func:`to_flax_nnx`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax.numpy as jnp
import numpy as np

from gru_jax._gru.cell import GRUParams
from gru_jax.interop._common import (
    all_zero,
    as_array,
    check_cell,
    check_for_peer,
    check_kernels,
    check_shape,
    from_rzn,
    to_rzn,
)

if TYPE_CHECKING:  # flax is imported when a converter needs it
    from flax import nnx


def _nnx_value(fn: str, name: str, module: object, attr: str) -> Any:
    """``module.attr``, with an NNX ``Variable`` unwrapped to its value."""
    if not hasattr(module, attr):
        raise TypeError(f"{fn}: {name} has no attribute {attr!r}; expected a flax.nnx.GRUCell")
    from flax import nnx

    value = getattr(module, attr)
    return value.get_value() if isinstance(value, nnx.Variable) else value


def from_flax_nnx(cell: nnx.GRUCell) -> GRUParams:
    """Convert a ``flax.nnx.GRUCell`` to :class:`GRUParams` (``reset_after=True``).

    NNX's cell has ``dense_i`` (kernel ``(I, 3H)``, bias ``(3H,)``) and ``dense_h`` (kernel
    ``(H, 3H)``, no bias), both with column blocks ``[r | z | n]``, and z weighting the old state.
    The result reorders the blocks to ``[z | r | n]``, negates z, and has ``b_h = 0``.

    Args:
      cell: a ``flax.nnx.GRUCell`` (read only; not modified).

    Returns:
      A :class:`GRUParams` with ``reset_after=True`` and ``b_h`` all zeros.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from gru_jax import gru_cell
      >>> from gru_jax.interop import from_flax_nnx
      >>> cell = nnx.GRUCell(3, 4, rngs=nnx.Rngs(0))
      >>> p = from_flax_nnx(cell)
      >>> h, x = jnp.ones((2, 4)), jnp.ones((2, 3))
      >>> bool(jnp.allclose(gru_cell(p, h, x), cell(h, x)[0], atol=1e-6))
      True
    """
    fn = "from_flax_nnx"
    dense_i = _nnx_value(fn, "cell", cell, "dense_i")
    dense_h = _nnx_value(fn, "cell", cell, "dense_h")
    if dense_i is None or dense_h is None:
        raise TypeError(f"{fn}: cell must be a flax.nnx.GRUCell; got {type(cell).__name__}")
    w_i = as_array(fn, "cell.dense_i.kernel", _nnx_value(fn, "cell.dense_i", dense_i, "kernel"))
    w_h = as_array(fn, "cell.dense_h.kernel", _nnx_value(fn, "cell.dense_h", dense_h, "kernel"))
    b_i = _nnx_value(fn, "cell.dense_i", dense_i, "bias")
    if getattr(dense_h, "bias", None) is not None:
        raise ValueError(
            f"{fn}: cell.dense_h has a bias; flax.nnx.GRUCell's dense_h has none, so this is "
            "not a flax.nnx.GRUCell this converter knows"
        )
    _, hidden = check_kernels(
        fn, "cell.dense_i.kernel", w_i, "cell.dense_h.kernel", w_h, gates_first=False
    )
    if b_i is None:
        b_i = jnp.zeros((3 * hidden,), w_i.dtype)
    b_i = as_array(fn, "cell.dense_i.bias", b_i)
    check_shape(fn, "cell.dense_i.bias", b_i, (3 * hidden,), "(3H,)")
    return from_rzn(w_i, w_h, b_i, jnp.zeros((3 * hidden,), b_i.dtype))


def to_flax_nnx(params: GRUParams, cell: nnx.GRUCell | None = None) -> nnx.GRUCell:
    """Convert reset-after :class:`GRUParams` to a ``flax.nnx.GRUCell``.

    NNX's cell has no recurrent bias. ``b_hr`` and ``b_hz`` fold into ``dense_i``'s bias
    exactly, but the candidate's ``b_hn`` sits inside ``r ⊙ (h W_hn + b_hn)`` and cannot be
    moved anywhere: params with a non-zero ``b_hn`` are refused with ``ValueError`` (export them
    with :func:`to_flax_linen`, whose ``hn`` has a bias, instead).

    Args:
      params: :class:`GRUParams` with ``reset_after=True`` and ``b_h[2H:] == 0``.
      cell: an existing ``flax.nnx.GRUCell(I, H)`` to write the weights into, *in place* (NNX
        modules are mutable; useful for a cell inside a larger model), or ``None`` for a new
        cell with ``param_dtype`` the params' dtype. Activations must be the defaults
        (``sigmoid``, ``tanh``).

    Returns:
      The ``flax.nnx.GRUCell``: ``dense_i`` kernel ``(I, 3H)`` and bias ``(3H,)``, ``dense_h``
      kernel ``(H, 3H)``, blocks ``[r | z | n]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_gru, gru_cell
      >>> from gru_jax.interop import to_flax_nnx
      >>> p = init_gru(jax.random.key(0), 3, 4, reset_after=True)
      >>> cell = to_flax_nnx(p)
      >>> h, x = jnp.ones((2, 4)), jnp.ones((2, 3))
      >>> bool(jnp.allclose(cell(h, x)[0], gru_cell(p, h, x), atol=1e-6))
      True
      >>> to_flax_nnx(p.replace(b_h=jnp.ones(12)))  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: to_flax_nnx: flax.nnx.GRUCell has no recurrent bias, ...
    """
    fn = "to_flax_nnx"
    input_size, hidden = check_for_peer(fn, params, "flax.nnx.GRUCell", True)
    w_x, w_h, b_x, b_hn = to_rzn(params)
    if not all_zero(b_hn):
        raise ValueError(
            f"{fn}: flax.nnx.GRUCell has no recurrent bias, and params.b_h[2H:] (b_hn, the "
            f"candidate's recurrent bias) is non-zero (max |b_hn| = "
            f"{float(np.max(np.abs(np.asarray(b_hn, np.float64)))):.3g}). It sits inside "
            "r ⊙ (h W_hn + b_hn) and cannot be folded into another bias exactly; export with "
            "to_flax_linen (whose hn has a bias) instead"
        )
    from flax import nnx

    dtype = params.w_x.dtype
    if cell is None:
        cell = nnx.GRUCell(input_size, hidden, rngs=nnx.Rngs(0), param_dtype=dtype)
    else:
        sizes = ("in_features", "hidden_features")
        check_cell(fn, cell, nnx.GRUCell, "a flax.nnx.GRUCell", sizes, input_size, hidden)
    cell.dense_i.kernel.set_value(w_x)
    assert cell.dense_i.bias is not None  # an nnx.GRUCell's dense_i always has a bias
    cell.dense_i.bias.set_value(b_x)
    cell.dense_h.kernel.set_value(w_h)
    return cell
