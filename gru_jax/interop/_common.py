"""The helpers every peer's converter shares: argument checks, gate-block order, host copies."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import UnionType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax._base.typing import Array
from gru_jax._gru.cell import GRUParams, check_params


def _variant_error(fn: str, peer: str, peer_reset_after: bool, name: str = "params") -> ValueError:
    have = "reset_after=True (r ⊙ (h W_hn + b_hn))"
    want = "reset_after=False ((r ⊙ h) W_hn + b_hn)"
    if not peer_reset_after:
        have, want = want, have
    return ValueError(
        f"{fn}: {peer} is a {have.split(' ')[0]} GRU only, and {name} has {want}. The two "
        "variants differ in where the reset gate r is applied, before or after the recurrent "
        "candidate matmul; they are different functions and no exact conversion between them "
        "exists, so none is attempted. Train or initialise the model with "
        f"{have.split(' ')[0]} to export it to {peer}."
    )


def require_variant(fn: str, params: GRUParams, peer: str, reset_after: bool, name: str) -> None:
    if params.reset_after != reset_after:
        raise _variant_error(fn, peer, reset_after, name)


def check_for_peer(fn: str, params: GRUParams, peer: str, reset_after: bool) -> tuple[int, int]:
    """Check ``params`` and that ``peer`` has its variant; return ``(input_size, hidden_size)``."""
    sizes = check_params(fn, params)
    require_variant(fn, params, peer, reset_after, "params")
    return sizes


def check_type(
    fn: str, name: str, value: object, types: type[Any] | UnionType, expected: str
) -> None:
    """Raise TypeError unless ``value`` is an instance of ``types`` (``expected``: "a bool")."""
    if not isinstance(value, types):
        raise TypeError(f"{fn}: {name} must be {expected}; got {type(value).__name__}")


def check_cell(
    fn: str,
    cell: object,
    cls: type[Any],
    expected: str,
    size_attrs: tuple[str, str],
    input_size: int,
    hidden: int,
) -> None:
    """Check a peer's cell that params are written into: a ``cls`` of the params' sizes.

    ``expected`` names the class in the message ("a flax.nnx.GRUCell"); ``size_attrs`` are the
    cell's attributes holding its input and hidden sizes.
    """
    if not isinstance(cell, cls):
        raise TypeError(f"{fn}: cell must be {expected} or None; got {type(cell).__name__}")
    cell_input, cell_hidden = (getattr(cell, attr) for attr in size_attrs)
    if (cell_input, cell_hidden) != (input_size, hidden):
        raise ValueError(
            f"{fn}: cell maps {cell_input} inputs to {cell_hidden} hidden features; "
            f"params map {input_size} to {hidden}"
        )


def _is_torch_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")  # a torch tensor can only exist if torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def _torch_to_numpy(value: Any) -> np.ndarray:
    import torch  # already imported: value is a tensor

    t: torch.Tensor = value.detach().cpu()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16 of its own; reinterpret the bits
        return t.view(torch.int16).numpy().view(jnp.bfloat16)
    return t.numpy()


def as_array(fn: str, name: str, value: object, *, strict: bool = False) -> Array:
    """``value`` as a floating-point JAX array (a tracer stays a tracer).

    Accepts NumPy arrays, JAX arrays and torch tensors; unless ``strict``, also anything with
    ``__array__`` (e.g. Keras variables). Raises TypeError naming ``name`` otherwise.
    """
    if _is_torch_tensor(value):
        value = _torch_to_numpy(value)
    elif not isinstance(value, np.ndarray | jax.Array):
        if strict or not hasattr(value, "__array__") or isinstance(value, np.generic):
            kinds = "a torch tensor or a NumPy/JAX array" if strict else "an array"
            raise TypeError(f"{fn}: {name} must be {kinds}; got {type(value).__name__}")
        value = np.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"{fn}: {name} must have a floating-point dtype; got {value.dtype}")
    return jnp.asarray(value)


def check_shape(fn: str, name: str, a: Array, expected: tuple[int, ...], layout: str) -> None:
    if tuple(a.shape) != tuple(expected):
        raise ValueError(
            f"{fn}: {name} must have shape {layout} = {tuple(expected)}; got {tuple(a.shape)}"
        )


def check_kernels(
    fn: str,
    in_name: str,
    w_in: Array,
    rec_name: str,
    w_rec: Array,
    *,
    gates_first: bool,
    unit: str = "H",
) -> tuple[int, int]:
    """Check a peer's input and recurrent kernels of three gate blocks; return ``(I, H)``.

    ``gates_first``: the torch/Equinox layout, ``w_rec (3H, H)`` and ``w_in (3H, I)``; else
    ``w_rec (H, 3H)`` and ``w_in (I, 3H)``. ``unit`` is the hidden size's letter in messages.
    """
    g = 0 if gates_first else 1  # the axis of the gate blocks
    rec_layout = f"(3{unit}, {unit})" if gates_first else f"({unit}, 3{unit})"
    if w_rec.ndim != 2 or w_rec.shape[g] != 3 * w_rec.shape[1 - g]:
        raise ValueError(f"{fn}: {rec_name} must have shape {rec_layout}; got {tuple(w_rec.shape)}")
    hidden = w_rec.shape[1 - g]
    if w_in.ndim != 2 or w_in.shape[g] != 3 * hidden:
        layout = (
            f"(3{unit}, I) = ({3 * hidden}, I)"
            if gates_first
            else f"(I, 3{unit}) = (I, {3 * hidden})"
        )
        raise ValueError(f"{fn}: {in_name} must have shape {layout}; got {tuple(w_in.shape)}")
    return w_in.shape[1 - g], hidden


def check_keys(fn: str, name: str, mapping: object, expected: set[str]) -> Mapping[str, Any]:
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"{fn}: {name} must be a dict with keys {sorted(expected)}; "
            f"got {type(mapping).__name__}"
        )
    keys = set(mapping.keys())
    missing, extra = sorted(expected - keys), sorted(keys - expected, key=str)
    if missing or extra:
        parts = [f"missing {missing}"] if missing else []
        parts += [f"unexpected {extra}"] if extra else []
        raise ValueError(
            f"{fn}: {name} must have exactly the keys {sorted(expected)}; {', '.join(parts)}"
        )
    return mapping


def hidden_from_square(fn: str, name: str, a: Array, layout: str) -> int:
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{fn}: {name} must have shape {layout}; got {tuple(a.shape)}")
    return a.shape[0]


def rzn_to_zrn(a: Array, hidden: int) -> Array:
    """Blocks ``[r|z|n]`` on the last axis, z weighting the old state -> gru_jax's ``[z|r|n]``."""
    r, z, n = a[..., :hidden], a[..., hidden : 2 * hidden], a[..., 2 * hidden :]
    return jnp.concatenate([-z, r, n], axis=-1)


