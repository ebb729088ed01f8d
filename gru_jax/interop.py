"""Exact weight conversion to and from torch, Flax, Keras, Haiku and Equinox; safe weight files.

Every peer lays out, and even defines, its GRU differently. This module moves weights between
them and :class:`gru_jax.GRUParams` *exactly*: the converted model computes the same function,
up to the last bit of floating-point rounding of the peer's own arithmetic.

What differs between the peers, and what each conversion does about it:

=================  ==========  ===========  =============  ======================================
peer               gate order  z weights    reset applied  biases
=================  ==========  ===========  =============  ======================================
gru_jax            z, r, n     candidate    either         ``b_x (3H,)``, ``b_h (3H,)``
torch.nn.GRU       r, z, n     old state    after matmul   ``bias_ih``, ``bias_hh`` (3H,)
flax.linen         r, z, n     old state    after matmul   ``ir, iz, in``, ``hn`` (no b_hr, b_hz)
flax.nnx           r, z, n     old state    after matmul   ``dense_i`` only (no b_h at all)
keras GRU          z, r, n     old state    either         ``(2, 3U)`` or ``(3U,)``
haiku hk.GRU       z, r, n     candidate    before matmul  ``b (3H,)``
equinox GRUCell    r, z, n     old state    after matmul   ``bias (3H,)``, ``bias_n (H,)``
=================  ==========  ===========  =============  ======================================

- *z weights the old state* (torch's convention, ``h' = z ⊙ h + (1 − z) ⊙ n``) versus *z weights
  the candidate* (gru_jax's, ``h' = (1 − z) ⊙ h + z ⊙ n``): converting negates the z-gate
  weights and biases, which is exact because σ(−a) = 1 − σ(a).
- Missing biases: a bias that sits outside ``r ⊙ ·`` can be folded into another one (summed)
  exactly; the candidate's recurrent bias ``b_hn`` of the reset-after form sits inside
  ``r ⊙ (h W_hn + b_hn)`` and cannot, so :func:`to_flax_nnx` refuses non-zero ``b_hn``.
- Reset before versus after the recurrent matmul (``(r ⊙ h) W_hn`` versus ``r ⊙ (h W_hn)``) are
  different functions: no exact conversion exists, and the ``to_*`` functions raise
  ``ValueError`` rather than approximate. torch, Flax and Equinox are reset-after only, Haiku is
  reset-before only, Keras has both.

Importing this module imports none of the peers: the torch and Keras converters work on arrays
(torch tensors are recognised when torch is already imported), and only :func:`to_flax_nnx` and
:func:`to_equinox` import their library, when called.

:func:`save_params` / :func:`load_params` write and read one ``.npz`` file, never pickling,
holding a :class:`~gru_jax.GRUParams` or a stack with its structure, variants and dtypes
(bfloat16 included).
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax._cell import GRUParams, check_params
from gru_jax._stack import GRUStackParams, check_stack
from gru_jax._typing import Array

if TYPE_CHECKING:  # flax is imported when a converter needs it
    from flax import nnx

__all__ = [
    "from_equinox",
    "from_flax_linen",
    "from_flax_nnx",
    "from_haiku",
    "from_keras",
    "from_torch",
    "load_params",
    "save_params",
    "to_equinox",
    "to_flax_linen",
    "to_flax_nnx",
    "to_haiku",
    "to_keras",
    "to_torch",
]

# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


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


def _require_variant(fn: str, params: GRUParams, peer: str, reset_after: bool, name: str) -> None:
    if params.reset_after != reset_after:
        raise _variant_error(fn, peer, reset_after, name)


def _is_torch_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")  # a torch tensor can only exist if torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def _torch_to_numpy(value: Any) -> np.ndarray:
    import torch  # already imported: value is a tensor

    t: torch.Tensor = value.detach().cpu()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16 of its own; reinterpret the bits
        return t.view(torch.int16).numpy().view(jnp.bfloat16)
    return t.numpy()


def _as_array(fn: str, name: str, value: object, *, strict: bool = False) -> Array:
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


def _check_shape(fn: str, name: str, a: Array, expected: tuple[int, ...], layout: str) -> None:
    if tuple(a.shape) != tuple(expected):
        raise ValueError(
            f"{fn}: {name} must have shape {layout} = {tuple(expected)}; got {tuple(a.shape)}"
        )


def _check_kernels(
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


def _check_keys(fn: str, name: str, mapping: object, expected: set[str]) -> Mapping[str, Any]:
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


def _hidden_from_square(fn: str, name: str, a: Array, layout: str) -> int:
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{fn}: {name} must have shape {layout}; got {tuple(a.shape)}")
    return a.shape[0]


def _rzn_to_zrn(a: Array, hidden: int) -> Array:
    """Blocks ``[r|z|n]`` on the last axis, z weighting the old state -> gru_jax's ``[z|r|n]``."""
    r, z, n = a[..., :hidden], a[..., hidden : 2 * hidden], a[..., 2 * hidden :]
    return jnp.concatenate([-z, r, n], axis=-1)


