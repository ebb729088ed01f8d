"""``equinox.nn.GRUCell`` modules: :func:`from_equinox`, :func:`to_equinox`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gru_jax._gru.cell import GRUParams
from gru_jax.interop._common import (
    as_array,
    check_cell,
    check_for_peer,
    check_kernels,
    check_shape,
    from_rzn,
    to_rzn,
    zero_biases,
)


def from_equinox(cell: Any) -> GRUParams:
    """Convert an ``equinox.nn.GRUCell`` to :class:`GRUParams` (``reset_after=True``).

    Equinox's cell has ``weight_ih (3H, I)``, ``weight_hh (3H, H)`` with row blocks
    ``[r | z | n]``, ``bias (3H,)`` added to the input projection and ``bias_n (H,)`` inside
    ``r ⊙ (h W_hn + b_hn)``; z weights the old state. The result has ``b_x`` from ``bias`` and
    ``b_h = [0 | 0 | bias_n]``.

    Args:
      cell: an ``equinox.nn.GRUCell`` (with ``use_bias=False`` the biases are zero).

    Returns:
      A :class:`GRUParams` with ``reset_after=True``.

    Example:
      >>> import jax, jax.numpy as jnp, equinox as eqx
      >>> from gru_jax import gru_cell
      >>> from gru_jax.interop import from_equinox
      >>> cell = eqx.nn.GRUCell(3, 4, key=jax.random.key(0))
      >>> p = from_equinox(cell)
      >>> h, x = jnp.ones(4), jnp.ones(3)
      >>> bool(jnp.allclose(gru_cell(p, h, x), cell(x, h), atol=1e-6))
      True
    """
    fn = "from_equinox"
    for attr in ("weight_ih", "weight_hh", "bias", "bias_n"):
        if not hasattr(cell, attr):
            raise TypeError(
                f"{fn}: cell must be an equinox.nn.GRUCell (with weight_ih, weight_hh, bias, "
                f"bias_n); got {type(cell).__name__} without {attr!r}"
            )
    w_ih = as_array(fn, "cell.weight_ih", cell.weight_ih)
    w_hh = as_array(fn, "cell.weight_hh", cell.weight_hh)
    _, hidden = check_kernels(fn, "cell.weight_ih", w_ih, "cell.weight_hh", w_hh, gates_first=True)
    zeros = jnp.zeros((3 * hidden,), w_ih.dtype)
    bias = zeros if cell.bias is None else as_array(fn, "cell.bias", cell.bias)
    check_shape(fn, "cell.bias", bias, (3 * hidden,), "(3H,)")
    bias_n = zeros[:hidden] if cell.bias_n is None else as_array(fn, "cell.bias_n", cell.bias_n)
    check_shape(fn, "cell.bias_n", bias_n, (hidden,), "(H,)")
    b_h = jnp.concatenate([jnp.zeros_like(bias_n, shape=(2 * hidden,)), bias_n])
    return from_rzn(w_ih.T, w_hh.T, bias, b_h)


def to_equinox(params: GRUParams, cell: Any | None = None) -> Any:
    """Convert reset-after :class:`GRUParams` to an ``equinox.nn.GRUCell``.

    ``b_hr`` and ``b_hz`` are summed into ``bias`` (exact); ``b_hn`` becomes ``bias_n``.

    Args:
      params: :class:`GRUParams` with ``reset_after=True`` (Equinox's cell is reset-after only;
        a reset-before model has no exact Equinox equivalent, ``ValueError``).
      cell: an ``equinox.nn.GRUCell(I, H)`` to take the structure from (it is not modified:
        Equinox modules are immutable, a new one is returned); ``None`` builds a new
        ``GRUCell(I, H, use_bias=True)``. A cell with ``use_bias=False`` only takes params whose
        biases are all zero.

    Returns:
      An ``equinox.nn.GRUCell`` holding the params (their dtype kept).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_gru, gru_cell
      >>> from gru_jax.interop import to_equinox
      >>> p = init_gru(jax.random.key(0), 3, 4, reset_after=True)
      >>> cell = to_equinox(p)
      >>> h, x = jnp.ones(4), jnp.ones(3)
      >>> bool(jnp.allclose(cell(x, h), gru_cell(p, h, x), atol=1e-6))
      True
    """
    fn = "to_equinox"
    input_size, hidden = check_for_peer(fn, params, "equinox.nn.GRUCell", True)
    import equinox as eqx

    if cell is None:
        cell = eqx.nn.GRUCell(input_size, hidden, dtype=params.w_x.dtype, key=jax.random.key(0))
    else:
        sizes = ("input_size", "hidden_size")
        check_cell(fn, cell, eqx.nn.GRUCell, "an equinox.nn.GRUCell", sizes, input_size, hidden)
    w_x, w_h, bias, b_hn = to_rzn(params)
    weights = (w_x.T, w_h.T)
    if cell.use_bias:
        return eqx.tree_at(
            lambda c: (c.weight_ih, c.weight_hh, c.bias, c.bias_n), cell, (*weights, bias, b_hn)
        )
    if not zero_biases(params):
        raise ValueError(
            f"{fn}: cell has use_bias=False, but params.b_x or params.b_h is non-zero; pass a "
            "cell with use_bias=True (or cell=None)"
        )
    return eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh), cell, weights)