def from_rzn(w_x: Array, w_h: Array, b_x: Array, b_h: Array) -> GRUParams:
    """Reset-after :class:`GRUParams` from kernels ``w_x (I, 3H)``, ``w_h (H, 3H)`` and the input
    bias ``b_x (3H,)`` in the peers' layout (blocks ``[r|z|n]``, z weighting the old state), and
    ``b_h (3H,)`` already in gru_jax's."""
    hidden = w_h.shape[0]
    return GRUParams(
        w_x=rzn_to_zrn(w_x, hidden),
        w_h=rzn_to_zrn(w_h, hidden),
        b_x=rzn_to_zrn(b_x, hidden),
        b_h=b_h,
        reset_after=True,
    )


def zrn_to_rzn(a: Array, hidden: int) -> Array:
    """gru_jax's ``[z|r|n]`` -> ``[r|z|n]`` with z weighting the old state (inverse of above)."""
    z, r, n = a[..., :hidden], a[..., hidden : 2 * hidden], a[..., 2 * hidden :]
    return jnp.concatenate([r, -z, n], axis=-1)


def negate_z(a: Array, hidden: int) -> Array:
    """Flip the z convention of a ``[z|r|n]`` array (its own inverse)."""
    return jnp.concatenate([-a[..., :hidden], a[..., hidden:]], axis=-1)


def folded_biases(params: GRUParams) -> tuple[Array, Array]:
    """``(b_zr, b_hn)``: the z and r biases summed (``(2H,)``) and the candidate's ``b_hn``.

    For a reset-after GRU, ``b_x + b_h`` on the z and r blocks is all that matters; ``b_xn`` and
    ``b_hn`` stay apart.
    """
    hidden = params.hidden_size
    return params.b_x[: 2 * hidden] + params.b_h[: 2 * hidden], params.b_h[2 * hidden :]


def folded_input_bias(params: GRUParams) -> Array:
    """The one input bias ``(3H,)`` of a peer without ``b_hr``, ``b_hz``, blocks ``[r|z|n]``.

    The z and r biases are folded (:func:`folded_biases`), ``b_xn`` is kept; ``b_hn`` is the
    caller's to place.
    """
    hidden = params.hidden_size
    b_zr, _ = folded_biases(params)
    return zrn_to_rzn(jnp.concatenate([b_zr, params.b_x[2 * hidden :]]), hidden)


def to_rzn(params: GRUParams) -> tuple[Array, Array, Array, Array]:
    """What a peer with one input bias and a separate ``b_hn`` holds (Equinox, Flax NNX):
    ``(w_x (I, 3H), w_h (H, 3H), b_x (3H,), b_hn (H,))`` with blocks ``[r|z|n]``, z weighting
    the old state, ``b_x`` the :func:`folded_input_bias`; the inverse of :func:`from_rzn`."""
    hidden = params.hidden_size
    _, b_hn = folded_biases(params)
    w_x, w_h = zrn_to_rzn(params.w_x, hidden), zrn_to_rzn(params.w_h, hidden)
    return w_x, w_h, folded_input_bias(params), b_hn


def host(a: Array) -> np.ndarray:
    """A writable, C-contiguous NumPy copy of ``a``, dtype kept."""
    return np.array(a, copy=True, order="C")


def all_zero(a: Array) -> bool:
    return not bool(np.any(np.asarray(a) != 0))


def zero_biases(params: GRUParams) -> bool:
    """Whether ``b_x`` and ``b_h`` are all zero: what a peer's GRU without biases can hold."""
    return all_zero(params.b_x) and all_zero(params.b_h)
