"""Multi-layer and bidirectional GRUs, laid out and ordered like ``torch.nn.GRU``: the stack
loop of :mod:`gru_jax._base.stack` over :func:`gru_jax.gru`."""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp

from gru_jax._base.init import default_bias_init, default_kernel_init, default_recurrent_init
from gru_jax._base.stack import (
    CellKind,
    StackArgs,
    check_stack,
    init_stack,
    run_stack,
    run_stack_cell,
)
from gru_jax._base.typing import Array, ArrayLike, DTypeLike, Initializer, PRNGKey
from gru_jax._gru.cell import GRUParams, check_params, gru_cell, init_gru
from gru_jax._gru.impl import Impl, check_impl
from gru_jax._gru.sequence import gru

GRUStackParams = tuple[tuple[GRUParams, ...], ...]
"""``params[layer][direction]``: ``L`` layers of ``D`` directions (forward first) each."""


GRU_CELL = CellKind(check_params, "GRUParams", gru_cell, "gru_stack")


def check_gru_stack(fn: str, params: Any) -> tuple[int, int, int, int]:
    """Check a GRU stack's structure and shapes; return ``(L, D, I, H)``."""
    return check_stack(fn, params, check_params, "GRUParams")


def init_gru_stack(
    key: PRNGKey,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    bidirectional: bool = False,
    reset_after: bool = False,
    dtype: DTypeLike = jnp.float32,
    chrono: int | None = None,
    kernel_init: Initializer = default_kernel_init,
    recurrent_init: Initializer = default_recurrent_init,
    bias_init: Initializer = default_bias_init,
) -> GRUStackParams:
    """Initialise a stack of ``num_layers`` GRU layers, each one- or two-directional.

    Layer 0 maps ``I`` features to ``H``; layer ``l > 0`` takes the ``D·H`` concatenated outputs
    of layer ``l - 1``. Each (layer, direction) gets its own key and :func:`init_gru` defaults.

    Args:
      key: a PRNG key.
      input_size: ``I``.
      hidden_size: ``H``.
      num_layers: ``L``, a positive int.
      bidirectional: ``D = 2`` when true, else ``D = 1``.
      reset_after: the variant of every layer (see :func:`gru_cell`).
      dtype: parameter and compute dtype.
      kernel_init, recurrent_init, bias_init: initializers of every layer and direction, as in
        :func:`gru_jax.init_gru` (called once per gate block for the kernels).
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the chrono initialisation of
        :func:`init_gru` for every layer and direction (each drawn with its own key), the
        update-gate block of each ``b_x`` drawn as ``−log U(1, T_max − 1)``.

    Returns:
      A tuple of ``L`` tuples of ``D`` :class:`GRUParams`: ``params[l][d]``, forward first.

    Example:
      >>> import jax
      >>> from gru_jax import init_gru_stack
      >>> params = init_gru_stack(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
      >>> len(params), len(params[0]), params[1][0].w_x.shape
      (2, 2, (16, 24))
    """
    init_layer = functools.partial(
        init_gru,
        hidden_size=hidden_size,
        reset_after=reset_after,
        dtype=dtype,
        chrono=chrono,
        kernel_init=kernel_init,
        recurrent_init=recurrent_init,
        bias_init=bias_init,
    )
    return init_stack(
        "init_gru_stack",
        key,
        input_size,
        hidden_size,
        num_layers,
        bidirectional,
        chrono,
        init_layer,
    )