def _zrn_to_rzn(a: Array, hidden: int) -> Array:
    """gru_jax's ``[z|r|n]`` -> ``[r|z|n]`` with z weighting the old state (inverse of above)."""
    z, r, n = a[..., :hidden], a[..., hidden : 2 * hidden], a[..., 2 * hidden :]
    return jnp.concatenate([r, -z, n], axis=-1)


def _negate_z(a: Array, hidden: int) -> Array:
    """Flip the z convention of a ``[z|r|n]`` array (its own inverse)."""
    return jnp.concatenate([-a[..., :hidden], a[..., hidden:]], axis=-1)


def _folded_biases(params: GRUParams) -> tuple[Array, Array]:
    """``(b_zr, b_hn)``: the z and r biases summed (``(2H,)``) and the candidate's ``b_hn``.

    For a reset-after GRU, ``b_x + b_h`` on the z and r blocks is all that matters; ``b_xn`` and
    ``b_hn`` stay apart.
    """
    hidden = params.hidden_size
    return params.b_x[: 2 * hidden] + params.b_h[: 2 * hidden], params.b_h[2 * hidden :]


def _host(a: Array) -> np.ndarray:
    """A writable, C-contiguous NumPy copy of ``a``, dtype kept."""
    return np.array(a, copy=True, order="C")


def _all_zero(a: Array) -> bool:
    return not bool(np.any(np.asarray(a) != 0))


# --------------------------------------------------------------------------------------------
# torch.nn.GRU
# --------------------------------------------------------------------------------------------

_TORCH_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _parse_torch_key(key: str) -> tuple[str, int, int] | None:
    for name in _TORCH_NAMES:
        head = f"{name}_l"
        if key.startswith(head):
            rest = key[len(head) :]
            direction = 0
            if rest.endswith("_reverse"):
                rest, direction = rest[: -len("_reverse")], 1
            if rest.isdigit() and (rest == "0" or not rest.startswith("0")):
                return name, int(rest), direction
    return None


def _torch_key(name: str, layer: int, direction: int) -> str:
    return f"{name}_l{layer}{'_reverse' if direction else ''}"


