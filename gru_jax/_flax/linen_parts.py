"""The parts the linen modules of :mod:`gru_jax.linen` are built from.

Declaring a cell's parameters (a GRU's four, a minGRU's two) in a module's scope, the carry
methods of the cells, the per-(layer, direction) parameter modules of the stacks, and the body
that every stack module's ``__call__`` runs. The parameter trees are those of
:mod:`gru_jax._flax.tree`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flax.linen as nn

from gru_jax._base.checks import as_float_array, check_chrono, check_size, check_xs
from gru_jax._base.init import at_least_float32, chrono_bias_init, gate_blocks, two_blocks
from gru_jax._base.typing import Array, DTypeLike, Initializer, PRNGKey
from gru_jax._flax.deprecations import resolve_recurrent_init
from gru_jax._flax.tree import DIRECTIONS, CallArgs, CarryBase, apply_sequence, cast_tree
from gru_jax._gru.cell import GRUParams
from gru_jax._mingru.cell import MinGRUParams, check_candidate


def _check_stored_input_size(fn: str, module: nn.Module, input_size: int) -> None:
    """Check the input against a stored ``w_x`` first, so that a wrong feature size gets a clear
    message rather than Flax's parameter-shape error."""
    if module.has_variable("params", "w_x"):
        stored: int = module.get_variable("params", "w_x").shape[0]
        if stored != input_size:
            raise ValueError(
                f"{fn}: inputs must have I = {stored} features (the size "
                f"the parameters were initialised with); got {input_size}"
            )


def declare_gru_params(
    fn: str, module: nn.Module, input_size: int, features: int, chrono: int | None
) -> GRUParams:
    """Declare (or fetch) a GRU's four parameters in ``module``'s scope, from its
    ``param_dtype``, initializers and ``reset_after`` (``chrono`` already checked)."""
    _check_stored_input_size(fn, module, input_size)
    dtype = module.param_dtype
    recurrent_init = resolve_recurrent_init(fn, module.recurrent_init, module.recurrent_kernel_init)
    b_x_init = chrono_bias_init(module.bias_init, features, chrono)
    return GRUParams(
        w_x=module.param("w_x", gate_blocks(module.kernel_init), (input_size, 3 * features), dtype),
        w_h=module.param("w_h", gate_blocks(recurrent_init), (features, 3 * features), dtype),
        b_x=module.param("b_x", b_x_init, (3 * features,), dtype),
        b_h=module.param("b_h", at_least_float32(module.bias_init), (3 * features,), dtype),
        reset_after=module.reset_after,
    )


def declare_mingru_params(
    fn: str, module: nn.Module, input_size: int, features: int
) -> MinGRUParams:
    """Declare (or fetch) a minGRU's two parameters ``w_x (I, 2H)``, ``b_x (2H,)``, from the
    module's ``param_dtype``, initializers, ``candidate`` and ``chrono``."""
    chrono = check_chrono(fn, module.chrono)
    _check_stored_input_size(fn, module, input_size)
    dtype = module.param_dtype
    b_x_init = chrono_bias_init(module.bias_init, features, chrono)
    return MinGRUParams(
        w_x=module.param("w_x", two_blocks(module.kernel_init), (input_size, 2 * features), dtype),
        b_x=module.param("b_x", b_x_init, (2 * features,), dtype),
        candidate=check_candidate(fn, module.candidate),
    )


class CarryCell(CarryBase):
    """``initialize_carry`` of a linen cell with the fields ``features`` and ``carry_init``."""

    if TYPE_CHECKING:  # declared by the cells that use this mixin
        features: int
        carry_init: Initializer

    @nn.nowrap
    def initialize_carry(self, rng: PRNGKey, input_shape: tuple[int, ...]) -> Array:
        """A carry ``(*B, H)`` for inputs of shape ``(*B, I)``, from ``carry_init``."""
        return self.carry_init(rng, (*input_shape[:-1], self.features), self._carry_dtype())


class Direction(nn.Module):
    """The parameters of one (layer, direction) of a stack module: a GRU's (``cell="gru"``) or
    a minGRU's (``cell="mingru"``). The fields of the other cell keep their defaults."""

    fn: str
    cell: str
    features: int
    param_dtype: DTypeLike
    kernel_init: Initializer
    bias_init: Initializer
    chrono: int | None
    reset_after: bool = False
    recurrent_init: Initializer | None = None
    recurrent_kernel_init: Initializer | None = None
    candidate: str = "linear"

    @nn.compact
    def __call__(self, input_size: int) -> GRUParams | MinGRUParams:
        if self.cell == "gru":
            return declare_gru_params(self.fn, self, input_size, self.features, self.chrono)
        return declare_mingru_params(self.fn, self, input_size, self.features)


class Layer(nn.Module):
    """One layer of a stack module: ``forward`` and, when bidirectional, ``backward``."""

    num_directions: int
    options: dict[str, Any]

    @nn.compact
    def __call__(self, input_size: int) -> tuple[Any, ...]:
        return tuple(
            Direction(**self.options, name=DIRECTIONS[d])(input_size)
            for d in range(self.num_directions)
        )


def check_inputs(fn: str, xs: Array) -> Array:
    """``xs`` as a float array of at least two dimensions, else the core's error."""
    xs = as_float_array(fn, "xs", xs)
    if xs.ndim < 2:
        check_xs(fn, xs, -1)  # raises the core's rank error
    return xs


