"""``torch.nn.GRU`` state dicts: :func:`from_torch`, :func:`to_torch`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from gru_jax._base.typing import Array
from gru_jax._gru.cell import GRUParams
from gru_jax._gru.stack import GRUStackParams, check_gru_stack
from gru_jax.interop._common import (
    as_array,
    check_kernels,
    check_shape,
    check_type,
    from_rzn,
    host,
    require_variant,
    rzn_to_zrn,
    zero_biases,
    zrn_to_rzn,
)

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
    check_type(fn, "state_dict", state_dict, Mapping, "a mapping of tensors")
    check_type(fn, "prefix", prefix, str, "a str")
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
        entries[parsed] = as_array(fn, f"state_dict[{key!r}]", value, strict=True)
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

    input_size, hidden = check_kernels(
        fn, *get("weight_ih", 0, 0), *get("weight_hh", 0, 0), gates_first=True
    )

    layers = []
    for layer in range(num_layers):
        directions = []
        in_features = input_size if layer == 0 else num_dirs * hidden
        for d in range(num_dirs):
            label, w_ih = get("weight_ih", layer, d)
            layout = "(3H, I)" if layer == 0 else "(3H, D·H)"
            check_shape(fn, label, w_ih, (3 * hidden, in_features), layout)
            label, w_hh = get("weight_hh", layer, d)
            check_shape(fn, label, w_hh, (3 * hidden, hidden), "(3H, H)")
            if has_bias:
                label, b_ih = get("bias_ih", layer, d)
                check_shape(fn, label, b_ih, (3 * hidden,), "(3H,)")
                label, b_hh = get("bias_hh", layer, d)
                check_shape(fn, label, b_hh, (3 * hidden,), "(3H,)")
            else:
                b_ih = b_hh = jnp.zeros((3 * hidden,), w_ih.dtype)
            directions.append(from_rzn(w_ih.T, w_hh.T, b_ih, rzn_to_zrn(b_hh, hidden)))
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
    check_gru_stack(fn, params)
    check_type(fn, "prefix", prefix, str, "a str")
    check_type(fn, "bias", bias, bool, "a bool")
    out: dict[str, Any] = {}
    for layer, directions in enumerate(params):
        for d, p in enumerate(directions):
            require_variant(fn, p, "torch.nn.GRU", True, f"params[{layer}][{d}]")
            hidden = p.hidden_size
            arrays = {
                "weight_ih": zrn_to_rzn(p.w_x, hidden).T,
                "weight_hh": zrn_to_rzn(p.w_h, hidden).T,
                "bias_ih": zrn_to_rzn(p.b_x, hidden),
                "bias_hh": zrn_to_rzn(p.b_h, hidden),
            }
            if not bias:
                if not zero_biases(p):
                    raise ValueError(
                        f"{fn}: bias=False, but params[{layer}][{d}].b_x or .b_h is non-zero; a "
                        "torch.nn.GRU(bias=False) cannot hold them: use bias=True"
                    )
                del arrays["bias_ih"], arrays["bias_hh"]
            for name, a in arrays.items():
                out[prefix + _torch_key(name, layer, d)] = host(a)
    if as_tensors:
        import torch

        def tensor(a: np.ndarray) -> Any:
            if a.dtype == jnp.bfloat16:
                return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
            return torch.from_numpy(a)

        out = {k: tensor(v) for k, v in out.items()}
    return out
