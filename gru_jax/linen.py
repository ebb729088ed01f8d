"""Flax linen wrappers: :class:`GRUCell` for ``flax.linen.RNN`` and a ``torch.nn.GRU``-like
:class:`GRU` layer. Both hold parameters and call the pure functions of :mod:`gru_jax`.

Parameter trees (``variables["params"]``):

* ``GRUCell``: ``{"w_x": (I, 3H), "w_h": (H, 3H), "b_x": (3H,), "b_h": (3H,)}``, the fields of
  :class:`gru_jax.GRUParams`: ``GRUParams(**variables["params"], reset_after=cell.reset_after)``.
* ``GRU``: ``{"layer_0": {"forward": cell_tree, "backward": cell_tree}, "layer_1": ...}``
  (``"backward"`` only when bidirectional). :func:`tree_to_params` turns it into the
  ``params[layer][direction]`` of :func:`gru_jax.gru_stack`, :func:`params_to_tree` back.
* ``MinGRUCell``, ``MinGRU``: ``{"w_x": (I, 2H), "b_x": (2H,)}``, the fields of
  :class:`gru_jax.MinGRUParams`; ``MinGRUStack``: ``GRU``'s layout with those leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax.numpy as jnp

from gru_jax._base.checks import as_float_array, check_chrono, check_size, check_xs
from gru_jax._base.init import (
    at_least_float32,
    chrono_bias_init,
    default_bias_init,
    default_kernel_init,
    default_recurrent_init,
    gate_blocks,
    two_blocks,
)
from gru_jax._base.linear_scan import DEFAULT_CHUNK_SIZE
from gru_jax._base.typing import Array, DTypeLike, Initializer, PRNGKey
from gru_jax._gru.cell import GRUParams, gru_cell
from gru_jax._gru.stack import gru_stack, gru_stack_cell
from gru_jax._mingru.cell import MinGRUParams, check_candidate, mingru_cell
from gru_jax._mingru.sequence import mingru
from gru_jax._mingru.stack import mingru_stack, mingru_stack_cell
from gru_jax._tree import DIRECTIONS, cast_tree, cell_step, params_to_tree, tree_to_params

__all__ = [
    "GRU",
    "GRUCell",
    "MinGRU",
    "MinGRUCell",
    "MinGRUStack",
    "params_to_tree",
    "tree_to_params",
]


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


def _declare_params(
    fn: str,
    module: nn.Module,
    input_size: int,
    features: int,
    reset_after: bool,
    chrono: int | None = None,
) -> GRUParams:
    """Declare (or fetch) a cell's four parameters in ``module``'s scope (``chrono`` checked)."""
    _check_stored_input_size(fn, module, input_size)
    dtype = module.param_dtype
    b_x_init = chrono_bias_init(module.bias_init, features, chrono)
    return GRUParams(
        w_x=module.param("w_x", gate_blocks(module.kernel_init), (input_size, 3 * features), dtype),
        w_h=module.param(
            "w_h", gate_blocks(module.recurrent_kernel_init), (features, 3 * features), dtype
        ),
        b_x=module.param("b_x", b_x_init, (3 * features,), dtype),
        b_h=module.param("b_h", at_least_float32(module.bias_init), (3 * features,), dtype),
        reset_after=reset_after,
    )


class _CarryCell:
    """``initialize_carry`` and ``num_feature_axes`` of a cell with the fields ``features``,
    ``dtype``, ``param_dtype`` and ``carry_init``."""

    if TYPE_CHECKING:  # declared by the cells that use this mixin
        features: int
        dtype: DTypeLike | None
        param_dtype: DTypeLike
        carry_init: Initializer

    @nn.nowrap
    def initialize_carry(self, rng: PRNGKey, input_shape: tuple[int, ...]) -> Array:
        """A carry ``(*B, H)`` for inputs of shape ``(*B, I)``, from ``carry_init``."""
        dtype = self.param_dtype if self.dtype is None else self.dtype
        return self.carry_init(rng, (*input_shape[:-1], self.features), dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


class GRUCell(_CarryCell, nn.RNNCellBase):
    """One GRU step as a linen cell, ``(carry, x) -> (carry, y)`` with ``y = carry``.

    Works inside ``flax.linen.RNN`` and ``flax.linen.Bidirectional``. The maths is
    :func:`gru_jax.gru_cell`'s: ``z`` weights the candidate, ``h' = (1 − z) ⊙ h + z ⊙ n``.

    Attributes:
      features: ``H``, the state size.
      reset_after: ``False`` for the reset gate before the recurrent matmul (Cho et al.),
        ``True`` for the cuDNN/torch form.
      dtype: the compute dtype; ``None`` promotes the parameters', carry's and inputs' dtypes.
        The new carry is cast to the incoming carry's dtype, so the cell is a valid scan body.
      param_dtype: the parameters' dtype.
      kernel_init, recurrent_kernel_init: called once per gate block with shapes ``(I, H)`` and
        ``(H, H)`` (Glorot uniform and orthogonal by default).
      bias_init: called with ``(3H,)`` for ``b_x`` and ``b_h`` (zeros by default).
      carry_init: initializer of the carry in :meth:`initialize_carry` (zeros by default).
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the update-gate block of ``b_x`` drawn
        as ``−log U(1, T_max − 1)``, as :func:`gru_jax.init_gru`'s ``chrono`` (the rest of
        ``b_x`` from ``bias_init``, unchanged); checked when the module is called.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from gru_jax.linen import GRUCell
      >>> rnn = nn.RNN(GRUCell(features=8))
      >>> xs = jnp.ones((4, 10, 3))                                  # (B, T, I)
      >>> variables = rnn.init(jax.random.key(0), xs)
      >>> jax.tree.map(jnp.shape, variables["params"]["cell"])
      {'b_h': (24,), 'b_x': (24,), 'w_h': (8, 24), 'w_x': (3, 24)}
      >>> rnn.apply(variables, xs).shape
      (4, 10, 8)
    """

    features: int
    reset_after: bool = False
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    kernel_init: Initializer = default_kernel_init
    recurrent_kernel_init: Initializer = default_recurrent_init
    bias_init: Initializer = default_bias_init
    carry_init: Initializer = nn.initializers.zeros_init()
    chrono: int | None = None

    @nn.compact
    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """``carry (*B, H)``, ``inputs (*B, I)`` -> ``(new_carry, new_carry)``."""
        chrono = check_chrono("GRUCell", self.chrono)
        inputs = as_float_array("GRUCell", "inputs", inputs)
        params = _declare_params(
            "GRUCell", self, inputs.shape[-1], self.features, self.reset_after, chrono
        )
        return cell_step(gru_cell, params, carry, inputs, self.dtype)


class _CellParams(nn.Module):
    """The four parameters of one (layer, direction) of a :class:`GRU`."""

    features: int
    reset_after: bool
    param_dtype: DTypeLike
    kernel_init: Initializer
    recurrent_kernel_init: Initializer
    bias_init: Initializer
    chrono: int | None

    @nn.compact
    def __call__(self, input_size: int) -> GRUParams:
        return _declare_params(
            "GRU", self, input_size, self.features, self.reset_after, self.chrono
        )


class _Layer(nn.Module):
    """One layer of a :class:`GRU`: ``forward`` and, when bidirectional, ``backward`` params."""

    num_directions: int
    cell_kwargs: dict[str, Any]

    @nn.compact
    def __call__(self, input_size: int) -> tuple[GRUParams, ...]:
        return tuple(
            _CellParams(**self.cell_kwargs, name=DIRECTIONS[d])(input_size)
            for d in range(self.num_directions)
        )


class GRU(nn.Module):
    """A multi-layer, optionally bidirectional GRU over sequences, like ``torch.nn.GRU``.

    Calls :func:`gru_jax.gru_stack` on its parameters; see there for the semantics of
    ``seq_lengths``, the ``(L·D, *B, H)`` carry and dropout.

    Attributes:
      features: ``H``, the state size of every layer and direction.
      num_layers: ``L``.
      bidirectional: ``D = 2`` when true.
      reset_after: the variant (see :class:`GRUCell`).
      dropout_rate: dropout between layers (not after the last); its key comes from the
        ``'dropout'`` rng stream when ``deterministic=False``.
      unroll, remat: passed to :func:`gru_jax.gru`.
      return_carry: return ``(ys, h_n)`` instead of ``ys``.
      dtype, param_dtype, kernel_init, recurrent_kernel_init, bias_init: as in :class:`GRUCell`.
      time_major: ``xs``, ``ys`` and ``resets`` have time first, ``(T, *B, ·)``, as in
        ``flax.linen.RNN``; the scans read and write that layout in place.
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the chrono initialisation of every
        layer's and direction's update-gate bias, as in :class:`GRUCell` and
        :func:`gru_jax.init_gru_stack`.

    One step at a time (acting, sampling): :meth:`step`, for a unidirectional stack.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax.linen import GRU
      >>> layer = GRU(features=8, num_layers=2, bidirectional=True, return_carry=True)
      >>> xs = jnp.ones((4, 10, 3))                                  # (B, T, I)
      >>> variables = layer.init(jax.random.key(0), xs)
      >>> sorted(variables["params"]), sorted(variables["params"]["layer_1"])
      (['layer_0', 'layer_1'], ['backward', 'forward'])
      >>> ys, h_n = layer.apply(variables, xs, seq_lengths=jnp.array([10, 3, 5, 1]))
      >>> ys.shape, h_n.shape
      ((4, 10, 16), (4, 4, 8))
    """

    features: int
    num_layers: int = 1
    bidirectional: bool = False
    reset_after: bool = False
    dropout_rate: float = 0.0
    unroll: int = 1
    remat: bool = False
    return_carry: bool = False
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    kernel_init: Initializer = default_kernel_init
    recurrent_kernel_init: Initializer = default_recurrent_init
    bias_init: Initializer = default_bias_init
    time_major: bool = False
    chrono: int | None = None

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
        """``xs (*B, T, I)`` -> ``ys (*B, T, D·H)``, or ``(ys, h_n (L·D, *B, H))``.

        ``resets (*B, T)`` bool marks the steps that start a new segment (an episode, a packed
        sequence), as in :func:`gru_jax.gru_stack`. With ``time_major``, ``xs (T, *B, I)``,
        ``resets (T, *B)`` and ``ys (T, *B, D·H)``.
        """
        features = check_size("GRU", "features", self.features)
        num_layers = check_size("GRU", "num_layers", self.num_layers)
        chrono = check_chrono("GRU", self.chrono)
        num_directions = 2 if self.bidirectional else 1
        xs = as_float_array("GRU", "xs", xs)
        if xs.ndim < 2:
            check_xs("GRU", xs, -1)  # raises the core's rank error
        cell_kwargs = {
            "features": features,
            "reset_after": self.reset_after,
            "param_dtype": self.param_dtype,
            "kernel_init": self.kernel_init,
            "recurrent_kernel_init": self.recurrent_kernel_init,
            "bias_init": self.bias_init,
            "chrono": chrono,
        }
        params = tuple(
            _Layer(num_directions, cell_kwargs, name=f"layer_{layer}")(
                xs.shape[-1] if layer == 0 else num_directions * features
            )
            for layer in range(num_layers)
        )
        use_dropout = not deterministic and self.dropout_rate > 0 and num_layers > 1
        params, xs, initial_carry = cast_tree((params, xs, initial_carry), self.dtype)
        ys, h_n = gru_stack(
            params,
            xs,
            initial_carry,
            seq_lengths=seq_lengths,
            resets=resets,
            time_major=self.time_major,
            dropout_rate=self.dropout_rate,
            deterministic=not use_dropout,
            key=self.make_rng("dropout") if use_dropout else None,
            unroll=self.unroll,
            remat=self.remat,
        )
        return (ys, h_n) if self.return_carry else ys

    def step(self, carry: Array, x: Array) -> Array:
        """One step of the whole stack: :func:`gru_jax.gru_stack_cell` on this module's
        parameters (a unidirectional stack; no dropout).

        ``carry (L, *B, H)``, ``x (*B, I)`` -> the new carry ``(L, *B, H)``; the top layer's
        output is ``new_carry[-1]``. Call it as
        ``layer.apply(variables, carry, x, method=GRU.step)`` after ``init``.

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
        stack = tree_to_params(self.variables["params"], reset_after=self.reset_after)
        stack, carry, x = cast_tree((stack, carry, x), self.dtype)
        return gru_stack_cell(stack, carry, x)