class SequenceModule(nn.Module):
    """The call that every module of :mod:`gru_jax.linen` over whole sequences shares
    (:class:`gru_jax.linen.GRU`, :class:`gru_jax.linen.MinGRU`,
    :class:`gru_jax.linen.MinGRUStack`), so that a model swaps one for another. A subclass runs
    it in ``_sequence``."""

    @nn.nowrap
    def _sequence(self, xs: Array, call: CallArgs) -> Array | tuple[Array, Array]:
        raise NotImplementedError

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        resets: Array | None = None,
        initial_carry: Array | None = None,
        deterministic: bool = True,
    ) -> Array | tuple[Array, Array]:
        """``xs (*B, T, I)`` -> ``ys (*B, T, D·H)`` (``D·H = H`` for one layer), or with
        ``return_carry`` ``(ys, h_n)``: ``h_n (L·D, *B, H)`` for a stack, ``(*B, H)`` for one
        layer.

        ``seq_lengths (*B,)`` are the valid lengths, ``resets (*B, T)`` bool marks the steps
        that start a new segment (an episode, a packed sequence), ``initial_carry`` is ``h0``,
        of ``h_n``'s shape, as in :func:`gru_jax.gru_stack` and :func:`gru_jax.mingru`; dropout
        between a stack's layers applies when ``deterministic`` is False (one layer has none).
        With ``time_major``, ``xs (T, *B, I)``, ``resets (T, *B)`` and ``ys (T, *B, D·H)``.
        """
        return self._sequence(xs, CallArgs(seq_lengths, resets, initial_carry, deterministic))


class StackModule(SequenceModule):
    """What :class:`gru_jax.linen.GRU` and :class:`gru_jax.linen.MinGRUStack` share: the call
    over sequences and one step of the whole stack. A subclass declares the fields and gives
    its cell's :class:`Direction` fields (``_cell_options``), its stack function
    (``_stack_function``: :func:`gru_jax.gru_stack` or :func:`gru_jax.mingru_stack` with the
    module's options bound) and its parameter tree as that function's stack with the one-step
    function (``_stack_cell``)."""

    if TYPE_CHECKING:  # declared by the subclasses
        features: int
        num_layers: int
        bidirectional: bool
        dropout_rate: float
        return_carry: bool
        dtype: DTypeLike | None
        param_dtype: DTypeLike
        kernel_init: Initializer
        bias_init: Initializer
        time_major: bool
        chrono: int | None

    @nn.nowrap
    def _cell_options(self) -> dict[str, Any]:
        raise NotImplementedError

    @nn.nowrap
    def _stack_function(self) -> Callable[..., tuple[Array, Array]]:
        raise NotImplementedError

    @nn.nowrap
    def _stack_cell(self, tree: Any) -> tuple[Any, Callable[[Any, Array, Array], Array]]:
        raise NotImplementedError

    @nn.nowrap
    def _sequence(self, xs: Array, call: CallArgs) -> Array | tuple[Array, Array]:
        return _run_stack(self, xs, call)

    def step(self, carry: Array, x: Array) -> Array:
        """One step of the whole stack (:func:`gru_jax.gru_stack_cell` or
        :func:`gru_jax.mingru_stack_cell`) on this module's parameters: a unidirectional stack,
        no dropout.

        ``carry (L, *B, H)``, ``x (*B, I)`` -> the new carry ``(L, *B, H)``; the top layer's
        output is ``new_carry[-1]``. Call it as
        ``layer.apply(variables, carry, x, method=type(layer).step)`` after ``init``.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from gru_jax.linen import GRU
          >>> layer = GRU(features=8, num_layers=2)
          >>> variables = layer.init(jax.random.key(0), jnp.ones((4, 1, 3)))
          >>> carry = layer.apply(variables, jnp.zeros((2, 4, 8)), jnp.ones((4, 3)),
          ...                     method=GRU.step)
          >>> carry.shape
          (2, 4, 8)
        """
        stack, cell = self._stack_cell(self.variables["params"])
        stack, carry, x = cast_tree((stack, carry, x), self.dtype)
        return cell(stack, carry, x)


def _run_stack(module: StackModule, xs: Array, call: CallArgs) -> Array | tuple[Array, Array]:
    """The body of :meth:`StackModule.__call__`: check the sizes, declare every (layer,
    direction)'s parameters, and run the stack function on them."""
    fn = type(module).__name__
    features = check_size(fn, "features", module.features)
    num_layers = check_size(fn, "num_layers", module.num_layers)
    chrono = check_chrono(fn, module.chrono)
    num_directions = 2 if module.bidirectional else 1
    xs = check_inputs(fn, xs)
    options = {
        "fn": fn,
        "features": features,
        "param_dtype": module.param_dtype,
        "kernel_init": module.kernel_init,
        "bias_init": module.bias_init,
        "chrono": chrono,
        **module._cell_options(),
    }
    params = tuple(
        Layer(num_directions, options, name=f"layer_{layer}")(
            xs.shape[-1] if layer == 0 else num_directions * features
        )
        for layer in range(num_layers)
    )
    use_dropout = not call.deterministic and module.dropout_rate > 0 and num_layers > 1
    return apply_sequence(
        module._stack_function(),
        params,
        xs,
        call,
        module,
        dropout_rate=module.dropout_rate,
        deterministic=not use_dropout,
        key=module.make_rng("dropout") if use_dropout else None,
    )
