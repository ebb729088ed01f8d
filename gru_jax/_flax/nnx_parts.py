"""The parts the NNX modules of :mod:`gru_jax.nnx` are built from.

The ``nnx.Param`` holders of one cell (a GRU's four parameters, a minGRU's two), the carry
methods of the cells, a stack layer, and :class:`Stack`, what :class:`gru_jax.nnx.GRU` and
:class:`gru_jax.nnx.MinGRUStack` share: their layers, dropout in NNX's train/eval modes, and
the call of the stack function. The parameter trees are those of :mod:`gru_jax._flax.tree`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax.numpy as jnp
from flax import nnx

from gru_jax._base.checks import check_chrono, check_flags, check_size
from gru_jax._base.init import at_least_float32, chrono_bias_init, gate_blocks, two_blocks
from gru_jax._base.stack import check_dropout_rate
from gru_jax._base.typing import Array, DTypeLike, Initializer
from gru_jax._flax.tree import DIRECTIONS, FIELDS, CallArgs, CarryBase, apply_sequence, cast_tree
from gru_jax._gru.cell import GRUParams, check_params
from gru_jax._mingru.cell import MinGRUParams, check_candidate
from gru_jax._mingru.cell import check_params as check_mingru_params


class CarryCell(CarryBase):
    """``initialize_carry`` of an NNX cell with the attribute ``hidden_features``."""

    if TYPE_CHECKING:  # set by the cells that use this mixin
        hidden_features: int

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        carry_init: Initializer | None = None,
    ) -> Array:
        """A carry ``(*B, H)`` for inputs of shape ``(*B, I)``: zeros, or ``carry_init``'s."""
        shape = (*input_shape[:-1], self.hidden_features)
        dtype = self._carry_dtype()
        if carry_init is None:
            return jnp.zeros(shape, dtype)
        if isinstance(rngs, nnx.Rngs):
            rngs = rngs.carry
        if rngs is None:
            raise ValueError(
                f"{type(self).__name__}.initialize_carry: carry_init needs rngs; got rngs=None"
            )
        return carry_init(rngs(), shape, dtype)


def _check_sizes(fn: str, in_features: int, hidden_features: int) -> tuple[int, int]:
    return (
        check_size(fn, "in_features", in_features),
        check_size(fn, "hidden_features", hidden_features),
    )


def _check_loaded(
    fn: str, kind: str, names: str, expected: tuple[Any, ...], got: tuple[Any, ...]
) -> None:
    """Raise unless the loaded ``kind``'s values of ``names`` (``input_size hidden_size`` and
    the variant) are the module's."""
    if got != expected:
        have = ", ".join(f"{n}={v!r}" for n, v in zip(names.split(), expected, strict=True))
        given = ", ".join(f"{n}={v!r}" for n, v in zip(names.split(), got, strict=True))
        raise ValueError(f"{fn}: expected {kind} with {have}; got {given}")


