"""Flax NNX wrappers: :class:`GRUCell` for ``flax.nnx.RNN`` and a ``torch.nn.GRU``-like
:class:`GRU` layer. Both hold ``nnx.Param``\\ s and call the pure functions of :mod:`gru_jax`.

Parameter trees (``nnx.state(module, nnx.Param)``, as a pure dict):

* ``GRUCell``: ``{"w_x": (I, 3H), "w_h": (H, 3H), "b_x": (3H,), "b_h": (3H,)}``; the property
  ``cell.gru_params`` gives them as a :class:`gru_jax.GRUParams`, and
  ``cell.load_gru_params(params)`` loads one.
* ``GRU``: ``{"layer_0": {"forward": cell_tree, "backward": cell_tree}, "layer_1": ...}``
  (``"backward"`` only when bidirectional); ``layer.gru_params`` is the ``params[layer][direction]``
  stack of :func:`gru_jax.gru_stack`, and ``layer.load_gru_params(stack)`` loads one.

The same layout as :mod:`gru_jax.linen`, so :func:`params_to_tree` and :func:`tree_to_params`
serve both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn.recurrent import RNNCellBase

from gru_jax._base.checks import as_float_array, check_chrono, check_size
from gru_jax._base.init import (
    at_least_float32,
    chrono_bias_init,
    default_bias_init,
    default_kernel_init,
    default_recurrent_init,
    gate_blocks,
    two_blocks,
)
from gru_jax._base.linear_scan import DEFAULT_CHUNK_SIZE, check_mode
from gru_jax._base.typing import Array, DTypeLike, Initializer
from gru_jax._gru.cell import GRUParams, check_params, gru_cell
from gru_jax._gru.stack import GRUStackParams, check_gru_stack, gru_stack, gru_stack_cell
from gru_jax._mingru.cell import MinGRUParams, check_candidate, mingru_cell
from gru_jax._mingru.cell import check_params as check_mingru_params
from gru_jax._mingru.sequence import mingru
from gru_jax._tree import (
    DIRECTIONS,
    FIELDS,
    cast_tree,
    cell_step,
    params_to_tree,
    tree_to_params,
)

__all__ = ["GRU", "GRUCell", "MinGRU", "MinGRUCell", "params_to_tree", "tree_to_params"]


class _CarryCell:
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


class _CellParams(nnx.Module):
    """The four ``nnx.Param``\\ s of one GRU cell, initialised like :func:`gru_jax.init_gru`."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        reset_after: bool,
        param_dtype: DTypeLike,
        kernel_init: Initializer,
        recurrent_kernel_init: Initializer,
        bias_init: Initializer,
        chrono: int | None = None,
        rngs: nnx.Rngs,
    ):
        fn = type(self).__name__
        i = check_size(fn, "in_features", in_features)
        h = check_size(fn, "hidden_features", hidden_features)
        if not isinstance(reset_after, bool):
            raise TypeError(f"{fn}: reset_after must be a bool; got {type(reset_after).__name__}")
        chrono = check_chrono(fn, chrono)
        self.in_features, self.hidden_features, self.reset_after = i, h, reset_after
        self.w_x = nnx.Param(gate_blocks(kernel_init)(rngs.params(), (i, 3 * h), param_dtype))
        self.w_h = nnx.Param(
            gate_blocks(recurrent_kernel_init)(rngs.params(), (h, 3 * h), param_dtype)
        )
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
        if (i, h, params.reset_after) != (self.in_features, self.hidden_features, self.reset_after):
            raise ValueError(
                f"{fn}: expected GRUParams with input_size={self.in_features}, hidden_size="
                f"{self.hidden_features}, reset_after={self.reset_after}; got input_size={i}, "
                f"hidden_size={h}, reset_after={params.reset_after}"
            )
        for name in FIELDS:
            getattr(self, name)[...] = getattr(params, name)


