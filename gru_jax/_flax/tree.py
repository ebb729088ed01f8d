"""What the Flax wrappers (linen and NNX) share: the parameter-tree layout and the cell step.

A cell's tree is ``{"w_x", "w_h", "b_x", "b_h"}``, the fields of :class:`GRUParams`. A stack's
tree is ``{"layer_0": {"forward": cell_tree, "backward": cell_tree}, "layer_1": ...}`` with
``"backward"`` only when bidirectional. ``reset_after`` is a module attribute, not a leaf, so it
is passed explicitly when a tree is turned back into parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import jax
import jax.numpy as jnp

from gru_jax._base.typing import Array, DTypeLike
from gru_jax._gru.cell import GRUParams
from gru_jax._gru.stack import GRUStackParams
from gru_jax._mingru.cell import MinGRUParams

FIELDS = ("w_x", "w_h", "b_x", "b_h")
DIRECTIONS = ("forward", "backward")


def params_to_tree(params: GRUParams | GRUStackParams) -> dict[str, Any]:
    """A :class:`GRUParams` or a stack as the Flax wrappers' parameter tree (a nested dict).

    Args:
      params: a :class:`gru_jax.GRUParams` (a cell's tree) or a ``params[layer][direction]``
        stack of them, as :func:`gru_jax.init_gru_stack` returns (a stack's tree).

    Example:
      >>> import jax
      >>> from gru_jax import init_gru_stack
      >>> from gru_jax.linen import params_to_tree
      >>> tree = params_to_tree(init_gru_stack(jax.random.key(0), 2, 3, bidirectional=True))
      >>> sorted(tree), sorted(tree["layer_0"]), sorted(tree["layer_0"]["forward"])
      (['layer_0'], ['backward', 'forward'], ['b_h', 'b_x', 'w_h', 'w_x'])
    """
    if isinstance(params, GRUParams):
        return {name: getattr(params, name) for name in FIELDS}
    return {
        f"layer_{layer}": {DIRECTIONS[d]: params_to_tree(p) for d, p in enumerate(directions)}
        for layer, directions in enumerate(params)
    }


def tree_to_params(tree: Mapping[str, Any], *, reset_after: bool) -> GRUParams | GRUStackParams:
    """The inverse of :func:`params_to_tree`: a cell tree gives a :class:`GRUParams`, a stack
    tree (keys ``layer_0``, ``layer_1``, ...) gives ``params[layer][direction]``.

    Example:
      >>> import jax
      >>> from gru_jax import init_gru
      >>> from gru_jax.linen import params_to_tree, tree_to_params
      >>> p = init_gru(jax.random.key(0), 2, 3, reset_after=True)
      >>> q = tree_to_params(params_to_tree(p), reset_after=True)
      >>> q.reset_after, q.w_x is p.w_x
      (True, True)
    """
    if not isinstance(tree, Mapping):
        raise TypeError(f"tree_to_params: tree must be a mapping; got {type(tree).__name__}")
    keys = set(tree)
    if keys == set(FIELDS):
        return GRUParams(**{name: tree[name] for name in FIELDS}, reset_after=reset_after)
    layers = [f"layer_{layer}" for layer in range(len(tree))]
    if not tree or keys != set(layers):
        raise ValueError(
            f"tree_to_params: tree must have the keys {sorted(FIELDS)} (a cell) or "
            f"layer_0 ... layer_N (a stack); got {sorted(keys)}"
        )
    stack: list[tuple[GRUParams, ...]] = []
    for name in layers:
        directions = tree[name]
        expected = DIRECTIONS[: len(directions)] if len(directions) in (1, 2) else DIRECTIONS
        if not isinstance(directions, Mapping) or set(directions) != set(expected):
            raise ValueError(
                f"tree_to_params: tree[{name!r}] must have the keys ['forward'] or "
                f"['backward', 'forward']; got {sorted(directions)}"
            )
        stack.append(  # each direction's tree is a cell's (a valid stack nests no further)
            tuple(
                cast(GRUParams, tree_to_params(directions[d], reset_after=reset_after))
                for d in expected
            )
        )
    return tuple(stack)


def mingru_tree_to_params(tree: Mapping[str, Any], *, candidate: str) -> tuple[Any, ...]:
    """A minGRU stack's tree (:class:`gru_jax.linen.MinGRUStack`'s layout: ``layer_0`` ...,
    each with ``forward`` and maybe ``backward``, each ``{"w_x", "b_x"}``) as
    ``params[layer][direction]`` of :class:`MinGRUParams`."""
    return tuple(
        tuple(MinGRUParams(**layer[d], candidate=candidate) for d in DIRECTIONS if d in layer)
        for layer in (tree[f"layer_{i}"] for i in range(len(tree)))
    )


class CarryBase:
    """What the cells of both Flax APIs share: one feature axis, and the carry's dtype."""

    if TYPE_CHECKING:  # set by the cells that use this mixin
        dtype: DTypeLike | None
        param_dtype: DTypeLike

    def _carry_dtype(self) -> DTypeLike:
        return self.param_dtype if self.dtype is None else self.dtype

    @property
    def num_feature_axes(self) -> int:
        return 1


class CallArgs(NamedTuple):
    """The keyword arguments of a sequence module's call (see
    :class:`gru_jax._flax.linen_parts.SequenceModule`), handed to its ``_sequence``."""

    seq_lengths: Array | None
    resets: Array | None
    initial_carry: Array | None
    deterministic: bool | None


def apply_sequence(
    fn: Callable[..., tuple[Array, Array]],
    params: Any,
    xs: Array,
    call: CallArgs,
    module: Any,
    **options: Any,
) -> Array | tuple[Array, Array]:
    """``fn`` (:func:`gru_jax.gru_stack`, :func:`gru_jax.mingru_stack`,
    :func:`gru_jax.mingru`) on ``params`` and ``xs`` with the call's lengths, resets and
    initial carry, in the ``module``'s ``dtype`` and layout (``time_major``): ``ys``, or
    ``(ys, h_n)`` when the module's ``return_carry``. ``options`` go to ``fn``."""
    params, xs, h0 = cast_tree((params, xs, call.initial_carry), module.dtype)
    ys, h_n = fn(
        params,
        xs,
        h0,
        seq_lengths=call.seq_lengths,
        resets=call.resets,
        time_major=module.time_major,
        **options,
    )
    return (ys, h_n) if module.return_carry else ys


def cast_tree(tree: Any, dtype: DTypeLike | None) -> Any:
    """Every leaf of ``tree`` as ``dtype``; ``tree`` unchanged when ``dtype`` is None."""
    return tree if dtype is None else jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def cell_step(
    step: Callable[[Any, Array, Array], Array],
    params: Any,
    carry: Array,
    inputs: Array,
    dtype: DTypeLike | None,
) -> tuple[Array, Array]:
    """A Flax cell's ``(carry, inputs) -> (new_carry, new_carry)`` for a pure ``step(params,
    h, x)``, computing in ``dtype`` (None: promote). The new carry is cast to the (cast) incoming
    carry's dtype, so that the cell is a valid scan body whatever its inputs promote to."""
    params, carry, inputs = cast_tree((params, carry, inputs), dtype)
    h = step(params, carry, inputs).astype(jnp.asarray(carry).dtype)
    return h, h