def from_torch(state_dict: Mapping[str, Any], *, prefix: str = "") -> GRUStackParams:
    """Convert a ``torch.nn.GRU`` state dict to a gru_jax stack.

    The number of layers, the directions and whether the GRU has biases are read off the keys
    (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, each with a
    ``_reverse`` twin when bidirectional). torch lays out each ``(3H, ·)`` weight as row blocks
    ``[r | z | n]`` and lets z weight the old state; the result has gru_jax's ``[z | r | n]``
    columns with the z blocks negated, and ``reset_after=True``. Weights are transposed, nothing
    is rounded: :func:`gru_jax.gru_stack` then reproduces the torch module's outputs and
    ``h_n``, for padded batches (``seq_lengths``, as with ``pack_padded_sequence``, sorted or
    not) and initial states too. Note that ``gru_stack`` is batch-major, like
    ``torch.nn.GRU(batch_first=True)``.

    Only tensors and arrays are accepted, never arbitrary objects; load a torch file with
    ``torch.load(path, weights_only=True)``, which refuses to unpickle code.

    Args:
      state_dict: ``{name: tensor}`` from ``gru.state_dict()``; torch tensors (any device,
        ``requires_grad`` or not) or NumPy or JAX arrays, floating-point. Shapes, for
        layer ``k`` and ``D`` directions: ``weight_ih_l{k} (3H, I)`` for ``k = 0`` and
        ``(3H, D·H)`` above, ``weight_hh_l{k} (3H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}
        (3H,)`` (absent for ``bias=False``, which gives zero biases).
      prefix: only keys starting with ``prefix`` are read, with it stripped: e.g. ``"rnn."`` to
        pick a GRU out of a larger model's state dict. With the default ``""`` every key must
        belong to the GRU.

    Returns:
      ``params[layer][direction]``, a tuple of ``L`` tuples of ``D`` :class:`GRUParams`
      (forward first), each with ``reset_after=True``, as :func:`gru_jax.init_gru_stack` returns.

    Raises:
      TypeError: ``state_dict`` is not a mapping, or a value is not a tensor/array (the key is
        named).
      ValueError: a key is missing or unexpected, layers are not numbered ``0 .. L-1``, or a
        shape disagrees with the others (expected and actual shapes are named).

    Example:
      >>> import jax, numpy as np
      >>> from gru_jax import init_gru_stack
      >>> from gru_jax.interop import from_torch, to_torch
      >>> stack = init_gru_stack(jax.random.key(0), 3, 4, num_layers=2, bidirectional=True,
      ...                        reset_after=True)
      >>> state_dict = to_torch(stack)        # what torch.nn.GRU(3, 4, 2, bidirectional=True) has
      >>> state_dict["weight_ih_l1_reverse"].shape
      (12, 8)
      >>> back = from_torch(state_dict)
      >>> len(back), len(back[0]), bool((back[1][1].w_x == stack[1][1].w_x).all())
      (2, 2, True)
    """
    fn = "from_torch"
    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        raise TypeError(
            f"{fn}: state_dict must be a mapping of tensors; got a {type(state_dict).__name__} "
            "module: pass module.state_dict()"
        )
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{fn}: state_dict must be a mapping of tensors; got {type(state_dict).__name__}"
        )
    if not isinstance(prefix, str):
        raise TypeError(f"{fn}: prefix must be a str; got {type(prefix).__name__}")
    entries: dict[tuple[str, int, int], Array] = {}
    unexpected = []
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"{fn}: state_dict keys must be str; got {type(key).__name__} {key!r}")
        if not key.startswith(prefix):
            continue
        parsed = _parse_torch_key(key[len(prefix) :])
        if parsed is None:
            unexpected.append(key)
            continue
        entries[parsed] = _as_array(fn, f"state_dict[{key!r}]", value, strict=True)
    if unexpected:
        raise ValueError(
            f"{fn}: unexpected keys {unexpected} in state_dict; a torch.nn.GRU has only "
            f"weight_ih_l{{k}}, weight_hh_l{{k}}, bias_ih_l{{k}}, bias_hh_l{{k}} "
            "(and their _reverse twins)" + (f", after the prefix {prefix!r}" if prefix else "")
        )
    if not entries:
        where = f" starting with {prefix!r}" if prefix else ""
        raise ValueError(
            f"{fn}: state_dict has no torch.nn.GRU keys{where}; got {len(state_dict)} keys"
        )

    num_layers = 1 + max(layer for _, layer, _ in entries)
    num_dirs = 2 if any(d for _, _, d in entries) else 1
    has_bias = any(name.startswith("bias") for name, _, _ in entries)
    names = _TORCH_NAMES if has_bias else _TORCH_NAMES[:2]
    missing = [
        prefix + _torch_key(name, layer, d)
        for layer in range(num_layers)
        for d in range(num_dirs)
        for name in names
        if (name, layer, d) not in entries
    ]
    if missing:
        raise ValueError(
            f"{fn}: state_dict is missing keys {missing} (a {num_layers}-layer"
            f"{', bidirectional' if num_dirs == 2 else ''} GRU"
            f"{'' if has_bias else ' without biases'} was inferred from the keys present)"
        )

    def get(name: str, layer: int, d: int) -> tuple[str, Array]:
        return f"state_dict[{prefix + _torch_key(name, layer, d)!r}]", entries[(name, layer, d)]

    input_size, hidden = _check_kernels(
        fn, *get("weight_ih", 0, 0), *get("weight_hh", 0, 0), gates_first=True
    )

    layers = []
    for layer in range(num_layers):
        directions = []
        in_features = input_size if layer == 0 else num_dirs * hidden
        for d in range(num_dirs):
            label, w_ih = get("weight_ih", layer, d)
            layout = "(3H, I)" if layer == 0 else "(3H, D·H)"
            _check_shape(fn, label, w_ih, (3 * hidden, in_features), layout)
            label, w_hh = get("weight_hh", layer, d)
            _check_shape(fn, label, w_hh, (3 * hidden, hidden), "(3H, H)")
            if has_bias:
                label, b_ih = get("bias_ih", layer, d)
                _check_shape(fn, label, b_ih, (3 * hidden,), "(3H,)")
                label, b_hh = get("bias_hh", layer, d)
                _check_shape(fn, label, b_hh, (3 * hidden,), "(3H,)")
            else:
                b_ih = b_hh = jnp.zeros((3 * hidden,), w_ih.dtype)
            directions.append(
                GRUParams(
                    w_x=_rzn_to_zrn(w_ih.T, hidden),
                    w_h=_rzn_to_zrn(w_hh.T, hidden),
                    b_x=_rzn_to_zrn(b_ih, hidden),
                    b_h=_rzn_to_zrn(b_hh, hidden),
                    reset_after=True,
                )
            )
        layers.append(tuple(directions))
    return tuple(layers)