# ----------------------------------------------------------------------------- minGRU


def _declare_mingru_params(
    module: nn.Module, input_size: int, features: int, fn: str | None = None
) -> MinGRUParams:
    """Declare (or fetch) a minGRU's two parameters ``w_x (I, 2H)``, ``b_x (2H,)``."""
    fn = fn or type(module).__name__
    chrono = check_chrono(fn, module.chrono)
    _check_stored_input_size(fn, module, input_size)
    dtype = module.param_dtype
    b_x_init = chrono_bias_init(module.bias_init, features, chrono)
    return MinGRUParams(
        w_x=module.param("w_x", two_blocks(module.kernel_init), (input_size, 2 * features), dtype),
        b_x=module.param("b_x", b_x_init, (2 * features,), dtype),
        candidate=check_candidate(fn, module.candidate),
    )


class MinGRUCell(_CarryCell, nn.RNNCellBase):
    """One minGRU step as a linen cell, ``(carry, x) -> (carry, y)`` with ``y = carry``.

    For ``flax.linen.RNN`` and step-by-step use (streaming, sampling). Over whole sequences,
    :class:`MinGRU` is the fast path: it projects all steps at once and runs a (parallel) scan.
    The maths is :func:`gru_jax.mingru_cell`'s; the parameter tree is
    ``{"w_x": (I, 2H), "b_x": (2H,)}``, the fields of :class:`gru_jax.MinGRUParams`, the same as
    :class:`MinGRU`'s, so the two share parameters.

    Attributes:
      features: ``H``, the state size.
      candidate: ``"linear"`` or ``"g"`` (see :func:`gru_jax.mingru`).
      dtype: the compute dtype; ``None`` promotes the parameters', carry's and inputs' dtypes.
        The new carry is cast to the incoming carry's dtype, so the cell is a valid scan body.
      param_dtype: the parameters' dtype.
      kernel_init: called once per block ``[z | h̃]`` with shape ``(I, H)`` (Glorot uniform).
      bias_init: called with ``(2H,)`` (zeros by default).
      carry_init: initializer of the carry in :meth:`initialize_carry` (zeros by default).
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the update-gate bias ``b_z`` (the first
        ``H`` entries of ``b_x``) drawn as ``−log U(1, T_max − 1)``, as
        :func:`gru_jax.init_mingru`'s ``chrono``; checked when the module is called.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from gru_jax.linen import MinGRUCell
      >>> rnn = nn.RNN(MinGRUCell(features=8))
      >>> xs = jnp.ones((4, 10, 3))                                  # (B, T, I)
      >>> variables = rnn.init(jax.random.key(0), xs)
      >>> jax.tree.map(jnp.shape, variables["params"]["cell"])
      {'b_x': (16,), 'w_x': (3, 16)}
      >>> rnn.apply(variables, xs).shape
      (4, 10, 8)
    """

    features: int
    candidate: str = "linear"
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    kernel_init: Initializer = default_kernel_init
    bias_init: Initializer = default_bias_init
    carry_init: Initializer = nn.initializers.zeros_init()
    chrono: int | None = None

    @nn.compact
    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """``carry (*B, H)``, ``inputs (*B, I)`` -> ``(new_carry, new_carry)``."""
        inputs = as_float_array("MinGRUCell", "inputs", inputs)
        params = _declare_mingru_params(self, inputs.shape[-1], self.features)
        return cell_step(mingru_cell, params, carry, inputs, self.dtype)


