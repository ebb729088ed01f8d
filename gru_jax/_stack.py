"""Multi-layer and bidirectional GRUs, laid out and ordered like ``torch.nn.GRU``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gru_jax import _checks
from gru_jax._cell import GRUParams, check_params, gru_cell, init_gru
from gru_jax._scan import batch_and_steps, check_flags, check_time_inputs, check_xs, gru
from gru_jax._typing import Array, ArrayLike, DTypeLike, PRNGKey

GRUStackParams = tuple[tuple[GRUParams, ...], ...]
"""``params[layer][direction]``: ``L`` layers of ``D`` directions (forward first) each."""


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
    fn = "init_gru_stack"
    input_size = _checks.check_size(fn, "input_size", input_size)
    hidden_size = _checks.check_size(fn, "hidden_size", hidden_size)
    num_layers = _checks.check_size(fn, "num_layers", num_layers)
    if not isinstance(bidirectional, bool):
        raise TypeError(f"{fn}: bidirectional must be a bool; got {type(bidirectional).__name__}")
    chrono = _checks.check_chrono(fn, chrono)
    num_dirs = 2 if bidirectional else 1
    keys = jax.random.split(key, num_layers * num_dirs)
    return tuple(
        tuple(
            init_gru(
                keys[layer * num_dirs + d],
                input_size if layer == 0 else num_dirs * hidden_size,
                hidden_size,
                reset_after=reset_after,
                dtype=dtype,
                chrono=chrono,
            )
            for d in range(num_dirs)
        )
        for layer in range(num_layers)
    )


def check_stack(
    fn: str,
    params: Any,
    check: Callable[[str, Any, str], tuple[int, int]] = check_params,
    kind: str = "GRUParams",
) -> tuple[int, int, int, int]:
    """Check a stack's structure and shapes; return ``(L, D, I, H)``. ``check`` checks one
    layer's and direction's parameters of type ``kind`` (a GRU's by default, or a minGRU's)."""
    if not isinstance(params, tuple | list) or not params:
        raise TypeError(
            f"{fn}: params must be a non-empty tuple of layers, each a tuple of {kind} "
            f"(as init_{'gru' if kind == 'GRUParams' else 'mingru'}_stack returns); "
            f"got {type(params).__name__}"
        )
    num_dirs = None
    input_size = hidden = None
    for layer, directions in enumerate(params):
        if not isinstance(directions, tuple | list) or len(directions) not in (1, 2):
            raise ValueError(
                f"{fn}: params[{layer}] must be a tuple of 1 or 2 {kind} (directions); "
                f"got {type(directions).__name__} of length "
                f"{len(directions) if isinstance(directions, tuple | list) else '-'}"
            )
        if num_dirs is None:
            num_dirs = len(directions)
        elif len(directions) != num_dirs:
            raise ValueError(
                f"{fn}: every layer must have {num_dirs} direction(s), as layer 0 has; "
                f"params[{layer}] has {len(directions)}"
            )
        for d, p in enumerate(directions):
            i, h = check(fn, p, f"params[{layer}][{d}]")
            if hidden is None:
                input_size, hidden = i, h
            expected_in = input_size if layer == 0 else num_dirs * hidden
            if h != hidden or i != expected_in:
                raise ValueError(
                    f"{fn}: params[{layer}][{d}] must map {expected_in} inputs to {hidden} "
                    f"hidden features; got input_size={i}, hidden_size={h}"
                )
    # Set by the first (layer, direction): params and every layer are non-empty.
    assert num_dirs is not None and input_size is not None and hidden is not None
    return len(params), num_dirs, input_size, hidden


def dropout(key: PRNGKey, rate: float, x: Array) -> Array:
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)


def dropout_keys_for(
    fn: str, dropout_rate: float, deterministic: bool, key: PRNGKey | None, num_layers: int
) -> Array | None:
    """Check a stack's dropout arguments; one key per layer when dropout applies, else None."""
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, int | float):
        raise TypeError(f"{fn}: dropout_rate must be a float; got {type(dropout_rate).__name__}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"{fn}: dropout_rate must lie in [0, 1); got {dropout_rate}")
    use_dropout = not deterministic and dropout_rate > 0.0
    if use_dropout and key is None:
        raise ValueError(
            f"{fn}: dropout_rate={dropout_rate} with deterministic=False needs a PRNG key; "
            "got key=None"
        )
    return jax.random.split(key, num_layers) if use_dropout and key is not None else None


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
      unroll, remat: as in :func:`gru`.

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
    fn = "gru_stack"
    num_layers, num_dirs, input_size, hidden = check_stack(fn, params)
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
            ys, h_last = gru(
                p,
                inputs,
                None if h0 is None else h0[layer * num_dirs + d],
                seq_lengths=seq_lengths,
                resets=resets,
                reverse=d == 1,
                time_major=time_major,
                unroll=unroll,
                remat=remat,
            )
            outputs.append(ys)
            finals.append(h_last)
        inputs = outputs[0] if num_dirs == 1 else jnp.concatenate(outputs, axis=-1)
        if dropout_keys is not None and layer < num_layers - 1:
            inputs = dropout(dropout_keys[layer], dropout_rate, inputs)
    return inputs, jnp.stack(finals)


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
    fn = "gru_stack_cell"
    num_layers, num_dirs, input_size, hidden = check_stack(fn, params)
    if num_dirs != 1:
        raise ValueError(
            f"{fn}: params must be a unidirectional stack (1 direction per layer); got "
            f"{num_dirs} directions (a bidirectional layer needs the whole sequence: gru_stack)"
        )
    x = _checks.check_step_input(fn, x, input_size)
    h = _checks.as_float_array(fn, "h", h)
    _checks.check_shape(fn, "h", h, (num_layers, *x.shape[:-1], hidden), "(L, *B, H)")
    states, inputs = [], x
    for layer, (p,) in enumerate(params):
        inputs = gru_cell(p, h[layer], inputs)
        states.append(inputs)
    return jnp.stack(states)