def to_torch(
    params: GRUStackParams | GRUParams,
    *,
    prefix: str = "",
    bias: bool = True,
    as_tensors: bool = False,
) -> dict[str, Any]:
    """Convert a reset-after gru_jax stack to a ``torch.nn.GRU`` state dict.

    The inverse of :func:`from_torch`: every weight transposed to torch's ``(3H, ·)`` with row
    blocks ``[r | z | n]``, z negated to torch's convention. Load it with::

        gru = torch.nn.GRU(I, H, num_layers=L, bidirectional=D == 2)   # batch_first as you like
        gru.load_state_dict(to_torch(params, as_tensors=True))
        # or, with NumPy arrays: {k: torch.from_numpy(v) for k, v in to_torch(params).items()}

    Args:
      params: a stack ``params[layer][direction]`` (from :func:`gru_jax.init_gru_stack` or
        :func:`from_torch`), or one :class:`GRUParams`, taken as a one-layer, one-direction
        stack. Every entry must have ``reset_after=True``: torch's GRU is reset-after only, and
        a reset-before model has no exact torch equivalent (``ValueError``).
      prefix: prepended to every key (e.g. ``"rnn."`` for a GRU inside a larger model).
      bias: ``False`` for a ``torch.nn.GRU(..., bias=False)``: the bias keys are left out, and
        every bias must be zero (``ValueError`` otherwise).
      as_tensors: return CPU ``torch.Tensor`` values (imports torch) instead of NumPy arrays.

    Returns:
      ``{key: array}`` with keys ``weight_ih_l{k}[_reverse] (3H, I or D·H)``,
      ``weight_hh_l{k}[_reverse] (3H, H)``, ``bias_ih_l{k}[_reverse]``,
      ``bias_hh_l{k}[_reverse] (3H,)`` (unless ``bias`` is false) in torch's order; writable
      NumPy arrays of the params' dtype (bfloat16 as ``ml_dtypes.bfloat16``), or tensors.

    Example:
      >>> import jax
      >>> from gru_jax import init_gru_stack
      >>> from gru_jax.interop import to_torch
      >>> stack = init_gru_stack(jax.random.key(0), 3, 4, num_layers=2, reset_after=True)
      >>> {k: v.shape for k, v in to_torch(stack).items()}  # doctest: +NORMALIZE_WHITESPACE
      {'weight_ih_l0': (12, 3), 'weight_hh_l0': (12, 4), 'bias_ih_l0': (12,),
       'bias_hh_l0': (12,), 'weight_ih_l1': (12, 4), 'weight_hh_l1': (12, 4),
       'bias_ih_l1': (12,), 'bias_hh_l1': (12,)}
    """
    fn = "to_torch"
    if isinstance(params, GRUParams):
        params = ((params,),)
    check_stack(fn, params)
    if not isinstance(prefix, str):
        raise TypeError(f"{fn}: prefix must be a str; got {type(prefix).__name__}")
    if not isinstance(bias, bool):
        raise TypeError(f"{fn}: bias must be a bool; got {type(bias).__name__}")
    out: dict[str, Any] = {}
    for layer, directions in enumerate(params):
        for d, p in enumerate(directions):
            _require_variant(fn, p, "torch.nn.GRU", True, f"params[{layer}][{d}]")
            hidden = p.hidden_size
            arrays = {
                "weight_ih": _zrn_to_rzn(p.w_x, hidden).T,
                "weight_hh": _zrn_to_rzn(p.w_h, hidden).T,
                "bias_ih": _zrn_to_rzn(p.b_x, hidden),
                "bias_hh": _zrn_to_rzn(p.b_h, hidden),
            }
            if not bias:
                if not (_all_zero(p.b_x) and _all_zero(p.b_h)):
                    raise ValueError(
                        f"{fn}: bias=False, but params[{layer}][{d}].b_x or .b_h is non-zero; a "
                        "torch.nn.GRU(bias=False) cannot hold them: use bias=True"
                    )
                del arrays["bias_ih"], arrays["bias_hh"]
            for name, a in arrays.items():
                out[prefix + _torch_key(name, layer, d)] = _host(a)
    if as_tensors:
        import torch

        def tensor(a: np.ndarray) -> Any:
            if a.dtype == jnp.bfloat16:
                return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
            return torch.from_numpy(a)

        out = {k: tensor(v) for k, v in out.items()}
    return out


