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
from gru_jax._flax.tree import DIRECTIONS, FIELDS, cast_tree
from gru_jax._gru.cell import GRUParams, check_params
from gru_jax._mingru.cell import MinGRUParams, check_candidate
from gru_jax._mingru.cell import check_params as check_mingru_params


class CarryCell:
    """``initialize_carry`` and ``num_feature_axes`` of a cell with the attributes
    ``hidden_features``, ``dtype`` and ``param_dtype``."""

    if TYPE_CHECKING:  # set by the cells that use this mixin
        hidden_features: int
        dtype: DTypeLike | None
        param_dtype: DTypeLike

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        carry_init: Initializer | None = None,
    ) -> Array:
        """A carry ``(*B, H)`` for inputs of shape ``(*B, I)``: zeros, or ``carry_init``'s."""
        shape = (*input_shape[:-1], self.hidden_features)
        dtype = self.param_dtype if self.dtype is None else self.dtype
        if carry_init is None:
            return jnp.zeros(shape, dtype)
        if isinstance(rngs, nnx.Rngs):
            rngs = rngs.carry
        if rngs is None:
            raise ValueError(
                f"{type(self).__name__}.initialize_carry: carry_init needs rngs; got rngs=None"
            )
        return carry_init(rngs(), shape, dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


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


class Stack(nnx.Module):
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

    def cells(self) -> list[list[Any]]:
        """``cells()[layer][direction]``: the parameter modules."""
        return [
            [
                getattr(getattr(self, f"layer_{layer}"), DIRECTIONS[d])
                for d in range(self.num_directions)
            ]
            for layer in range(self.num_layers)
        ]

    def check_structure(self, fn: str, num_layers: int, num_directions: int) -> None:
        """Raise unless a stack to load has this module's layers and directions."""
        if (num_layers, num_directions) != (self.num_layers, self.num_directions):
            raise ValueError(
                f"{fn}: expected {self.num_layers} layer(s) of "
                f"{self.num_directions} direction(s); got {num_layers} of {num_directions}"
            )

    def run(
        self,
        stack: Callable[..., tuple[Array, Array]],
        params: Any,
        xs: Array,
        *,
        seq_lengths: Array | None,
        resets: Array | None,
        initial_carry: Array | None,
        deterministic: bool | None,
        **stack_kwargs: Any,
    ) -> Array | tuple[Array, Array]:
        """``stack`` (:func:`gru_jax.gru_stack` or :func:`gru_jax.mingru_stack`) on ``params``
        with this module's options; ``deterministic`` overrides the train/eval mode."""
        deterministic = self.deterministic if deterministic is None else deterministic
        use_dropout = not deterministic and self.rngs is not None
        params, xs, initial_carry = cast_tree((params, xs, initial_carry), self.dtype)
        ys, h_n = stack(
            params,
            xs,
            initial_carry,
            seq_lengths=seq_lengths,
            resets=resets,
            time_major=self.time_major,
            dropout_rate=self.dropout_rate,
            deterministic=not use_dropout,
            key=self.rngs() if use_dropout and self.rngs is not None else None,
            **stack_kwargs,
        )
        return (ys, h_n) if self.return_carry else ys
