"""Multi-layer and bidirectional minGRUs, laid out like :func:`gru_jax.gru_stack`'s GRUs.

The same conventions as the GRU stack, so that a model can swap one layer for the other: the
parameters are ``params[layer][direction]`` (forward first), the carry is ``(L·D, *B, H)``
(layer-major), layer ``l > 0`` reads the ``D·H`` concatenated outputs of layer ``l − 1``, the
backward direction runs :func:`gru_jax.mingru` with ``reverse=True``, and dropout (inverted)
falls between layers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gru_jax import _checks
from gru_jax._mingru import (
    DEFAULT_CHUNK_SIZE,
    MinGRUParams,
    check_params,
    init_mingru,
    mingru,
    mingru_cell,
)
from gru_jax._scan import batch_and_steps, check_flags, check_time_inputs, check_xs
from gru_jax._stack import check_stack, dropout, dropout_keys_for
from gru_jax._typing import Array, ArrayLike, DTypeLike, PRNGKey

MinGRUStackParams = tuple[tuple[MinGRUParams, ...], ...]
"""``params[layer][direction]``: ``L`` layers of ``D`` directions (forward first) each."""


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
) -> MinGRUStackParams:
    """Initialise a stack of ``num_layers`` minGRU layers, each one- or two-directional.

    Layer 0 maps ``I`` features to ``H``; layer ``l > 0`` takes the ``D·H`` concatenated outputs
    of layer ``l - 1``. Each (layer, direction) gets its own key and :func:`init_mingru`'s
    defaults (``chrono`` as there, drawn per layer and direction).

    Example:
      >>> import jax
      >>> from gru_jax import init_mingru_stack
      >>> params = init_mingru_stack(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
      >>> len(params), len(params[0]), params[1][0].w_x.shape
      (2, 2, (16, 16))
    """
    fn = "init_mingru_stack"
    input_size = _checks.check_size(fn, "input_size", input_size)
    hidden_size = _checks.check_size(fn, "hidden_size", hidden_size)
    num_layers = _checks.check_size(fn, "num_layers", num_layers)
    if not isinstance(bidirectional, bool):
        raise TypeError(f"{fn}: bidirectional must be a bool; got {type(bidirectional).__name__}")
    num_dirs = 2 if bidirectional else 1
    keys = jax.random.split(key, num_layers * num_dirs)
    return tuple(
        tuple(
            init_mingru(
                keys[layer * num_dirs + d],
                input_size if layer == 0 else num_dirs * hidden_size,
                hidden_size,
                candidate=candidate,
                dtype=dtype,
                chrono=chrono,
            )
            for d in range(num_dirs)
        )
        for layer in range(num_layers)
    )


def check_mingru_stack(fn: str, params: MinGRUStackParams) -> tuple[int, int, int, int]:
    """Check a minGRU stack's structure and shapes; return ``(L, D, I, H)``."""
    return check_stack(fn, params, check_params, "MinGRUParams")


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
      dropout_rate: probability of zeroing each feature between layers, in ``[0, 1)``.
      deterministic: when true, no dropout is applied.
      key: PRNG key for dropout; required when ``deterministic`` is false and
        ``dropout_rate > 0``.
      mode, chunk_size: how each layer's recurrence is evaluated, as in :func:`mingru`.

    Returns:
      ``(ys, h_n)``: ``ys (*B, T, D·H)`` (``(T, *B, D·H)`` if ``time_major``) the last layer's
      outputs (forward features first), ``h_n (L·D, *B, H)`` every layer's and direction's
      final state.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gru_jax import init_mingru_stack, mingru_stack
      >>> params = init_mingru_stack(jax.random.key(0), 3, 8, num_layers=2, bidirectional=True)
      >>> ys, h_n = mingru_stack(params, jnp.ones((4, 10, 3)), seq_lengths=jnp.array([10, 3, 5, 1]))
      >>> ys.shape, h_n.shape
      ((4, 10, 16), (4, 4, 8))
    """
    fn = "mingru_stack"
    num_layers, num_dirs, input_size, hidden = check_mingru_stack(fn, params)
    check_flags(fn, time_major=time_major)
    xs = check_xs(fn, xs, input_size, time_major)
    batch, steps = batch_and_steps(xs, time_major)
    if h0 is not None:
        h0 = _checks.as_float_array(fn, "h0", h0)
        _checks.check_shape(fn, "h0", h0, (num_layers * num_dirs, *batch, hidden), "(L·D, *B, H)")
    seq_lengths, resets = check_time_inputs(fn, batch, steps, seq_lengths, resets, time_major)
    dropout_keys = dropout_keys_for(fn, dropout_rate, deterministic, key, num_layers)

    inputs, finals = xs, []
    for layer, directions in enumerate(params):
        outputs = []
        for d, p in enumerate(directions):
            ys, h_last = mingru(
                p,
                inputs,
                None if h0 is None else h0[layer * num_dirs + d],
                seq_lengths=seq_lengths,
                resets=resets,
                reverse=d == 1,
                time_major=time_major,
                mode=mode,
                chunk_size=chunk_size,
            )
            outputs.append(ys)
            finals.append(h_last)
        inputs = outputs[0] if num_dirs == 1 else jnp.concatenate(outputs, axis=-1)
        if dropout_keys is not None and layer < num_layers - 1:
            inputs = dropout(dropout_keys[layer], dropout_rate, inputs)
    return inputs, jnp.stack(finals)


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
    fn = "mingru_stack_cell"
    num_layers, num_dirs, input_size, hidden = check_mingru_stack(fn, params)
    if num_dirs != 1:
        raise ValueError(
            f"{fn}: params must be a unidirectional stack (1 direction per layer); got "
            f"{num_dirs} directions (a bidirectional layer needs the whole sequence: "
            "mingru_stack)"
        )
    x = _checks.check_step_input(fn, x, input_size)
    h = _checks.as_float_array(fn, "h", h)
    _checks.check_shape(fn, "h", h, (num_layers, *x.shape[:-1], hidden), "(L, *B, H)")
    states, inputs = [], x
    for layer, (p,) in enumerate(params):
        inputs = mingru_cell(p, h[layer], inputs)
        states.append(inputs)
    return jnp.stack(states)