# --------------------------------------------------------------------------------------------
# Flax linen GRUCell
# --------------------------------------------------------------------------------------------

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
    _check_keys(fn, "cell_params", cell_params, set(_LINEN_KEYS))
    arrays = {}
    for gate, leaves in _LINEN_KEYS.items():
        sub = _check_keys(fn, f"cell_params[{gate!r}]", cell_params[gate], leaves)
        for leaf in leaves:
            arrays[gate, leaf] = _as_array(fn, f"cell_params[{gate!r}][{leaf!r}]", sub[leaf])
    hidden = _hidden_from_square(
        fn, "cell_params['hr']['kernel']", arrays["hr", "kernel"], "(H, H)"
    )
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
        _check_shape(fn, f"cell_params[{gate!r}]['kernel']", arrays[gate, "kernel"], shape, layout)
    for gate in ("ir", "iz", "in", "hn"):
        _check_shape(fn, f"cell_params[{gate!r}]['bias']", arrays[gate, "bias"], (hidden,), "(H,)")
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
    _, hidden = check_params(fn, params)
    _require_variant(fn, params, "flax.linen.GRUCell", True, "params")
    H = hidden
    w_x, w_h = params.w_x, params.w_h
    b_zr, b_hn = _folded_biases(params)
    return {
        "ir": {"kernel": w_x[:, H : 2 * H], "bias": b_zr[H:]},
        "iz": {"kernel": -w_x[:, :H], "bias": -b_zr[:H]},
        "in": {"kernel": w_x[:, 2 * H :], "bias": params.b_x[2 * H :]},
        "hr": {"kernel": w_h[:, H : 2 * H]},
        "hz": {"kernel": -w_h[:, :H]},
        "hn": {"kernel": w_h[:, 2 * H :], "bias": b_hn},
    }


# --------------------------------------------------------------------------------------------
# Flax NNX GRUCell
# --------------------------------------------------------------------------------------------


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
    w_i = _as_array(fn, "cell.dense_i.kernel", _nnx_value(fn, "cell.dense_i", dense_i, "kernel"))
    w_h = _as_array(fn, "cell.dense_h.kernel", _nnx_value(fn, "cell.dense_h", dense_h, "kernel"))
    b_i = _nnx_value(fn, "cell.dense_i", dense_i, "bias")
    if getattr(dense_h, "bias", None) is not None:
        raise ValueError(
            f"{fn}: cell.dense_h has a bias; flax.nnx.GRUCell's dense_h has none, so this is "
            "not a flax.nnx.GRUCell this converter knows"
        )
    _, hidden = _check_kernels(
        fn, "cell.dense_i.kernel", w_i, "cell.dense_h.kernel", w_h, gates_first=False
    )
    if b_i is None:
        b_i = jnp.zeros((3 * hidden,), w_i.dtype)
    b_i = _as_array(fn, "cell.dense_i.bias", b_i)
    _check_shape(fn, "cell.dense_i.bias", b_i, (3 * hidden,), "(3H,)")
    return GRUParams(
        w_x=_rzn_to_zrn(w_i, hidden),
        w_h=_rzn_to_zrn(w_h, hidden),
        b_x=_rzn_to_zrn(b_i, hidden),
        b_h=jnp.zeros((3 * hidden,), b_i.dtype),
        reset_after=True,
    )


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
    input_size, hidden = check_params(fn, params)
    _require_variant(fn, params, "flax.nnx.GRUCell", True, "params")
    b_zr, b_hn = _folded_biases(params)
    if not _all_zero(b_hn):
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
    elif not isinstance(cell, nnx.GRUCell):
        raise TypeError(f"{fn}: cell must be a flax.nnx.GRUCell or None; got {type(cell).__name__}")
    elif (cell.in_features, cell.hidden_features) != (input_size, hidden):
        raise ValueError(
            f"{fn}: cell maps {cell.in_features} inputs to {cell.hidden_features} hidden "
            f"features; params map {input_size} to {hidden}"
        )
    b_i = jnp.concatenate([b_zr, params.b_x[2 * hidden :]])
    cell.dense_i.kernel.set_value(_zrn_to_rzn(params.w_x, hidden))
    assert cell.dense_i.bias is not None  # an nnx.GRUCell's dense_i always has a bias
    cell.dense_i.bias.set_value(_zrn_to_rzn(b_i, hidden))
    cell.dense_h.kernel.set_value(_zrn_to_rzn(params.w_h, hidden))
    return cell


