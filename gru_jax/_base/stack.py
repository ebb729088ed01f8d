"""The layer × direction loop that every stack runs, whatever its cell.

A stack's parameters are ``params[layer][direction]`` (forward first); layer ``l > 0`` reads the
``D·H`` concatenated outputs of layer ``l − 1``; the backward direction runs the layer function
with ``reverse=True`` on the same lengths and resets; the carry is ``(L·D, *B, H)``, layer-major;
dropout (inverted) falls between layers. :func:`gru_jax.gru_stack` and
:func:`gru_jax.mingru_stack` are this loop over :func:`gru_jax.gru` and :func:`gru_jax.mingru`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

import jax
import jax.numpy as jnp

from gru_jax._base import checks
from gru_jax._base.sequence import check_sequence
from gru_jax._base.typing import Array, ArrayLike, PRNGKey

_P = TypeVar("_P")
CheckLayer = Callable[[str, Any, str], tuple[int, int]]  # (fn, params, name) -> (I, H)


class CellKind(NamedTuple):
    """What the stack loop needs of a cell: its parameters' check (``(fn, params, name) ->
    (I, H)``) and type name (``"GRUParams"``), its one-step function, and the name of the
    stack function over whole sequences (for the one-step stack's refusal of two directions)."""

    check: CheckLayer
    kind: str
    step: Callable[[Any, Array, Array], Array]
    sequence: str


class StackArgs(NamedTuple):
    """The arguments of :func:`gru_jax.gru_stack` and :func:`gru_jax.mingru_stack` that the loop
    takes as they are."""

    seq_lengths: ArrayLike | None
    resets: ArrayLike | None
    time_major: bool
    dropout_rate: float
    deterministic: bool
    key: PRNGKey | None


class RunLayer(Protocol):
    """One layer and direction over a sequence: :func:`gru_jax.gru` or :func:`gru_jax.mingru`
    with the stack's other options bound."""

    def __call__(
        self,
        params: Any,
        xs: Array,
        h0: Array | None,
        *,
        seq_lengths: Array | None,
        resets: Array | None,
        reverse: bool,
        time_major: bool,
    ) -> tuple[Array, Array]: ...


def init_stack(
    fn: str,
    key: PRNGKey,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    bidirectional: bool,
    chrono: int | None,
    init_layer: Callable[[PRNGKey, int], _P],
) -> tuple[tuple[_P, ...], ...]:
    """``num_layers`` layers of one or two directions, each from ``init_layer(key, in_size)``
    with its own key; layer 0 takes ``input_size`` features, the others ``D·hidden_size``.
    ``chrono`` is only checked here (``init_layer`` applies it)."""
    input_size = checks.check_size(fn, "input_size", input_size)
    hidden_size = checks.check_size(fn, "hidden_size", hidden_size)
    num_layers = checks.check_size(fn, "num_layers", num_layers)
    checks.check_flags(fn, bidirectional=bidirectional)
    checks.check_chrono(fn, chrono)
    num_dirs = 2 if bidirectional else 1
    keys = jax.random.split(key, num_layers * num_dirs)
    return tuple(
        tuple(
            init_layer(
                keys[layer * num_dirs + d], input_size if layer == 0 else num_dirs * hidden_size
            )
            for d in range(num_dirs)
        )
        for layer in range(num_layers)
    )


def check_stack(
    fn: str,
    params: Any,
    check: CheckLayer,
    kind: str,
) -> tuple[int, int, int, int]:
    """Check a stack's structure and shapes; return ``(L, D, I, H)``. ``check`` checks one
    layer's and direction's parameters of type ``kind`` (``"GRUParams"``, ``"MinGRUParams"``)."""
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
    """Inverted dropout: zero each entry of ``x`` with probability ``rate``, scale the rest."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)


def check_dropout_rate(fn: str, dropout_rate: object) -> float:
    """``dropout_rate`` if it is a number in ``[0, 1)``, else raise."""
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, int | float):
        raise TypeError(f"{fn}: dropout_rate must be a float; got {type(dropout_rate).__name__}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"{fn}: dropout_rate must lie in [0, 1); got {dropout_rate}")
    return float(dropout_rate)


def dropout_keys_for(
    fn: str, dropout_rate: float, deterministic: bool, key: PRNGKey | None, num_layers: int
) -> Array | None:
    """Check a stack's dropout arguments; one key per layer when dropout applies, else None."""
    check_dropout_rate(fn, dropout_rate)
    use_dropout = not deterministic and dropout_rate > 0.0
    if use_dropout and key is None:
        raise ValueError(
            f"{fn}: dropout_rate={dropout_rate} with deterministic=False needs a PRNG key; "
            "got key=None"
        )
    return jax.random.split(key, num_layers) if use_dropout and key is not None else None


def run_stack(
    fn: str,
    params: Sequence[Sequence[Any]],
    xs: ArrayLike,
    h0: ArrayLike | None,
    args: StackArgs,
    cell: CellKind,
    run_layer: RunLayer,
) -> tuple[Array, Array]:
    """Check a stack's arguments (in :func:`gru_jax.gru_stack`'s order), then run every layer
    and direction with ``run_layer``: ``(ys, h_n (L·D, *B, H))``."""
    seq_lengths, resets, time_major, dropout_rate, deterministic, key = args
    num_layers, num_dirs, input_size, hidden = check_stack(fn, params, cell.check, cell.kind)
    checks.check_flags(fn, time_major=time_major)
    seq = check_sequence(
        fn,
        xs,
        input_size,
        hidden,
        h0,
        seq_lengths,
        resets,
        time_major=time_major,
        h0_lead=(num_layers * num_dirs,),
        h0_layout="(L·D, *B, H)",
    )
    dropout_keys = dropout_keys_for(fn, dropout_rate, deterministic, key, num_layers)

    inputs, finals = seq.xs, []
    for layer, directions in enumerate(params):
        outputs = []
        for d, p in enumerate(directions):
            ys, h_last = run_layer(
                p,
                inputs,
                None if seq.h0 is None else seq.h0[layer * num_dirs + d],
                seq_lengths=seq.seq_lengths,
                resets=seq.resets,
                reverse=d == 1,
                time_major=time_major,
            )
            outputs.append(ys)
            finals.append(h_last)
        inputs = outputs[0] if num_dirs == 1 else jnp.concatenate(outputs, axis=-1)
        if dropout_keys is not None and layer < num_layers - 1:
            inputs = dropout(dropout_keys[layer], dropout_rate, inputs)
    return inputs, jnp.stack(finals)


def run_stack_cell(
    fn: str,
    params: Sequence[Sequence[Any]],
    h: ArrayLike,
    x: ArrayLike,
    cell: CellKind,
) -> Array:
    """One step of a unidirectional stack with the cell's ``step``, layer ``l`` reading layer
    ``l − 1``'s new state: ``(L, *B, H)``. A bidirectional stack is refused."""
    num_layers, num_dirs, input_size, hidden = check_stack(fn, params, cell.check, cell.kind)
    if num_dirs != 1:
        raise ValueError(
            f"{fn}: params must be a unidirectional stack (1 direction per layer); got "
            f"{num_dirs} directions (a bidirectional layer needs the whole sequence: "
            f"{cell.sequence})"
        )
    x = checks.check_step_input(fn, x, input_size)
    h = checks.as_float_array(fn, "h", h)
    checks.check_shape(fn, "h", h, (num_layers, *x.shape[:-1], hidden), "(L, *B, H)")
    states, inputs = [], x
    for layer, (p,) in enumerate(params):
        inputs = cell.step(p, h[layer], inputs)
        states.append(inputs)
    return jnp.stack(states)