class GRUParamsModule(nnx.Module):
    """The four ``nnx.Param``\\ s of one GRU cell, initialised like :func:`gru_jax.init_gru`."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        reset_after: bool,
        param_dtype: DTypeLike,
        kernel_init: Initializer,
        recurrent_init: Initializer,
        bias_init: Initializer,
        chrono: int | None = None,
        rngs: nnx.Rngs,
    ):
        fn = type(self).__name__
        i, h = _check_sizes(fn, in_features, hidden_features)
        check_flags(fn, reset_after=reset_after)
        chrono = check_chrono(fn, chrono)
        self.in_features, self.hidden_features, self.reset_after = i, h, reset_after
        self.w_x = nnx.Param(gate_blocks(kernel_init)(rngs.params(), (i, 3 * h), param_dtype))
        self.w_h = nnx.Param(gate_blocks(recurrent_init)(rngs.params(), (h, 3 * h), param_dtype))
        b_x_init = chrono_bias_init(bias_init, h, chrono)
        self.b_x = nnx.Param(b_x_init(rngs.params(), (3 * h,), param_dtype))
        self.b_h = nnx.Param(at_least_float32(bias_init)(rngs.params(), (3 * h,), param_dtype))

    @property
    def gru_params(self) -> GRUParams:
        """The parameters as a :class:`gru_jax.GRUParams` (arrays, not ``nnx.Param``\\ s)."""
        return GRUParams(
            **{name: getattr(self, name)[...] for name in FIELDS}, reset_after=self.reset_after
        )

    def load_gru_params(self, params: GRUParams) -> None:
        """Load a :class:`gru_jax.GRUParams` of the same sizes and variant into the module."""
        fn = f"{type(self).__name__}.load_gru_params"
        i, h = check_params(fn, params)
        _check_loaded(
            fn,
            "GRUParams",
            "input_size hidden_size reset_after",
            (self.in_features, self.hidden_features, self.reset_after),
            (i, h, params.reset_after),
        )
        for name in FIELDS:
            getattr(self, name)[...] = getattr(params, name)


class MinGRUParamsModule(nnx.Module):
    """The two ``nnx.Param``\\ s of a minGRU, ``w_x (I, 2H)`` and ``b_x (2H,)``, initialised like
    :func:`gru_jax.init_mingru`, with ``mingru_params`` / ``load_mingru_params``."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        candidate: str,
        param_dtype: DTypeLike,
        kernel_init: Initializer,
        bias_init: Initializer,
        chrono: int | None = None,
        rngs: nnx.Rngs,
    ):
        fn = type(self).__name__
        i, h = _check_sizes(fn, in_features, hidden_features)
        self.in_features, self.hidden_features = i, h
        self.candidate = check_candidate(fn, candidate)
        chrono = check_chrono(fn, chrono)
        self.w_x = nnx.Param(two_blocks(kernel_init)(rngs.params(), (i, 2 * h), param_dtype))
        b_x_init = chrono_bias_init(bias_init, h, chrono)
        self.b_x = nnx.Param(b_x_init(rngs.params(), (2 * h,), param_dtype))

    @property
    def mingru_params(self) -> MinGRUParams:
        """The parameters as a :class:`gru_jax.MinGRUParams` (arrays, not ``nnx.Param``\\ s)."""
        return MinGRUParams(w_x=self.w_x[...], b_x=self.b_x[...], candidate=self.candidate)

    def load_mingru_params(self, params: MinGRUParams) -> None:
        """Load a :class:`gru_jax.MinGRUParams` of the same sizes and candidate."""
        fn = f"{type(self).__name__}.load_mingru_params"
        i, h = check_mingru_params(fn, params)
        _check_loaded(
            fn,
            "MinGRUParams",
            "input_size hidden_size candidate",
            (self.in_features, self.hidden_features, self.candidate),
            (i, h, params.candidate),
        )
        self.w_x[...] = params.w_x
        self.b_x[...] = params.b_x


class Layer(nnx.Module):
    """One layer of a stack: ``forward`` and, when bidirectional, ``backward`` parameters."""

    def __init__(self, num_directions: int, cell: type[nnx.Module], **cell_kwargs: Any):
        for d in range(num_directions):
            setattr(self, DIRECTIONS[d], cell(**cell_kwargs))


class SequenceCall:
    """The call that every module of :mod:`gru_jax.nnx` over whole sequences shares
    (:class:`gru_jax.nnx.GRU`, :class:`gru_jax.nnx.MinGRU`, :class:`gru_jax.nnx.MinGRUStack`),
    so that a model swaps one for another. A subclass runs it in ``_sequence``."""

    def _sequence(self, xs: Array, call: CallArgs) -> Array | tuple[Array, Array]:
        raise NotImplementedError

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        resets: Array | None = None,
        initial_carry: Array | None = None,
        deterministic: bool | None = None,
    ) -> Array | tuple[Array, Array]:
        """``xs (*B, T, I)`` -> ``ys (*B, T, D·H)`` (``D·H = H`` for one layer), or with
        ``return_carry`` ``(ys, h_n)``: ``h_n (L·D, *B, H)`` for a stack, ``(*B, H)`` for one
        layer.

        ``seq_lengths (*B,)`` are the valid lengths, ``resets (*B, T)`` bool marks the steps
        that start a new segment, ``initial_carry`` is ``h0``, of ``h_n``'s shape, as in
        :func:`gru_jax.gru_stack` and :func:`gru_jax.mingru`; with ``time_major``,
        ``xs (T, *B, I)``, ``resets (T, *B)`` and ``ys (T, *B, D·H)``. ``deterministic``
        overrides the module's train/eval mode for this call (one layer has no dropout).
        """
        return self._sequence(xs, CallArgs(seq_lengths, resets, initial_carry, deterministic))