class GRUCell(_CellParams, _CarryCell, RNNCellBase):
    """One GRU step as an NNX cell, ``(carry, x) -> (carry, y)`` with ``y = carry``.

    Works inside ``flax.nnx.RNN``. The maths is :func:`gru_jax.gru_cell`'s: ``z`` weights the
    candidate, ``h' = (1 − z) ⊙ h + z ⊙ n``.

    Args:
      in_features: ``I``.
      hidden_features: ``H``.
      reset_after: ``False`` for the reset gate before the recurrent matmul (Cho et al.),
        ``True`` for the cuDNN/torch form.
      dtype: the compute dtype; ``None`` promotes the parameters', carry's and inputs' dtypes.
        The new carry is cast to the incoming carry's dtype, so the cell is a valid scan body.
      param_dtype: the parameters' dtype.
      kernel_init, recurrent_kernel_init: called once per gate block with shapes ``(I, H)`` and
        ``(H, H)`` (Glorot uniform and orthogonal by default).
      bias_init: called with ``(3H,)`` for ``b_x`` and ``b_h`` (zeros by default).
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the update-gate block of ``b_x`` drawn
        as ``−log U(1, T_max − 1)``, as :func:`gru_jax.init_gru`'s ``chrono`` (the rest of
        ``b_x`` from ``bias_init``, unchanged).
      rngs: an ``nnx.Rngs``; parameters draw from its ``params`` stream.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from gru_jax.nnx import GRUCell
      >>> rnn = nnx.RNN(GRUCell(3, 8, rngs=nnx.Rngs(0)))
      >>> rnn(jnp.ones((4, 10, 3))).shape                           # (B, T, I) -> (B, T, H)
      (4, 10, 8)
      >>> rnn.cell.gru_params.w_h.shape
      (8, 24)
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        reset_after: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        recurrent_kernel_init: Initializer = default_recurrent_init,
        bias_init: Initializer = default_bias_init,
        chrono: int | None = None,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            in_features,
            hidden_features,
            reset_after=reset_after,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            recurrent_kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
            chrono=chrono,
            rngs=rngs,
        )
        self.dtype, self.param_dtype = dtype, param_dtype

    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """``carry (*B, H)``, ``inputs (*B, I)`` -> ``(new_carry, new_carry)``."""
        inputs = as_float_array("GRUCell", "inputs", inputs)
        return cell_step(gru_cell, self.gru_params, carry, inputs, self.dtype)


class _Layer(nnx.Module):
    """One layer of a :class:`GRU`: ``forward`` and, when bidirectional, ``backward`` params."""

    def __init__(self, num_directions: int, **cell_kwargs: Any):
        for d in range(num_directions):
            setattr(self, DIRECTIONS[d], _CellParams(**cell_kwargs))


class GRU(nnx.Module):
    """A multi-layer, optionally bidirectional GRU over sequences, like ``torch.nn.GRU``.

    Calls :func:`gru_jax.gru_stack` on its parameters; see there for the semantics of
    ``seq_lengths``, the ``(L·D, *B, H)`` carry and dropout. Dropout follows NNX's modes:
    active after ``module.train()`` (the initial mode, as for ``nnx.Dropout``), off after
    ``module.eval()``; its keys come from the ``dropout`` stream of ``rngs``.

    Args:
      in_features: ``I``.
      hidden_features: ``H``, the state size of every layer and direction.
      num_layers: ``L``.
      bidirectional: ``D = 2`` when true.
      reset_after: the variant (see :class:`GRUCell`).
      dropout_rate: dropout between layers (not after the last).
      unroll, remat: passed to :func:`gru_jax.gru`.
      return_carry: return ``(ys, h_n)`` instead of ``ys``.
      dtype, param_dtype, kernel_init, recurrent_kernel_init, bias_init: as in :class:`GRUCell`.
      time_major: ``xs``, ``ys`` and ``resets`` have time first, ``(T, *B, ·)``, as in
        ``flax.nnx.RNN``; the scans read and write that layout in place.
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the chrono initialisation of every
        layer's and direction's update-gate bias, as in :class:`GRUCell` and
        :func:`gru_jax.init_gru_stack`.
      rngs: an ``nnx.Rngs``: ``params`` for initialisation, ``dropout`` for dropout masks.

    One step at a time (acting, sampling): :meth:`step`, for a unidirectional stack.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from gru_jax.nnx import GRU
      >>> layer = GRU(3, 8, num_layers=2, bidirectional=True, return_carry=True,
      ...             rngs=nnx.Rngs(0))
      >>> ys, h_n = layer(jnp.ones((4, 10, 3)), seq_lengths=jnp.array([10, 3, 5, 1]))
      >>> ys.shape, h_n.shape
      ((4, 10, 16), (4, 4, 8))
      >>> sorted(nnx.to_pure_dict(nnx.state(layer, nnx.Param))["layer_0"])
      ['backward', 'forward']
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        reset_after: bool = False,
        dropout_rate: float = 0.0,
        unroll: int = 1,
        remat: bool = False,
        return_carry: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        recurrent_kernel_init: Initializer = default_recurrent_init,
        bias_init: Initializer = default_bias_init,
        time_major: bool = False,
        chrono: int | None = None,
        rngs: nnx.Rngs,
    ):
        num_layers = check_size("GRU", "num_layers", num_layers)
        hidden_features = check_size("GRU", "hidden_features", hidden_features)
        chrono = check_chrono("GRU", chrono)
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"GRU: dropout_rate must lie in [0, 1); got {dropout_rate}")
        self.num_layers, self.num_directions = num_layers, 2 if bidirectional else 1
        self.dropout_rate, self.unroll, self.remat = dropout_rate, unroll, remat
        self.return_carry, self.dtype, self.time_major = return_carry, dtype, time_major
        self.deterministic = False
        self.rngs = rngs.dropout.fork() if dropout_rate > 0 and num_layers > 1 else None
        for layer in range(num_layers):
            layer_in = in_features if layer == 0 else self.num_directions * hidden_features
            setattr(
                self,
                f"layer_{layer}",
                _Layer(
                    self.num_directions,
                    in_features=layer_in,
                    hidden_features=hidden_features,
                    reset_after=reset_after,
                    param_dtype=param_dtype,
                    kernel_init=kernel_init,
                    recurrent_kernel_init=recurrent_kernel_init,
                    bias_init=bias_init,
                    chrono=chrono,
                    rngs=rngs,
                ),
            )

    def _cells(self) -> list[list[_CellParams]]:
        return [
            [
                getattr(getattr(self, f"layer_{layer}"), DIRECTIONS[d])
                for d in range(self.num_directions)
            ]
            for layer in range(self.num_layers)
        ]

    @property
    def gru_params(self) -> GRUStackParams:
        """The parameters as the ``params[layer][direction]`` of :func:`gru_jax.gru_stack`."""
        return tuple(tuple(cell.gru_params for cell in layer) for layer in self._cells())

    def load_gru_params(self, params: GRUStackParams) -> None:
        """Load a ``params[layer][direction]`` stack of the same structure into the module."""
        num_layers, num_directions, _, _ = check_gru_stack("GRU.load_gru_params", params)
        if (num_layers, num_directions) != (self.num_layers, self.num_directions):
            raise ValueError(
                f"GRU.load_gru_params: expected {self.num_layers} layer(s) of "
                f"{self.num_directions} direction(s); got {num_layers} of {num_directions}"
            )
        for cells, directions in zip(self._cells(), params, strict=True):
            for cell, p in zip(cells, directions, strict=True):
                cell.load_gru_params(p)

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        resets: Array | None = None,
        initial_carry: Array | None = None,
        deterministic: bool | None = None,
    ) -> Array | tuple[Array, Array]:
        """``xs (*B, T, I)`` -> ``ys (*B, T, D·H)``, or ``(ys, h_n (L·D, *B, H))``.

        ``resets (*B, T)`` bool marks the steps that start a new segment, as in
        :func:`gru_jax.gru_stack`; with ``time_major``, ``xs (T, *B, I)``, ``resets (T, *B)`` and
        ``ys (T, *B, D·H)``. ``deterministic`` overrides the module's train/eval mode for this
        call.
        """
        deterministic = self.deterministic if deterministic is None else deterministic
        use_dropout = not deterministic and self.rngs is not None
        params, xs, initial_carry = cast_tree((self.gru_params, xs, initial_carry), self.dtype)
        ys, h_n = gru_stack(
            params,
            xs,
            initial_carry,
            seq_lengths=seq_lengths,
            resets=resets,
            time_major=self.time_major,
            dropout_rate=self.dropout_rate,
            deterministic=not use_dropout,
            key=self.rngs() if use_dropout and self.rngs is not None else None,
            unroll=self.unroll,
            remat=self.remat,
        )
        return (ys, h_n) if self.return_carry else ys

    def step(self, carry: Array, x: Array) -> Array:
        """One step of the whole stack: :func:`gru_jax.gru_stack_cell` on this module's
        parameters (a unidirectional stack; no dropout).

        ``carry (L, *B, H)``, ``x (*B, I)`` -> the new carry ``(L, *B, H)``; the top layer's
        output is ``new_carry[-1]``.

        Example:
          >>> import jax.numpy as jnp
          >>> from flax import nnx
          >>> from gru_jax.nnx import GRU
          >>> layer = GRU(3, 8, num_layers=2, rngs=nnx.Rngs(0))
          >>> layer.step(jnp.zeros((2, 4, 8)), jnp.ones((4, 3))).shape
          (2, 4, 8)
        """
        stack, carry, x = cast_tree((self.gru_params, carry, x), self.dtype)
        return gru_stack_cell(stack, carry, x)