# --------------------------------------------------------------------------------------------
# Keras GRU
# --------------------------------------------------------------------------------------------


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
    if not isinstance(reset_after, bool):
        raise TypeError(f"{fn}: reset_after must be a bool; got {type(reset_after).__name__}")
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
    kernel = _as_array(fn, "weights[0] (kernel)", weights[0])
    recurrent = _as_array(fn, "weights[1] (recurrent_kernel)", weights[1])
    _, units = _check_kernels(
        fn,
        "weights[0] (kernel)",
        kernel,
        "weights[1] (recurrent_kernel)",
        recurrent,
        gates_first=False,
        unit="U",
    )
    if len(weights) == 3:
        bias = _as_array(fn, "weights[2] (bias)", weights[2])
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
        w_x=_negate_z(kernel, units),
        w_h=_negate_z(recurrent, units),
        b_x=_negate_z(b_x, units),
        b_h=_negate_z(b_h, units),
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
    if not isinstance(use_bias, bool):
        raise TypeError(f"{fn}: use_bias must be a bool; got {type(use_bias).__name__}")
    kernel = _host(_negate_z(params.w_x, hidden))
    recurrent = _host(_negate_z(params.w_h, hidden))
    if not use_bias:
        if not (_all_zero(params.b_x) and _all_zero(params.b_h)):
            raise ValueError(
                f"{fn}: use_bias=False, but params.b_x or params.b_h is non-zero; a Keras GRU "
                "without biases cannot hold them: use use_bias=True"
            )
        return [kernel, recurrent]
    if params.reset_after:
        bias = jnp.stack([_negate_z(params.b_x, hidden), _negate_z(params.b_h, hidden)])
    else:
        bias = _negate_z(params.b_x + params.b_h, hidden)
    return [kernel, recurrent, _host(bias)]


# --------------------------------------------------------------------------------------------
# Haiku hk.GRU
# --------------------------------------------------------------------------------------------


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
    _check_keys(fn, "params", params, expected)
    w_i = _as_array(fn, "params['w_i']", params["w_i"])
    w_h = _as_array(fn, "params['w_h']", params["w_h"])
    b = _as_array(fn, "params['b']", params["b"])
    _, hidden = _check_kernels(fn, "params['w_i']", w_i, "params['w_h']", w_h, gates_first=False)
    _check_shape(fn, "params['b']", b, (3 * hidden,), "(3H,)")
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
    check_params(fn, params)
    _require_variant(fn, params, "haiku hk.GRU", False, "params")
    return {"w_i": params.w_x, "w_h": params.w_h, "b": params.b_x + params.b_h}


# --------------------------------------------------------------------------------------------
# Equinox GRUCell
# --------------------------------------------------------------------------------------------


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
    w_ih = _as_array(fn, "cell.weight_ih", cell.weight_ih)
    w_hh = _as_array(fn, "cell.weight_hh", cell.weight_hh)
    _, hidden = _check_kernels(fn, "cell.weight_ih", w_ih, "cell.weight_hh", w_hh, gates_first=True)
    zeros = jnp.zeros((3 * hidden,), w_ih.dtype)
    bias = zeros if cell.bias is None else _as_array(fn, "cell.bias", cell.bias)
    _check_shape(fn, "cell.bias", bias, (3 * hidden,), "(3H,)")
    bias_n = zeros[:hidden] if cell.bias_n is None else _as_array(fn, "cell.bias_n", cell.bias_n)
    _check_shape(fn, "cell.bias_n", bias_n, (hidden,), "(H,)")
    return GRUParams(
        w_x=_rzn_to_zrn(w_ih.T, hidden),
        w_h=_rzn_to_zrn(w_hh.T, hidden),
        b_x=_rzn_to_zrn(bias, hidden),
        b_h=jnp.concatenate([jnp.zeros_like(bias_n, shape=(2 * hidden,)), bias_n]),
        reset_after=True,
    )


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
    input_size, hidden = check_params(fn, params)
    _require_variant(fn, params, "equinox.nn.GRUCell", True, "params")
    import equinox as eqx

    if cell is None:
        cell = eqx.nn.GRUCell(input_size, hidden, dtype=params.w_x.dtype, key=jax.random.key(0))
    elif not isinstance(cell, eqx.nn.GRUCell):
        raise TypeError(
            f"{fn}: cell must be an equinox.nn.GRUCell or None; got {type(cell).__name__}"
        )
    elif (cell.input_size, cell.hidden_size) != (input_size, hidden):
        raise ValueError(
            f"{fn}: cell maps {cell.input_size} inputs to {cell.hidden_size} hidden features; "
            f"params map {input_size} to {hidden}"
        )
    b_zr, b_hn = _folded_biases(params)
    bias = _zrn_to_rzn(jnp.concatenate([b_zr, params.b_x[2 * hidden :]]), hidden)
    weights = (_zrn_to_rzn(params.w_x, hidden).T, _zrn_to_rzn(params.w_h, hidden).T)
    if cell.use_bias:
        return eqx.tree_at(
            lambda c: (c.weight_ih, c.weight_hh, c.bias, c.bias_n), cell, (*weights, bias, b_hn)
        )
    if not (_all_zero(params.b_x) and _all_zero(params.b_h)):
        raise ValueError(
            f"{fn}: cell has use_bias=False, but params.b_x or params.b_h is non-zero; pass a "
            "cell with use_bias=True (or cell=None)"
        )
    return eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh), cell, weights)


