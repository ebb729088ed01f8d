"""``flax.linen.GRUCell`` param dicts: :func:`from_flax_linen`, :func:`to_flax_linen`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from gru_jax._base.typing import Array
from gru_jax._gru.cell import GRUParams
from gru_jax.interop._common import (
    as_array,
    check_for_peer,
    check_keys,
    check_shape,
    folded_biases,
    hidden_from_square,
)

_LINEN_KEYS = {
    "ir": {"kernel", "bias"},
    "iz": {"kernel", "bias"},
    "in": {"kernel", "bias"},
    "hr": {"kernel"},
    "hz": {"kernel"},
    "hn": {"kernel", "bias"},
}


def from_flax_linen(cell_params: Mapping[str, Any]) -> GRUParams:
    """Convert a ``flax.linen.GRUCell``'s params to :class:`GRUParams` (``reset_after=True``).

    linen's cell computes ``r = σ(x W_ir + b_ir + h W_hr)``, ``z = σ(x W_iz + b_iz + h W_hz)``,
    ``n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn))``, ``h' = (1 − z) ⊙ n + z ⊙ h``. The result
    stacks the kernels into ``[z | r | n]`` columns, negates the z gate, puts ``b_ir, b_iz,
    b_in`` in ``b_x`` and ``b_hn`` in ``b_h`` (whose z and r blocks are zero).

    Args:
      cell_params: the cell's own param dict, ``{"ir": {"kernel": (I, H), "bias": (H,)}, "iz":
        ..., "in": ..., "hr": {"kernel": (H, H)}, "hz": ..., "hn": {"kernel": (H, H), "bias":
        (H,)}}``, e.g. ``variables["params"]`` of ``GRUCell.init``, or
        ``variables["params"]["RNN_0"]["cell"]`` inside ``nn.RNN``. A ``{"params": ...}``
        wrapper is unwrapped.

    Returns:
      A :class:`GRUParams` with ``reset_after=True``, ``w_x (I, 3H)``, ``w_h (H, 3H)``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from gru_jax import gru_cell
      >>> from gru_jax.interop import from_flax_linen
      >>> cell = nn.GRUCell(features=4)
      >>> h, x = jnp.ones((2, 4)), jnp.ones((2, 3))
      >>> variables = cell.init(jax.random.key(0), h, x)
      >>> p = from_flax_linen(variables["params"])
      >>> new_h, _ = cell.apply(variables, h, x)
      >>> bool(jnp.allclose(gru_cell(p, h, x), new_h, atol=1e-6)), p.reset_after
      (True, True)
    """
    fn = "from_flax_linen"
    if isinstance(cell_params, Mapping) and set(cell_params.keys()) == {"params"}:
        cell_params = cell_params["params"]
    check_keys(fn, "cell_params", cell_params, set(_LINEN_KEYS))
    arrays = {}
    for gate, leaves in _LINEN_KEYS.items():
        sub = check_keys(fn, f"cell_params[{gate!r}]", cell_params[gate], leaves)
        for leaf in leaves:
            arrays[gate, leaf] = as_array(fn, f"cell_params[{gate!r}][{leaf!r}]", sub[leaf])
    hidden = hidden_from_square(fn, "cell_params['hr']['kernel']", arrays["hr", "kernel"], "(H, H)")
    w_ir = arrays["ir", "kernel"]
    if w_ir.ndim != 2 or w_ir.shape[1] != hidden:
        raise ValueError(
            f"{fn}: cell_params['ir']['kernel'] must have shape (I, H) = (I, {hidden}); "
            f"got {tuple(w_ir.shape)}"
        )
    input_size = w_ir.shape[0]
    for gate, shape, layout in [
        ("iz", (input_size, hidden), "(I, H)"),
        ("in", (input_size, hidden), "(I, H)"),
        ("hz", (hidden, hidden), "(H, H)"),
        ("hn", (hidden, hidden), "(H, H)"),
    ]:
        check_shape(fn, f"cell_params[{gate!r}]['kernel']", arrays[gate, "kernel"], shape, layout)
    for gate in ("ir", "iz", "in", "hn"):
        check_shape(fn, f"cell_params[{gate!r}]['bias']", arrays[gate, "bias"], (hidden,), "(H,)")
    a = arrays
    return GRUParams(
        w_x=jnp.concatenate([-a["iz", "kernel"], a["ir", "kernel"], a["in", "kernel"]], axis=1),
        w_h=jnp.concatenate([-a["hz", "kernel"], a["hr", "kernel"], a["hn", "kernel"]], axis=1),
        b_x=jnp.concatenate([-a["iz", "bias"], a["ir", "bias"], a["in", "bias"]]),
        b_h=jnp.concatenate(
            [jnp.zeros_like(a["hn", "bias"], shape=(2 * hidden,)), a["hn", "bias"]]
        ),
        reset_after=True,
    )


def to_flax_linen(params: GRUParams) -> dict[str, dict[str, Array]]:
    """Convert reset-after :class:`GRUParams` to a ``flax.linen.GRUCell`` param dict.

    linen has no recurrent biases for r and z: ``b_hr`` and ``b_hz`` are summed into the ``ir``
    and ``iz`` biases (exact: they are added to the same pre-activation). ``b_xn`` becomes
    ``in``'s bias and ``b_hn`` ``hn``'s. Use the result as
    ``cell.apply({"params": to_flax_linen(params)}, h, x)`` with ``nn.GRUCell(features=H)``.

    Args:
      params: :class:`GRUParams` with ``reset_after=True`` (linen's GRU is reset-after only; a
        reset-before model has no exact linen equivalent, ``ValueError``).

    Returns:
      ``{"ir"|"iz"|"in": {"kernel": (I, H), "bias": (H,)}, "hr"|"hz": {"kernel": (H, H)},
      "hn": {"kernel": (H, H), "bias": (H,)}}`` of JAX arrays.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from gru_jax import init_gru, gru_cell
      >>> from gru_jax.interop import to_flax_linen
      >>> p = init_gru(jax.random.key(0), 3, 4, reset_after=True,
      ...              bias_init=jax.nn.initializers.normal(1.0))
      >>> h, x = jnp.ones((2, 4)), jnp.ones((2, 3))
      >>> new_h, _ = nn.GRUCell(features=4).apply({"params": to_flax_linen(p)}, h, x)
      >>> bool(jnp.allclose(new_h, gru_cell(p, h, x), atol=1e-6))
      True
    """
    fn = "to_flax_linen"
    _, hidden = check_for_peer(fn, params, "flax.linen.GRUCell", True)
    H = hidden
    w_x, w_h = params.w_x, params.w_h
    b_zr, b_hn = folded_biases(params)
    return {
        "ir": {"kernel": w_x[:, H : 2 * H], "bias": b_zr[H:]},
        "iz": {"kernel": -w_x[:, :H], "bias": -b_zr[:H]},
        "in": {"kernel": w_x[:, 2 * H :], "bias": params.b_x[2 * H :]},
        "hr": {"kernel": w_h[:, H : 2 * H]},
        "hz": {"kernel": -w_h[:, :H]},
        "hn": {"kernel": w_h[:, 2 * H :], "bias": b_hn},
    }