class Stack(SequenceCall, nnx.Module):
    """What :class:`gru_jax.nnx.GRU` and :class:`gru_jax.nnx.MinGRUStack` share: ``layer_0``
    ... of ``cell`` parameter modules, dropout between layers (active after ``train()``, off
    after ``eval()``, keys from the ``dropout`` stream), and the call of the stack function."""

    def __init__(
        self,
        fn: str,
        cell: type[nnx.Module],
        in_features: int,
        hidden_features: int,
        *,
        num_layers: int,
        bidirectional: bool,
        dropout_rate: float,
        return_carry: bool,
        dtype: DTypeLike | None,
        time_major: bool,
        chrono: int | None,
        rngs: nnx.Rngs,
        **cell_kwargs: Any,
    ):
        num_layers = check_size(fn, "num_layers", num_layers)
        hidden_features = check_size(fn, "hidden_features", hidden_features)
        chrono = check_chrono(fn, chrono)
        check_dropout_rate(fn, dropout_rate)
        self.num_layers, self.num_directions = num_layers, 2 if bidirectional else 1
        self.dropout_rate, self.return_carry = dropout_rate, return_carry
        self.dtype, self.time_major = dtype, time_major
        self.deterministic = False
        self.rngs = rngs.dropout.fork() if dropout_rate > 0 and num_layers > 1 else None
        for layer in range(num_layers):
            layer_in = in_features if layer == 0 else self.num_directions * hidden_features
            setattr(
                self,
                f"layer_{layer}",
                Layer(
                    self.num_directions,
                    cell,
                    in_features=layer_in,
                    hidden_features=hidden_features,
                    chrono=chrono,
                    rngs=rngs,
                    **cell_kwargs,
                ),
            )

    def _cells(self) -> list[list[Any]]:
        """``cells()[layer][direction]``: the parameter modules."""
        return [
            [
                getattr(getattr(self, f"layer_{layer}"), DIRECTIONS[d])
                for d in range(self.num_directions)
            ]
            for layer in range(self.num_layers)
        ]

    def _stack_function(self) -> Callable[..., tuple[Array, Array]]:
        raise NotImplementedError  # gru_jax.gru_stack or gru_jax.mingru_stack, options bound

    def _stack_params(self) -> Any:
        raise NotImplementedError  # the parameters as the stack function's params[l][d]

    def _stack_cell(self, params: Any, h: Array, x: Array) -> Array:
        raise NotImplementedError  # gru_jax.gru_stack_cell or gru_jax.mingru_stack_cell

    def _load_stack(
        self,
        fn: str,
        params: Any,
        check: Callable[[str, Any], tuple[int, int, int, int]],
        load: str,
    ) -> None:
        """Load a ``params[layer][direction]`` stack, checked by ``check``, of this module's
        structure into its cells with their method ``load``."""
        num_layers, num_directions, _, _ = check(fn, params)
        if (num_layers, num_directions) != (self.num_layers, self.num_directions):
            raise ValueError(
                f"{fn}: expected {self.num_layers} layer(s) of "
                f"{self.num_directions} direction(s); got {num_layers} of {num_directions}"
            )
        for cells, directions in zip(self._cells(), params, strict=True):
            for cell, p in zip(cells, directions, strict=True):
                getattr(cell, load)(p)

    def _sequence(self, xs: Array, call: CallArgs) -> Array | tuple[Array, Array]:
        deterministic = self.deterministic if call.deterministic is None else call.deterministic
        use_dropout = not deterministic and self.rngs is not None
        return apply_sequence(
            self._stack_function(),
            self._stack_params(),
            xs,
            call,
            self,
            dropout_rate=self.dropout_rate,
            deterministic=not use_dropout,
            key=self.rngs() if use_dropout and self.rngs is not None else None,
        )

    def step(self, carry: Array, x: Array) -> Array:
        """One step of the whole stack (:func:`gru_jax.gru_stack_cell` or
        :func:`gru_jax.mingru_stack_cell`) on this module's parameters: a unidirectional stack,
        no dropout. ``carry (L, *B, H)``, ``x (*B, I)`` -> the new carry ``(L, *B, H)``; the top
        layer's output is ``new_carry[-1]``.

        Example:
          >>> import jax.numpy as jnp
          >>> from flax import nnx
          >>> from gru_jax.nnx import GRU
          >>> layer = GRU(3, 8, num_layers=2, rngs=nnx.Rngs(0))
          >>> layer.step(jnp.zeros((2, 4, 8)), jnp.ones((4, 3))).shape
          (2, 4, 8)
        """
        stack, carry, x = cast_tree((self._stack_params(), carry, x), self.dtype)
        return self._stack_cell(stack, carry, x)