# --------------------------------------------------------------------------------------------
# Safe weight files
# --------------------------------------------------------------------------------------------

_FORMAT = "gru_jax.params"
_VERSION = 1
_META = "__gru_jax__"
_FIELDS = ("w_x", "w_h", "b_x", "b_h")
# NumPy's own float dtypes are stored as they are; the others (bfloat16, float8, ...) as their
# bits, in an unsigned integer array of the same width, with the dtype's name in the metadata.
_NATIVE = {"float16", "float32", "float64"}


def _entry_key(layer: int | None, direction: int | None) -> str:
    return "cell" if layer is None else f"l{layer}.d{direction}"


def save_params(path: str | os.PathLike[str], params: GRUParams | GRUStackParams) -> None:
    """Save a :class:`GRUParams` or a stack to one ``.npz`` file, without pickle.

    The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) with one array per weight
    and a JSON header naming the format, the structure (one cell, or ``L`` layers of ``D``
    directions), and each entry's ``reset_after``, shapes and dtypes. Dtypes NumPy cannot store
    natively (bfloat16, float8) are written as their raw bits with a dtype tag, so they load back
    bit for bit. The file is written to a temporary name and renamed, so a crash never leaves a
    half-written file under ``path``; ``path`` is used as given (no suffix is added).

    Args:
      path: where to write, e.g. ``"gru.npz"``.
      params: a :class:`GRUParams`, or a stack ``params[layer][direction]`` as
        :func:`gru_jax.init_gru_stack` returns.

    Example:
      >>> import os, tempfile, jax, jax.numpy as jnp
      >>> from gru_jax import init_gru_stack
      >>> from gru_jax.interop import load_params, save_params
      >>> stack = init_gru_stack(jax.random.key(0), 3, 4, num_layers=2, bidirectional=True,
      ...                        dtype=jnp.bfloat16)
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     save_params(os.path.join(tmp, "gru.npz"), stack)
      ...     back = load_params(os.path.join(tmp, "gru.npz"))
      >>> back[1][1].w_x.dtype, bool((back[1][1].w_x == stack[1][1].w_x).all())
      (dtype(bfloat16), True)
    """
    fn = "save_params"
    if isinstance(params, GRUParams):
        check_params(fn, params)
        entries: list[tuple[int | None, int | None, GRUParams]] = [(None, None, params)]
        structure: dict[str, Any] = {"kind": "cell"}
    else:
        num_layers, num_dirs, _, _ = check_stack(fn, params)
        entries = [(layer, d, p) for layer, ps in enumerate(params) for d, p in enumerate(ps)]
        structure = {"kind": "stack", "num_layers": num_layers, "num_directions": num_dirs}
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{fn}: path must be a str or os.PathLike; got {type(path).__name__}")

    arrays: dict[str, np.ndarray] = {}
    meta_entries = []
    for layer, d, p in entries:
        key = _entry_key(layer, d)
        fields = {}
        for field in _FIELDS:
            a = np.asarray(jax.device_get(getattr(p, field)))
            dtype = a.dtype.name
            stored = a if dtype in _NATIVE else a.view(f"uint{8 * a.dtype.itemsize}")
            arrays[f"{key}.{field}"] = np.ascontiguousarray(stored)
            fields[field] = {"dtype": dtype, "stored_as": stored.dtype.name, "shape": a.shape}
        meta_entries.append(
            {
                "key": key,
                "layer": layer,
                "direction": d,
                "reset_after": p.reset_after,
                "arrays": fields,
            }
        )
    meta = {"format": _FORMAT, "version": _VERSION, **structure, "entries": meta_entries}
    arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gru_jax-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class _BadFileError(ValueError):
    """A ValueError saying that a file is not a valid params file (a private marker class)."""


def _bad_file(path: str, why: str) -> ValueError:
    return _BadFileError(f"load_params: {path!r} is not a valid gru_jax params file: {why}")