def gru_stack(
    params: GRUStackParams,
    xs: ArrayLike,
    h0: ArrayLike | None = None,
    *,
    seq_lengths: ArrayLike | None = None,
    resets: ArrayLike | None = None,
    time_major: bool = False,
    dropout_rate: float = 0.0,
    deterministic: bool = True,
    key: PRNGKey | None = None,
    unroll: int | bool = 1,
    remat: bool = False,
    impl: Impl = "auto",
) -> tuple[Array, Array]:
    """Run a multi-layer, optionally bidirectional GRU, like ``torch.nn.GRU(batch_first=True)``.

    The backward direction of a layer runs :func:`gru` with ``reverse=True`` on the same inputs,
    lengths and resets. Dropout (inverted, rate ``dropout_rate``) is applied to the outputs of
    every layer but the last, when ``deterministic`` is false.

    Args:
      params: from :func:`init_gru_stack`: ``params[l][d]``.
      xs: ``(T, I)`` or ``(*B, T, I)`` inputs (``(T, *B, I)`` if ``time_major``).
      h0: ``(L·D, *B, H)`` initial states, ordered like torch (layer-major, forward before
        backward); zeros when ``None``.
      seq_lengths: optional ``(*B,)`` integer lengths, as in :func:`gru`.
      resets: optional ``(*B, T)`` bool (``(T, *B)`` if ``time_major``) segment starts, as in
        :func:`gru`: the same, unshifted flags go to every layer and both directions, so with
        ``h0=None`` and no dropout a packed row gives what each segment gives alone. (In a
        packed row, the forward and backward parts of ``h_n`` come from different segments:
        the last valid one and the first.)
      time_major: ``xs``, ``ys`` and ``resets`` have time first, as in :func:`gru`.
      dropout_rate: probability of zeroing each feature between layers, in ``[0, 1)``.
      deterministic: when true, no dropout is applied.
      key: PRNG key for dropout; required when ``deterministic`` is false and
        ``dropout_rate > 0``.
      unroll, remat, impl: as in :func:`gru`, for every layer and direction.

    Returns:
      ``(ys, h_n)``: ``ys (*B, T, D·H)`` (``(T, *B, D·H)`` if ``time_major``) the last layer's
      outputs (forward features first), ``h_n (L·D, *B, H)`` every layer's and direction's
      final state.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_gru_stack, gru_stack
      >>> params = init_gru_stack(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
      >>> ys, h_n = gru_stack(params, jnp.ones((4, 10, 3)))
      >>> ys.shape, h_n.shape
      ((4, 10, 16), (4, 4, 8))
    """
    args = StackArgs(seq_lengths, resets, time_major, dropout_rate, deterministic, key)
    check_impl("gru_stack", impl)
    layer = functools.partial(gru, unroll=unroll, remat=remat, impl=impl)
    return run_stack("gru_stack", params, xs, h0, args, GRU_CELL, layer)


def gru_stack_cell(params: GRUStackParams, h: ArrayLike, x: ArrayLike) -> Array:
    """One step of a whole unidirectional stack: every layer's new state.

    Layer ``l`` reads the new state of layer ``l − 1`` (layer 0 reads ``x``), exactly as
    :func:`gru_stack` does on a length-1 sequence (without dropout): for acting one step at a
    time with a multi-layer policy, sampling and greedy decoding. A bidirectional stack needs
    the whole sequence and is refused.

    Args:
      params: a unidirectional stack from :func:`init_gru_stack`.
      h: ``(L, *B, H)`` the layers' states.
      x: ``(*B, I)`` the step's input.

    Returns:
      ``(L, *B, H)``, the layers' new states; the top layer's output is the last of them.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_gru_stack, gru_stack, gru_stack_cell
      >>> params = init_gru_stack(jax.random.key(0), 3, 8, num_layers=2)
      >>> x, h = jnp.ones((4, 3)), jnp.zeros((2, 4, 8))
      >>> h_new = gru_stack_cell(params, h, x)
      >>> ys, h_n = gru_stack(params, x[:, None], h)
      >>> h_new.shape, bool(jnp.allclose(h_new, h_n)), bool(jnp.allclose(h_new[-1], ys[:, 0]))
      ((2, 4, 8), True, True)
    """
    return run_stack_cell("gru_stack_cell", params, h, x, GRU_CELL)
