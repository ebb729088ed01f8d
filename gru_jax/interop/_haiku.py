"""``hk.GRU`` param dicts: :func:`from_haiku`, :func:`to_haiku`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from gru_jax._base.typing import Array
from gru_jax._gru.cell import GRUParams
from gru_jax.interop._common import (
    as_array,
    check_for_peer,
    check_kernels,
    check_keys,
    check_shape,
)


def from_haiku(params: Mapping[str, Any]) -> GRUParams:
    """Convert ``hk.GRU``'s params to :class:`GRUParams` (``reset_after=False``).

    ``hk.GRU`` is gru_jax's reset-before form exactly: ``w_i (I, 3H)``, ``w_h (H, 3H)``, columns
    ``[z | r | a]``, reset applied before the recurrent matmul, z weighting the candidate, one
    bias ``b (3H,)``. The arrays are taken as they are: ``b`` becomes ``b_x`` and ``b_h`` is zero.

    Args:
      params: the module's dict ``{"w_i", "w_h", "b"}``, e.g. ``params["gru"]`` of an
        ``hk.transform``-ed function; a whole params dict holding exactly one such module is
        unwrapped.

    Returns:
      A :class:`GRUParams` with ``reset_after=False``.

    Example:
      >>> import numpy as np
      >>> from gru_jax.interop import from_haiku, to_haiku
      >>> rng = np.random.default_rng(0)
      >>> shapes = {"w_i": (3, 12), "w_h": (4, 12), "b": (12,)}
      >>> hk_params = {k: rng.standard_normal(s, dtype=np.float32) for k, s in shapes.items()}
      >>> p = from_haiku({"gru": hk_params})
      >>> p.hidden_size, p.reset_after
      (4, False)
      >>> all(np.array_equal(to_haiku(p)[k], hk_params[k]) for k in hk_params)
      True
    """
    fn = "from_haiku"
    expected = {"w_i", "w_h", "b"}
    if (
        isinstance(params, Mapping)
        and len(params) == 1
        and isinstance(inner := next(iter(params.values())), Mapping)
        and set(inner.keys()) == expected
    ):
        params = inner
    check_keys(fn, "params", params, expected)
    w_i = as_array(fn, "params['w_i']", params["w_i"])
    w_h = as_array(fn, "params['w_h']", params["w_h"])
    b = as_array(fn, "params['b']", params["b"])
    _, hidden = check_kernels(fn, "params['w_i']", w_i, "params['w_h']", w_h, gates_first=False)
    check_shape(fn, "params['b']", b, (3 * hidden,), "(3H,)")
    return GRUParams(w_x=w_i, w_h=w_h, b_x=b, b_h=jnp.zeros_like(b), reset_after=False)


def to_haiku(params: GRUParams) -> dict[str, Array]:
    """Convert reset-before :class:`GRUParams` to ``hk.GRU``'s param dict.

    The arrays are passed through; ``b = b_x + b_h`` (exact for the reset-before form, where
    both are added outside ``r ⊙ ·``). Use it as ``{"gru": to_haiku(params)}`` (the module's
    name) in the params of an ``hk.transform``-ed function built with ``hk.GRU(H)``.

    Args:
      params: :class:`GRUParams` with ``reset_after=False`` (``hk.GRU`` is reset-before only;
        a reset-after model has no exact Haiku equivalent, ``ValueError``).

    Returns:
      ``{"w_i": (I, 3H), "w_h": (H, 3H), "b": (3H,)}`` of JAX arrays.

    Example:
      >>> import jax
      >>> from gru_jax import init_gru
      >>> from gru_jax.interop import to_haiku
      >>> {k: v.shape for k, v in to_haiku(init_gru(jax.random.key(0), 3, 4)).items()}
      {'w_i': (3, 12), 'w_h': (4, 12), 'b': (12,)}
    """
    fn = "to_haiku"
    check_for_peer(fn, params, "haiku hk.GRU", False)
    return {"w_i": params.w_x, "w_h": params.w_h, "b": params.b_x + params.b_h}
