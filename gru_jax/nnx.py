"""Flax NNX wrappers: :class:`GRUCell` for ``flax.nnx.RNN`` and a ``torch.nn.GRU``-like
:class:`GRU` layer. Both hold ``nnx.Param``\\ s and call the pure functions of :mod:`gru_jax`.

Parameter trees (``nnx.state(module, nnx.Param)``, as a pure dict):

* ``GRUCell``: ``{"w_x": (I, 3H), "w_h": (H, 3H), "b_x": (3H,), "b_h": (3H,)}``; the property
  ``cell.gru_params`` gives them as a :class:`gru_jax.GRUParams`, and
  ``cell.load_gru_params(params)`` loads one.
* ``GRU``: ``{"layer_0": {"forward": cell_tree, "backward": cell_tree}, "layer_1": ...}``
  (``"backward"`` only when bidirectional); ``layer.gru_params`` is the ``params[layer][direction]``
  stack of :func:`gru_jax.gru_stack`, and ``layer.load_gru_params(stack)`` loads one.
* ``MinGRUCell``, ``MinGRU``: ``{"w_x": (I, 2H), "b_x": (2H,)}`` (``mingru_params``,
  ``load_mingru_params``); ``MinGRUStack``: ``GRU``'s layout with those leaves, its
  ``mingru_params`` the stack of :func:`gru_jax.mingru_stack`.

The same layout as :mod:`gru_jax.linen`, so :func:`params_to_tree` and :func:`tree_to_params`
serve both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax.numpy as jnp

from gru_jax._base.extras import missing_extra

try:
    from flax import nnx
    from flax.nnx.nn.recurrent import RNNCellBase
except ImportError as error:
    raise missing_extra("gru_jax.nnx", "flax", error) from error

from gru_jax._base.checks import as_float_array, check_size
from gru_jax._base.init import default_bias_init, default_kernel_init, default_recurrent_init
from gru_jax._base.linear_scan import DEFAULT_CHUNK_SIZE, check_mode
from gru_jax._base.typing import Array, DTypeLike, Initializer
from gru_jax._flax.deprecations import resolve_recurrent_init
from gru_jax._flax.nnx_parts import (
    CarryCell,
    GRUParamsModule,
    MinGRUParamsModule,
    SequenceCall,
    Stack,
)
from gru_jax._flax.tree import (
    CallArgs,
    apply_sequence,
    cell_step,
    params_to_tree,
    tree_to_params,
)
from gru_jax._gru.cell import gru_cell
from gru_jax._gru.stack import GRUStackParams, check_gru_stack, gru_stack, gru_stack_cell
from gru_jax._mingru.cell import mingru_cell
from gru_jax._mingru.sequence import mingru
from gru_jax._mingru.stack import (
    MinGRUStackParams,
    check_mingru_stack,
    mingru_stack,
    mingru_stack_cell,
)

__all__ = [
    "GRU",
    "GRUCell",
    "MinGRU",
    "MinGRUCell",
    "MinGRUStack",
    "params_to_tree",
    "tree_to_params",
]


class GRUCell(GRUParamsModule, CarryCell, RNNCellBase):
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
      kernel_init, recurrent_init: called once per gate block with shapes ``(I, H)`` and
        ``(H, H)`` (Glorot uniform and orthogonal by default), as :func:`gru_jax.init_gru`'s.
      bias_init: called with ``(3H,)`` for ``b_x`` and ``b_h`` (zeros by default).
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the update-gate block of ``b_x`` drawn
        as ``−log U(1, T_max − 1)``, as :func:`gru_jax.init_gru`'s ``chrono`` (the rest of
        ``b_x`` from ``bias_init``, unchanged).
      recurrent_kernel_init: the old spelling of ``recurrent_init``; deprecated (it warns), and
        used instead of ``recurrent_init`` when given.
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
        recurrent_init: Initializer = default_recurrent_init,
        bias_init: Initializer = default_bias_init,
        chrono: int | None = None,
        recurrent_kernel_init: Initializer | None = None,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            in_features,
            hidden_features,
            reset_after=reset_after,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            recurrent_init=resolve_recurrent_init("GRUCell", recurrent_init, recurrent_kernel_init),
            bias_init=bias_init,
            chrono=chrono,
            rngs=rngs,
        )
        self.dtype, self.param_dtype = dtype, param_dtype

    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """``carry (*B, H)``, ``inputs (*B, I)`` -> ``(new_carry, new_carry)``."""
        inputs = as_float_array("GRUCell", "inputs", inputs)
        return cell_step(gru_cell, self.gru_params, carry, inputs, self.dtype)


class GRU(Stack):
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
      dtype, param_dtype, kernel_init, recurrent_init, bias_init: as in :class:`GRUCell`.
      time_major: ``xs``, ``ys`` and ``resets`` have time first, ``(T, *B, ·)``, as in
        ``flax.nnx.RNN``; the scans read and write that layout in place.
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the chrono initialisation of every
        layer's and direction's update-gate bias, as in :class:`GRUCell` and
        :func:`gru_jax.init_gru_stack`.
      recurrent_kernel_init: the old spelling of ``recurrent_init``; deprecated (it warns), and
        used instead of ``recurrent_init`` when given.
      impl: which implementation runs the recurrence: ``"xla"`` (a ``lax.scan``), ``"pallas"``
        (a fused Pallas kernel: Triton on NVIDIA GPUs, interpreted on CPU), or ``"auto"``
        (chosen per platform and shape; ``"xla"`` wherever nothing was measured); passed to
        :func:`gru_jax.gru_stack` (:meth:`step` is one step and has no such choice).
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
        unroll: int | bool = 1,
        remat: bool = False,
        return_carry: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        recurrent_init: Initializer = default_recurrent_init,
        bias_init: Initializer = default_bias_init,
        time_major: bool = False,
        chrono: int | None = None,
        recurrent_kernel_init: Initializer | None = None,
        impl: Literal["auto", "xla", "pallas"] = "auto",
        rngs: nnx.Rngs,
    ):
        super().__init__(
            "GRU",
            GRUParamsModule,
            in_features,
            hidden_features,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout_rate=dropout_rate,
            return_carry=return_carry,
            dtype=dtype,
            time_major=time_major,
            chrono=chrono,
            rngs=rngs,
            reset_after=reset_after,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            recurrent_init=resolve_recurrent_init("GRU", recurrent_init, recurrent_kernel_init),
            bias_init=bias_init,
        )
        self.unroll, self.remat, self.impl = unroll, remat, impl

    @property
    def gru_params(self) -> GRUStackParams:
        """The parameters as the ``params[layer][direction]`` of :func:`gru_jax.gru_stack`."""
        return tuple(tuple(cell.gru_params for cell in layer) for layer in self._cells())

    def load_gru_params(self, params: GRUStackParams) -> None:
        """Load a ``params[layer][direction]`` stack of the same structure into the module."""
        self._load_stack("GRU.load_gru_params", params, check_gru_stack, "load_gru_params")

    def _stack_function(self) -> Callable[..., tuple[Array, Array]]:
        return functools.partial(gru_stack, unroll=self.unroll, remat=self.remat, impl=self.impl)

    def _stack_params(self) -> GRUStackParams:
        return self.gru_params

    def _stack_cell(self, params: Any, h: Array, x: Array) -> Array:
        return gru_stack_cell(params, h, x)


# ----------------------------------------------------------------------------- minGRU


class MinGRUCell(MinGRUParamsModule, CarryCell, RNNCellBase):
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


class MinGRU(SequenceCall, MinGRUParamsModule):
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

    The call is the stacks' (:class:`GRU`, :class:`MinGRUStack`): ``layer(xs, *, seq_lengths,
    resets, initial_carry, deterministic)``, ``initial_carry`` the ``h0 (*B, H)`` and
    ``deterministic`` without effect (one layer has no dropout).

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

    def _sequence(self, xs: Array, call: CallArgs) -> Array | tuple[Array, Array]:
        # one layer: no dropout, call.deterministic has no effect
        options = {"mode": self.mode, "chunk_size": self.chunk_size}
        return apply_sequence(mingru, self.mingru_params, xs, call, self, **options)


class MinGRUStack(Stack):
    """A multi-layer, optionally bidirectional minGRU: :func:`gru_jax.mingru_stack` on its
    parameters, with :class:`GRU`'s interface, so that a model swaps one for the other; the NNX
    twin of :class:`gru_jax.linen.MinGRUStack`.

    The parameters are :class:`GRU`'s layout, ``{"layer_0": {"forward": {"w_x", "b_x"},
    "backward": ...}, ...}``, also as ``layer.mingru_params`` (the ``params[layer][direction]`` of
    :func:`gru_jax.mingru_stack`), loaded with ``layer.load_mingru_params(stack)``; the carry is
    ``(L·D, *B, H)``. Dropout follows NNX's modes, as in :class:`GRU`.

    Args:
      in_features: ``I``.
      hidden_features: ``H``, the state size of every layer and direction.
      num_layers: ``L``.
      bidirectional: ``D = 2`` when true; the backward direction runs :func:`gru_jax.mingru`
        with ``reverse=True``.
      dropout_rate: dropout between layers (not after the last).
      candidate, mode, chunk_size: as in :class:`MinGRU`.
      return_carry: return ``(ys, h_n)`` instead of ``ys``.
      dtype, param_dtype, kernel_init, bias_init, chrono: as in :class:`MinGRUCell`.
      time_major: ``xs``, ``ys`` and ``resets`` have time first, ``(T, *B, ·)``.
      rngs: an ``nnx.Rngs``: ``params`` for initialisation, ``dropout`` for dropout masks.

    One step at a time (sampling, streaming): :meth:`step`, for a unidirectional stack.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from gru_jax.nnx import MinGRUStack
      >>> layer = MinGRUStack(3, 8, num_layers=2, bidirectional=True, return_carry=True,
      ...                     rngs=nnx.Rngs(0))
      >>> ys, h_n = layer(jnp.ones((4, 10, 3)), seq_lengths=jnp.array([10, 3, 5, 1]))
      >>> ys.shape, h_n.shape
      ((4, 10, 16), (4, 4, 8))
      >>> sorted(nnx.to_pure_dict(nnx.state(layer, nnx.Param))["layer_1"]["backward"])
      ['b_x', 'w_x']
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout_rate: float = 0.0,
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
            "MinGRUStack",
            MinGRUParamsModule,
            in_features,
            hidden_features,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout_rate=dropout_rate,
            return_carry=return_carry,
            dtype=dtype,
            time_major=time_major,
            chrono=chrono,
            rngs=rngs,
            candidate=candidate,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            bias_init=bias_init,
        )
        self.mode = check_mode("MinGRUStack", mode)
        self.chunk_size = check_size("MinGRUStack", "chunk_size", chunk_size)

    @property
    def mingru_params(self) -> MinGRUStackParams:
        """The parameters as the ``params[layer][direction]`` of :func:`gru_jax.mingru_stack`."""
        return tuple(tuple(cell.mingru_params for cell in layer) for layer in self._cells())

    def load_mingru_params(self, params: MinGRUStackParams) -> None:
        """Load a ``params[layer][direction]`` minGRU stack of the same structure."""
        fn = "MinGRUStack.load_mingru_params"
        self._load_stack(fn, params, check_mingru_stack, "load_mingru_params")

    def _stack_function(self) -> Callable[..., tuple[Array, Array]]:
        return functools.partial(mingru_stack, mode=self.mode, chunk_size=self.chunk_size)

    def _stack_params(self) -> MinGRUStackParams:
        return self.mingru_params

    def _stack_cell(self, params: Any, h: Array, x: Array) -> Array:
        return mingru_stack_cell(params, h, x)