# ----------------------------------------------------------------------------- minGRU


class _MinGRUParamsModule(nnx.Module):
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
        i = check_size(fn, "in_features", in_features)
        h = check_size(fn, "hidden_features", hidden_features)
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
        if (i, h, params.candidate) != (self.in_features, self.hidden_features, self.candidate):
            raise ValueError(
                f"{fn}: expected MinGRUParams with input_size={self.in_features}, hidden_size="
                f"{self.hidden_features}, candidate={self.candidate!r}; got input_size={i}, "
                f"hidden_size={h}, candidate={params.candidate!r}"
            )
        self.w_x[...] = params.w_x
        self.b_x[...] = params.b_x


class MinGRUCell(_MinGRUParamsModule, _CarryCell, RNNCellBase):
    """One minGRU step as an NNX cell, ``(carry, x) -> (carry, y)`` with ``y = carry``.

    For ``flax.nnx.RNN`` and step-by-step use; over whole sequences :class:`MinGRU` is the fast
    path. The maths is :func:`gru_jax.mingru_cell`'s; the parameters are
    ``{"w_x": (I, 2H), "b_x": (2H,)}``, as in :class:`MinGRU`.

    Args:
      in_features: ``I``.
      hidden_features: ``H``.
      candidate: ``"linear"`` or ``"g"`` (see :func:`gru_jax.mingru`).
      dtype: the compute dtype; ``None`` promotes the parameters', carry's and inputs' dtypes.
        The new carry is cast to the incoming carry's dtype, so the cell is a valid scan body.
      param_dtype: the parameters' dtype.
      kernel_init: called once per block ``[z | h̃]`` with shape ``(I, H)`` (Glorot uniform).
      bias_init: called with ``(2H,)`` (zeros by default).
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the update-gate bias ``b_z`` (the first
        ``H`` entries of ``b_x``) drawn as ``−log U(1, T_max − 1)``, as
        :func:`gru_jax.init_mingru`'s ``chrono``.
      rngs: an ``nnx.Rngs``; parameters draw from its ``params`` stream.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from gru_jax.nnx import MinGRUCell
      >>> rnn = nnx.RNN(MinGRUCell(3, 8, rngs=nnx.Rngs(0)))
      >>> rnn(jnp.ones((4, 10, 3))).shape                           # (B, T, I) -> (B, T, H)
      (4, 10, 8)
      >>> rnn.cell.mingru_params.w_x.shape
      (3, 16)
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        candidate: str = "linear",
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        chrono: int | None = None,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            in_features,
            hidden_features,
            candidate=candidate,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            bias_init=bias_init,
            chrono=chrono,
            rngs=rngs,
        )
        self.dtype, self.param_dtype = dtype, param_dtype

    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """``carry (*B, H)``, ``inputs (*B, I)`` -> ``(new_carry, new_carry)``."""
        inputs = as_float_array("MinGRUCell", "inputs", inputs)
        return cell_step(mingru_cell, self.mingru_params, carry, inputs, self.dtype)


class MinGRU(_MinGRUParamsModule):
    """A minGRU layer over whole sequences: :func:`gru_jax.mingru` on its parameters.

    One layer, one direction; parameters ``{"w_x": (I, 2H), "b_x": (2H,)}``, also as
    ``layer.mingru_params`` (a :class:`gru_jax.MinGRUParams`), loaded with
    ``layer.load_mingru_params(params)``.

    Args:
      in_features: ``I``.
      hidden_features: ``H``.
      candidate: ``"linear"`` or ``"g"`` (see :func:`gru_jax.mingru`).
      mode: ``"auto"``, ``"sequential"``, ``"parallel"`` or ``"chunked"``; ``chunk_size`` for the
        last. All give the same results up to rounding.
      return_carry: return ``(ys, h_last)`` instead of ``ys``.
      dtype, param_dtype, kernel_init, bias_init, chrono: as in :class:`MinGRUCell`.
      time_major: ``xs``, ``ys`` and ``resets`` have time first, ``(T, *B, ·)``.
      rngs: an ``nnx.Rngs``; parameters draw from its ``params`` stream.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from gru_jax.nnx import MinGRU
      >>> layer = MinGRU(3, 8, mode="parallel", return_carry=True, rngs=nnx.Rngs(0))
      >>> ys, h_last = layer(jnp.ones((4, 10, 3)), seq_lengths=jnp.array([10, 3, 5, 1]))
      >>> ys.shape, h_last.shape
      ((4, 10, 8), (4, 8))
      >>> sorted(nnx.to_pure_dict(nnx.state(layer, nnx.Param)))
      ['b_x', 'w_x']
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        candidate: str = "linear",
        mode: str = "auto",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        return_carry: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        time_major: bool = False,
        chrono: int | None = None,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            in_features,
            hidden_features,
            candidate=candidate,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            bias_init=bias_init,
            chrono=chrono,
            rngs=rngs,
        )
        self.mode = check_mode("MinGRU", mode)
        self.chunk_size = check_size("MinGRU", "chunk_size", chunk_size)
        self.return_carry, self.dtype, self.time_major = return_carry, dtype, time_major

    def __call__(
        self,
        xs: Array,
        *,
        seq_lengths: Array | None = None,
        resets: Array | None = None,
        initial_carry: Array | None = None,
    ) -> Array | tuple[Array, Array]:
        """``xs (*B, T, I)`` -> ``ys (*B, T, H)``, or ``(ys, h_last (*B, H))``.

        ``initial_carry`` is ``h0 (*B, H)`` (zeros when ``None``); ``resets (*B, T)`` bool marks
        segment starts, as in :func:`gru_jax.mingru`. With ``time_major``, ``xs (T, *B, I)``,
        ``resets (T, *B)`` and ``ys (T, *B, H)``.
        """
        params, xs, initial_carry = cast_tree((self.mingru_params, xs, initial_carry), self.dtype)
        ys, h_last = mingru(
            params,
            xs,
            initial_carry,
            seq_lengths=seq_lengths,
            resets=resets,
            time_major=self.time_major,
            mode=self.mode,
            chunk_size=self.chunk_size,
        )
        return (ys, h_last) if self.return_carry else ys
