"""Multi-layer and bidirectional minGRUs, laid out like :func:`gru_jax.gru_stack`'s GRUs.

The same conventions as the GRU stack, so that a model can swap one layer for the other: the
parameters are ``params[layer][direction]`` (forward first), the carry is ``(L·D, *B, H)``
(layer-major), layer ``l > 0`` reads the ``D·H`` concatenated outputs of layer ``l − 1``, the
backward direction runs :func:`gru_jax.mingru` with ``reverse=True``, and dropout (inverted)
falls between layers.
"""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp

from gru_jax._base.init import default_bias_init, default_kernel_init
from gru_jax._base.linear_scan import DEFAULT_CHUNK_SIZE
from gru_jax._base.stack import (
    CellKind,
    StackArgs,
    check_stack,
    init_stack,
    run_stack,
    run_stack_cell,
)
from gru_jax._base.typing import Array, ArrayLike, DTypeLike, Initializer, PRNGKey
from gru_jax._mingru.cell import MinGRUParams, check_params, init_mingru, mingru_cell
from gru_jax._mingru.sequence import mingru

MinGRUStackParams = tuple[tuple[MinGRUParams, ...], ...]
"""``params[layer][direction]``: ``L`` layers of ``D`` directions (forward first) each."""


MINGRU_CELL = CellKind(check_params, "MinGRUParams", mingru_cell, "mingru_stack")


def check_mingru_stack(fn: str, params: Any) -> tuple[int, int, int, int]:
    """Check a minGRU stack's structure and shapes; return ``(L, D, I, H)``."""
    return check_stack(fn, params, check_params, "MinGRUParams")


def init_mingru_stack(
    key: PRNGKey,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    bidirectional: bool = False,
    candidate: str = "linear",
    dtype: DTypeLike = jnp.float32,
    chrono: int | None = None,
    kernel_init: Initializer = default_kernel_init,
    bias_init: Initializer = default_bias_init,
) -> MinGRUStackParams:
    """Initialise a stack of ``num_layers`` minGRU layers, each one- or two-directional.

    Layer 0 maps ``I`` features to ``H``; layer ``l > 0`` takes the ``D·H`` concatenated outputs
    of layer ``l - 1``. Each (layer, direction) gets its own key and :func:`gru_jax.init_mingru`.

    Args:
      key: a PRNG key.
      input_size: ``I``.
      hidden_size: ``H``.
      num_layers: ``L``, a positive int.
      bidirectional: ``D = 2`` when true, else ``D = 1``.
      candidate: ``"linear"`` or ``"g"``, every layer's candidate (see :func:`gru_jax.mingru`).
      dtype: parameter dtype.
      chrono: ``None``, or ``T_max``, an int ``>= 3``: the chrono initialisation of
        :func:`gru_jax.init_mingru` for every layer and direction (each drawn with its own key).
      kernel_init, bias_init: initializers of every layer and direction, as in
        :func:`gru_jax.init_mingru`.

    Returns:
      A tuple of ``L`` tuples of ``D`` :class:`gru_jax.MinGRUParams`: ``params[l][d]``, forward
      first.

    Example:
      >>> import jax
      >>> from gru_jax import init_mingru_stack
      >>> params = init_mingru_stack(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
      >>> len(params), len(params[0]), params[1][0].w_x.shape
      (2, 2, (16, 16))
    """
    init_layer = functools.partial(
        init_mingru,
        hidden_size=hidden_size,
        candidate=candidate,
        dtype=dtype,
        chrono=chrono,
        kernel_init=kernel_init,
        bias_init=bias_init,
    )
    return init_stack(
        "init_mingru_stack",
        key,
        input_size,
        hidden_size,
        num_layers,
        bidirectional,
        chrono,
        init_layer,
    )


def mingru_stack(
    params: MinGRUStackParams,
    xs: ArrayLike,
    h0: ArrayLike | None = None,
    *,
    seq_lengths: ArrayLike | None = None,
    resets: ArrayLike | None = None,
    time_major: bool = False,
    dropout_rate: float = 0.0,
    deterministic: bool = True,
    key: PRNGKey | None = None,
    mode: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[Array, Array]:
    """Run a multi-layer, optionally bidirectional minGRU: :func:`gru_jax.gru_stack`'s layout.

    Every layer and direction is :func:`mingru` (the backward one with ``reverse=True``) on the
    same lengths and resets; dropout (inverted, rate ``dropout_rate``) is applied to the
    outputs of every layer but the last, when ``deterministic`` is false.

    Args:
      params: from :func:`init_mingru_stack`: ``params[l][d]``.
      xs: ``(T, I)`` or ``(*B, T, I)`` inputs (``(T, *B, I)`` if ``time_major``).
      h0: ``(L·D, *B, H)`` initial states (layer-major, forward before backward); zeros when
        ``None``.
      seq_lengths, resets, time_major: as in :func:`mingru`.
      dropout_rate, deterministic, key: dropout between the layers, as in
        :func:`gru_jax.gru_stack`.
      mode, chunk_size: how each layer's recurrence is evaluated, as in :func:`mingru`.

    Returns:
      ``(ys, h_n)`` as :func:`gru_jax.gru_stack` returns them: the last layer's outputs
      ``(*B, T, D·H)`` and every layer's and direction's final state ``(L·D, *B, H)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_mingru_stack, mingru_stack
      >>> params = init_mingru_stack(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
      >>> ys, h_n = mingru_stack(params, jnp.ones((4, 10, 3)), seq_lengths=jnp.array([10, 3, 5, 1]))
      >>> ys.shape, h_n.shape
      ((4, 10, 16), (4, 4, 8))
    """
    args = StackArgs(seq_lengths, resets, time_major, dropout_rate, deterministic, key)
    layer = functools.partial(mingru, mode=mode, chunk_size=chunk_size)
    return run_stack("mingru_stack", params, xs, h0, args, MINGRU_CELL, layer)


def mingru_stack_cell(params: MinGRUStackParams, h: ArrayLike, x: ArrayLike) -> Array:
    """One step of a whole unidirectional minGRU stack: every layer's new state.

    Layer ``l`` reads the new state of layer ``l − 1`` (layer 0 reads ``x``), exactly as
    :func:`mingru_stack` on a length-1 sequence (without dropout), for streaming and sampling.

    Args:
      params: a unidirectional stack from :func:`init_mingru_stack`.
      h: ``(L, *B, H)`` the layers' states.
      x: ``(*B, I)`` the step's input.

    Returns:
      ``(L, *B, H)``, the layers' new states; the top layer's output is the last of them.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_mingru_stack, mingru_stack, mingru_stack_cell
      >>> params = init_mingru_stack(jax.random.key(0), 3, 8, num_layers=2)
      >>> x, h = jnp.ones((4, 3)), jnp.zeros((2, 4, 8))
      >>> h_new = mingru_stack_cell(params, h, x)
      >>> ys, h_n = mingru_stack(params, x[:, None], h)
      >>> h_new.shape, bool(jnp.allclose(h_new, h_n)), bool(jnp.allclose(h_new[-1], ys[:, 0]))
      ((2, 4, 8), True, True)
    """
    return run_stack_cell("mingru_stack_cell", params, h, x, MINGRU_CELL)