class MinGRU(nn.Module):
    """A minGRU layer over whole sequences: :func:`gru_jax.mingru` on its parameters.

    One layer, one direction. The parameter tree is ``{"w_x": (I, 2H), "b_x": (2H,)}``, the
    fields of :class:`gru_jax.MinGRUParams`:
    ``MinGRUParams(**variables["params"], candidate=layer.candidate)``.

    Attributes:
      features: ``H``, the state size.
      candidate: ``"linear"`` or ``"g"`` (see :func:`gru_jax.mingru`).
      mode: ``"auto"``, ``"sequential"``, ``"parallel"`` or ``"chunked"``; ``chunk_size`` for the
        last. All give the same results up to rounding.
      return_carry: return ``(ys, h_last)`` instead of ``ys``.
      dtype, param_dtype, kernel_init, bias_init, chrono: as in :class:`MinGRUCell`.
      time_major: ``xs``, ``ys`` and ``resets`` have time first, ``(T, *B, ·)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax.linen import MinGRU
      >>> layer = MinGRU(features=8, mode="parallel", return_carry=True)
      >>> xs = jnp.ones((4, 10, 3))                                  # (B, T, I)
      >>> variables = layer.init(jax.random.key(0), xs)
      >>> sorted(variables["params"])
      ['b_x', 'w_x']
      >>> ys, h_last = layer.apply(variables, xs, seq_lengths=jnp.array([10, 3, 5, 1]))
      >>> ys.shape, h_last.shape
      ((4, 10, 8), (4, 8))
    """

    features: int
    candidate: str = "linear"
    mode: str = "auto"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    return_carry: bool = False
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    kernel_init: Initializer = default_kernel_init
    bias_init: Initializer = default_bias_init
    time_major: bool = False
    chrono: int | None = None

    @nn.compact
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
        features = check_size("MinGRU", "features", self.features)
        xs = as_float_array("MinGRU", "xs", xs)
        if xs.ndim < 2:
            check_xs("MinGRU", xs, -1)  # raises the core's rank error
        params = _declare_mingru_params(self, xs.shape[-1], features)
        params, xs, initial_carry = cast_tree((params, xs, initial_carry), self.dtype)
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


