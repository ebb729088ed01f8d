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

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax.numpy as jnp

from gru_jax._base.extras import missing_extra

try:
    import flax.linen as nn
except ImportError as error:
    raise missing_extra("gru_jax.linen", "flax", error) from error

from gru_jax._base.checks import as_float_array, check_chrono, check_size
from gru_jax._base.init import default_bias_init, default_kernel_init, default_recurrent_init
from gru_jax._base.linear_scan import DEFAULT_CHUNK_SIZE
from gru_jax._base.typing import Array, DTypeLike, Initializer
from gru_jax._flax.linen_parts import (
    CarryCell,
    SequenceModule,
    StackModule,
    check_inputs,
    declare_gru_params,
    declare_mingru_params,
)
from gru_jax._flax.tree import (
    CallArgs,
    apply_sequence,
    cell_step,
    mingru_tree_to_params,
    params_to_tree,
    tree_to_params,
)
from gru_jax._gru.cell import gru_cell
from gru_jax._gru.stack import gru_stack, gru_stack_cell
from gru_jax._mingru.cell import check_candidate, mingru_cell
from gru_jax._mingru.sequence import mingru
from gru_jax._mingru.stack import mingru_stack, mingru_stack_cell

__all__ = [
    "GRU",
    "GRUCell",
    "MinGRU",
    "MinGRUCell",
    "MinGRUStack",
    "params_to_tree",
    "tree_to_params",
]


class GRUCell(CarryCell, nn.RNNCellBase):
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
      kernel_init, recurrent_init: called once per gate block with shapes ``(I, H)`` and
        ``(H, H)`` (Glorot uniform and orthogonal by default), as :func:`gru_jax.init_gru`'s.
      bias_init: called with ``(3H,)`` for ``b_x`` and ``b_h`` (zeros by default).
      carry_init: initializer of the carry in :meth:`initialize_carry` (zeros by default).
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the update-gate block of ``b_x`` drawn
        as ``−log U(1, T_max − 1)``, as :func:`gru_jax.init_gru`'s ``chrono`` (the rest of
        ``b_x`` from ``bias_init``, unchanged); checked when the module is called.
      recurrent_kernel_init: the old spelling of ``recurrent_init``; deprecated (it warns), and
        used instead of ``recurrent_init`` when given.

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
    recurrent_init: Initializer = default_recurrent_init
    bias_init: Initializer = default_bias_init
    carry_init: Initializer = nn.initializers.zeros_init()
    chrono: int | None = None
    recurrent_kernel_init: Initializer | None = None

    @nn.compact
    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """``carry (*B, H)``, ``inputs (*B, I)`` -> ``(new_carry, new_carry)``."""
        chrono = check_chrono("GRUCell", self.chrono)
        inputs = as_float_array("GRUCell", "inputs", inputs)
        params = declare_gru_params("GRUCell", self, inputs.shape[-1], self.features, chrono)
        return cell_step(gru_cell, params, carry, inputs, self.dtype)


class GRU(StackModule):
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
      dtype, param_dtype, kernel_init, recurrent_init, bias_init: as in :class:`GRUCell`.
      time_major: ``xs``, ``ys`` and ``resets`` have time first, ``(T, *B, ·)``, as in
        ``flax.linen.RNN``; the scans read and write that layout in place.
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the chrono initialisation of every
        layer's and direction's update-gate bias, as in :class:`GRUCell` and
        :func:`gru_jax.init_gru_stack`.
      recurrent_kernel_init: the old spelling of ``recurrent_init``; deprecated (it warns), and
        used instead of ``recurrent_init`` when given.
      impl: which implementation runs the recurrence: ``"xla"`` (a ``lax.scan``), ``"pallas"``
        (a fused Pallas kernel: Triton on NVIDIA GPUs, interpreted on CPU), or ``"auto"``
        (chosen per platform and shape; ``"xla"`` wherever nothing was measured); passed to
        :func:`gru_jax.gru_stack` (:meth:`step` is one step and has no such choice).

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
    unroll: int | bool = 1
    remat: bool = False
    return_carry: bool = False
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    kernel_init: Initializer = default_kernel_init
    recurrent_init: Initializer = default_recurrent_init
    bias_init: Initializer = default_bias_init
    time_major: bool = False
    chrono: int | None = None
    recurrent_kernel_init: Initializer | None = None
    impl: Literal["auto", "xla", "pallas"] = "auto"  # last: the earlier fields keep their places

    @nn.nowrap
    def _cell_options(self) -> dict[str, Any]:
        return {
            "cell": "gru",
            "reset_after": self.reset_after,
            "recurrent_init": self.recurrent_init,
            "recurrent_kernel_init": self.recurrent_kernel_init,
        }

    @nn.nowrap
    def _stack_function(self) -> Callable[..., tuple[Array, Array]]:
        return functools.partial(gru_stack, unroll=self.unroll, remat=self.remat, impl=self.impl)

    @nn.nowrap
    def _stack_cell(self, tree: Any) -> tuple[Any, Callable[[Any, Array, Array], Array]]:
        return tree_to_params(tree, reset_after=self.reset_after), gru_stack_cell


# ----------------------------------------------------------------------------- minGRU


class MinGRUCell(CarryCell, nn.RNNCellBase):
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
        params = declare_mingru_params("MinGRUCell", self, inputs.shape[-1], self.features)
        return cell_step(mingru_cell, params, carry, inputs, self.dtype)


class MinGRU(SequenceModule):
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

    The call is the stacks' (:class:`GRU`, :class:`MinGRUStack`): ``layer(xs, *, seq_lengths,
    resets, initial_carry, deterministic)``, ``initial_carry`` the ``h0 (*B, H)`` and
    ``deterministic`` without effect (one layer has no dropout).

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

    @nn.nowrap
    def _sequence(self, xs: Array, call: CallArgs) -> Array | tuple[Array, Array]:
        features = check_size("MinGRU", "features", self.features)
        xs = check_inputs("MinGRU", xs)
        params = declare_mingru_params("MinGRU", self, xs.shape[-1], features)
        # one layer: no dropout, call.deterministic has no effect
        return apply_sequence(
            mingru, params, xs, call, self, mode=self.mode, chunk_size=self.chunk_size
        )


class MinGRUStack(StackModule):
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

    @nn.nowrap
    def _cell_options(self) -> dict[str, Any]:
        return {"cell": "mingru", "candidate": check_candidate("MinGRUStack", self.candidate)}

    @nn.nowrap
    def _stack_function(self) -> Callable[..., tuple[Array, Array]]:
        return functools.partial(mingru_stack, mode=self.mode, chunk_size=self.chunk_size)

    @nn.nowrap
    def _stack_cell(self, tree: Any) -> tuple[Any, Callable[[Any, Array, Array], Array]]:
        return mingru_tree_to_params(tree, candidate=self.candidate), mingru_stack_cell