def load_params(path: str | os.PathLike[str]) -> GRUParams | GRUStackParams:
    """Load what :func:`save_params` wrote, never unpickling anything.

    The archive is read with ``numpy.load(allow_pickle=False)``; every array's dtype and shape
    is checked against the file's header, and the result against :class:`GRUParams`'s shape
    rules, so that a truncated, corrupted or foreign file (another ``.npz``, a torch checkpoint,
    anything needing pickle) raises a clear ``ValueError`` instead of loading something wrong.

    Args:
      path: a file written by :func:`save_params`.

    Returns:
      The :class:`GRUParams`, or the stack ``params[layer][direction]``, as saved: same
      structure, ``reset_after`` of each entry, shapes and dtypes (bfloat16 included), as JAX
      arrays. (float64 stays float64 only with ``jax_enable_x64`` on, as everywhere in JAX.)

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file is not a complete gru_jax params file; the message says why.

    Example:
      >>> import os, tempfile, jax
      >>> from gru_jax import init_gru
      >>> from gru_jax.interop import load_params, save_params
      >>> p = init_gru(jax.random.key(0), 3, 4, reset_after=True)
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     save_params(os.path.join(tmp, "cell.npz"), p)
      ...     q = load_params(os.path.join(tmp, "cell.npz"))
      >>> q.reset_after, q.w_h.shape
      (True, (4, 12))
    """
    fn = "load_params"
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{fn}: path must be a str or os.PathLike; got {type(path).__name__}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"PK"):
        raise _bad_file(path, "it is not an .npz (zip) archive")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = set(npz.files)
            if _META not in names:
                raise _bad_file(path, f"it has no {_META!r} header (a foreign .npz or zip file?)")
            raw = {name: npz[name] for name in names}
    except _BadFileError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise _bad_file(path, f"it holds an object array, which would need pickle ({e})") from e
        raise _bad_file(path, f"{e}") from e
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise _bad_file(path, f"it is truncated or corrupted ({type(e).__name__}: {e})") from e

    try:
        meta = json.loads(raw.pop(_META).tobytes().decode("utf-8"))
        if meta.get("format") != _FORMAT:
            raise _bad_file(path, f"its header names format {meta.get('format')!r}")
        if meta.get("version") != _VERSION:
            raise _bad_file(
                path, f"format version {meta.get('version')!r}; this gru_jax reads {_VERSION}"
            )
        entries = {}
        for entry in meta["entries"]:
            key = entry["key"]
            leaves = {}
            for field in _FIELDS:
                info = entry["arrays"][field]
                name = f"{key}.{field}"
                if name not in raw:
                    raise _bad_file(path, f"array {name!r} is missing")
                a = raw.pop(name)
                if a.dtype.name != info["stored_as"] or list(a.shape) != list(info["shape"]):
                    raise _bad_file(
                        path,
                        f"array {name!r} is {a.dtype.name}{list(a.shape)}; the header says "
                        f"{info['stored_as']}{list(info['shape'])}",
                    )
                dtype = jnp.dtype(info["dtype"])
                if not jnp.issubdtype(dtype, jnp.floating):
                    raise _bad_file(path, f"array {name!r} has non-float dtype {dtype}")
                if info["dtype"] not in _NATIVE:
                    a = a.view(dtype)
                leaves[field] = jnp.asarray(a)
            entries[key] = GRUParams(**leaves, reset_after=bool(entry["reset_after"]))
        if raw:
            raise _bad_file(path, f"unexpected arrays {sorted(raw)}")
        if meta["kind"] == "cell":
            result: GRUParams | GRUStackParams = entries["cell"]
            check_params(fn, entries["cell"])
        elif meta["kind"] == "stack":
            result = tuple(
                tuple(entries[_entry_key(layer, d)] for d in range(meta["num_directions"]))
                for layer in range(meta["num_layers"])
            )
            check_stack(fn, result)
        else:
            raise _bad_file(path, f"unknown structure {meta['kind']!r}")
        used = (
            {"cell"}
            if meta["kind"] == "cell"
            else {
                _entry_key(layer, d)
                for layer in range(meta["num_layers"])
                for d in range(meta["num_directions"])
            }
        )
        if set(entries) != used:
            raise _bad_file(
                path, f"its header lists entries {sorted(entries)}; expected {sorted(used)}"
            )
    except _BadFileError:
        raise
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad_file(path, f"its header is malformed ({type(e).__name__}: {e})") from e
    except ValueError as e:  # shapes that GRUParams cannot have
        raise _bad_file(path, str(e)) from e
    return result