class _MinGRUCellParams(nn.Module):
    """The two parameters of one (layer, direction) of a :class:`MinGRUStack`."""

    features: int
    candidate: str
    param_dtype: DTypeLike
    kernel_init: Initializer
    bias_init: Initializer
    chrono: int | None

    @nn.compact
    def __call__(self, input_size: int) -> MinGRUParams:
        return _declare_mingru_params(self, input_size, self.features, "MinGRUStack")


class _MinGRULayer(nn.Module):
    """One layer of a :class:`MinGRUStack`: ``forward`` and, when bidirectional, ``backward``."""

    num_directions: int
    cell_kwargs: dict[str, Any]

    @nn.compact
    def __call__(self, input_size: int) -> tuple[MinGRUParams, ...]:
        return tuple(
            _MinGRUCellParams(**self.cell_kwargs, name=DIRECTIONS[d])(input_size)
            for d in range(self.num_directions)
        )


class MinGRUStack(nn.Module):
    """A multi-layer, optionally bidirectional minGRU: :func:`gru_jax.mingru_stack` on its
    parameters, with :class:`GRU`'s interface, so that a model swaps one for the other.

    The parameter tree is :class:`GRU`'s layout, ``{"layer_0": {"forward": {"w_x", "b_x"},
    "backward": ...}, ...}``; the carry is ``(L·D, *B, H)`` as there.

    Attributes:
      features: ``H``, the state size of every layer and direction.
      num_layers: ``L``.
      bidirectional: ``D = 2`` when true; the backward direction runs
        :func:`gru_jax.mingru` with ``reverse=True``.
      dropout_rate: dropout between layers (not after the last); its key comes from the
        ``'dropout'`` rng stream when ``deterministic=False``.
      candidate, mode, chunk_size: as in :class:`MinGRU`.
      return_carry: return ``(ys, h_n)`` instead of ``ys``.
      dtype, param_dtype, kernel_init, bias_init, chrono: as in :class:`MinGRUCell`.
      time_major: ``xs``, ``ys`` and ``resets`` have time first, ``(T, *B, ·)``.

    One step at a time (sampling, streaming): :meth:`step`, for a unidirectional stack.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax.linen import MinGRUStack
      >>> layer = MinGRUStack(features=8, num_layers=2, bidirectional=True, return_carry=True)
      >>> xs = jnp.ones((4, 10, 3))                                  # (B, T, I)
      >>> variables = layer.init(jax.random.key(0), xs)
      >>> sorted(variables["params"]["layer_1"]["backward"])
      ['b_x', 'w_x']
      >>> ys, h_n = layer.apply(variables, xs, seq_lengths=jnp.array([10, 3, 5, 1]))
      >>> ys.shape, h_n.shape
      ((4, 10, 16), (4, 4, 8))
    """

    features: int
    num_layers: int = 1
    bidirectional: bool = False
    dropout_rate: float = 0.0
    candidate: str = "linear"
    mode: str = "auto"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    return_carry: bool = False
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    kernel_init: Initializer = default_kernel_init
    bias_init: Initializer = default_bias_init
    time_major: bool = False
    chrono: int | None = None

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
        """``xs (*B, T, I)`` -> ``ys (*B, T, D·H)``, or ``(ys, h_n (L·D, *B, H))``; the other
        arguments as in :class:`GRU`."""
        fn = "MinGRUStack"
        features = check_size(fn, "features", self.features)
        num_layers = check_size(fn, "num_layers", self.num_layers)
        chrono = check_chrono(fn, self.chrono)
        num_directions = 2 if self.bidirectional else 1
        xs = as_float_array(fn, "xs", xs)
        if xs.ndim < 2:
            check_xs(fn, xs, -1)  # raises the core's rank error
        cell_kwargs = {
            "features": features,
            "candidate": check_candidate(fn, self.candidate),
            "param_dtype": self.param_dtype,
            "kernel_init": self.kernel_init,
            "bias_init": self.bias_init,
            "chrono": chrono,
        }
        params = tuple(
            _MinGRULayer(num_directions, cell_kwargs, name=f"layer_{layer}")(
                xs.shape[-1] if layer == 0 else num_directions * features
            )
            for layer in range(num_layers)
        )
        use_dropout = not deterministic and self.dropout_rate > 0 and num_layers > 1
        params, xs, initial_carry = cast_tree((params, xs, initial_carry), self.dtype)
        ys, h_n = mingru_stack(
            params,
            xs,
            initial_carry,
            seq_lengths=seq_lengths,
            resets=resets,
            time_major=self.time_major,
            dropout_rate=self.dropout_rate,
            deterministic=not use_dropout,
            key=self.make_rng("dropout") if use_dropout else None,
            mode=self.mode,
            chunk_size=self.chunk_size,
        )
        return (ys, h_n) if self.return_carry else ys

    def step(self, carry: Array, x: Array) -> Array:
        """One step of the whole stack: :func:`gru_jax.mingru_stack_cell` on this module's
        parameters (a unidirectional stack; no dropout). ``carry (L, *B, H)``, ``x (*B, I)`` ->
        the new carry; call it as ``layer.apply(variables, carry, x, method=MinGRUStack.step)``.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from gru_jax.linen import MinGRUStack
          >>> layer = MinGRUStack(features=8, num_layers=2)
          >>> variables = layer.init(jax.random.key(0), jnp.ones((4, 1, 3)))
          >>> carry = layer.apply(variables, jnp.zeros((2, 4, 8)), jnp.ones((4, 3)),
          ...                     method=MinGRUStack.step)
          >>> carry.shape
          (2, 4, 8)
        """
        tree = self.variables["params"]
        stack = tuple(
            tuple(
                MinGRUParams(**layer[d], candidate=self.candidate) for d in DIRECTIONS if d in layer
            )
            for layer in (tree[f"layer_{i}"] for i in range(len(tree)))
        )
        stack, carry, x = cast_tree((stack, carry, x), self.dtype)
        return mingru_stack_cell(stack, carry, x)
