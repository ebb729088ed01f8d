"""Trace-time argument checks shared by the public functions.

Every check here runs on shapes and dtypes only (Python, at trace time), so a jitted function
pays nothing for it per call or per step. The one exception, ``check_seq_lengths``, also reads
the *values* of ``seq_lengths`` when they are concrete (not traced), to reject lengths outside
``[0, T]`` eagerly; under ``jax.jit`` they are traced and that range check is skipped.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax._base.typing import Array, ArrayLike, DTypeLike


def check_size(fn: str, name: str, value: object) -> int:
    """Return ``value`` as an ``int`` if it is a positive integer, else raise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{fn}: {name} must be a positive int; got {type(value).__name__} {value!r}"
        )
    if value <= 0:
        raise ValueError(f"{fn}: {name} must be a positive int; got {value}")
    return operator.index(value)


def check_unroll(fn: str, unroll: object) -> int | bool:
    """``unroll`` as ``lax.scan`` accepts it: a positive int, or a bool."""
    if isinstance(unroll, bool):
        return unroll
    return check_size(fn, "unroll", unroll)


def check_float_dtype(fn: str, name: str, dtype: DTypeLike) -> jnp.dtype:
    """Return ``dtype`` as a NumPy dtype if it is a floating-point dtype, else raise TypeError."""
    try:
        dt = jnp.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{fn}: {name} must be a floating-point dtype; got {dtype!r}") from e
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(f"{fn}: {name} must be a floating-point dtype; got {dt}")
    return dt


def as_float_array(fn: str, name: str, x: ArrayLike) -> Array:
    """Convert ``x`` to an array and check that its dtype is floating-point."""
    if not isinstance(x, jax.Array | np.ndarray | np.generic):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: {name} must have a floating-point dtype; got {x.dtype}")
    return jnp.asarray(x)


def check_shape(
    fn: str,
    name: str,
    x: Array | np.ndarray | np.generic,
    expected: tuple[int, ...],
    what: str = "",
) -> None:
    """Raise ValueError unless ``x.shape == expected``; ``what`` spells the expected layout."""
    if tuple(x.shape) != tuple(expected):
        layout = f" {what}" if what else ""
        raise ValueError(
            f"{fn}: {name} must have shape{layout} = {tuple(expected)}; got {tuple(x.shape)}"
        )


def check_seq_lengths(fn: str, seq_lengths: ArrayLike, batch: tuple[int, ...], T: int) -> Array:
    """Check ``seq_lengths``: integer dtype, shape ``batch``, and (when concrete) in ``[0, T]``."""
    if not isinstance(seq_lengths, jax.Array | np.ndarray | np.generic):
        seq_lengths = np.asarray(seq_lengths)
    if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise TypeError(f"{fn}: seq_lengths must have an integer dtype; got {seq_lengths.dtype}")
    if tuple(seq_lengths.shape) != tuple(batch):
        raise ValueError(
            f"{fn}: seq_lengths must have the batch shape of xs, {tuple(batch)}; "
            f"got {tuple(seq_lengths.shape)}"
        )
    if not isinstance(seq_lengths, jax.core.Tracer) and seq_lengths.size:
        values = np.asarray(seq_lengths)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi > T:
            raise ValueError(
                f"{fn}: seq_lengths must lie in [0, T] = [0, {T}]; got values in [{lo}, {hi}]"
            )
    return jnp.asarray(seq_lengths)


def check_cell_inputs(
    fn: str, h: ArrayLike, x: ArrayLike, input_size: int, hidden: int
) -> tuple[Array, Array]:
    """Check one step's ``h (*B, H)`` and ``x (*B, I)``, with ``B`` taken from ``x``."""
    h = as_float_array(fn, "h", h)
    x = check_step_input(fn, x, input_size)
    check_shape(fn, "h", h, (*x.shape[:-1], hidden), "(*B, H), B from x,")
    return h, x


def check_step_input(fn: str, x: ArrayLike, input_size: int) -> Array:
    """Check one step's input: a float ``(*B, I)`` array with the given ``I``."""
    x = as_float_array(fn, "x", x)
    if x.ndim < 1 or x.shape[-1] != input_size:
        raise ValueError(
            f"{fn}: x must have shape (*B, I) with I = {input_size}; got {tuple(x.shape)}"
        )
    return x


def check_chrono(fn: str, chrono: object) -> int | None:
    """``chrono`` as an ``int`` if it is an int ``>= 3`` (a ``T_max``, in steps), or ``None``.

    A bool is refused although Python counts it as an int (``chrono=True`` says nothing about
    the longest memory); a float too, since ``T_max`` counts steps.
    """
    if chrono is None:
        return None
    expected = "an int >= 3 (the longest memory, in steps) or None"
    if isinstance(chrono, bool) or not isinstance(chrono, int | np.integer):
        raise TypeError(f"{fn}: chrono must be {expected}; got {chrono!r}")
    if chrono < 3:
        raise ValueError(f"{fn}: chrono must be {expected}; got {chrono}")
    return operator.index(chrono)


def known_dim(dim: object) -> bool:
    """Whether an array dimension is a concrete int; under ``jax.export`` with symbolic shapes it
    may be a symbolic expression, which a plan must not compare with a threshold."""
    return isinstance(dim, int)


def check_xs(fn: str, xs: ArrayLike, input_size: int, time_major: bool = False) -> Array:
    """Check that ``xs`` is a float ``(*B, T, I)`` (``(T, *B, I)`` if ``time_major``) array with
    the given ``I``."""
    xs = as_float_array(fn, "xs", xs)
    if xs.ndim < 2 or xs.shape[-1] != input_size:
        layout = "(T, *B, I)" if time_major else "(*B, T, I)"
        raise ValueError(
            f"{fn}: xs must have shape (T, I) or {layout} with I = {input_size}; "
            f"got {tuple(xs.shape)}"
        )
    return xs


def batch_and_steps(xs: Array, time_major: bool) -> tuple[tuple[int, ...], int]:
    """``(B, T)``: the batch shape and the number of steps of a checked ``xs``."""
    if time_major:
        return tuple(xs.shape[1:-1]), xs.shape[0]
    return tuple(xs.shape[:-2]), xs.shape[-2]


def check_flags(fn: str, **flags: object) -> None:
    """Each flag must be a bool (``reverse``, ``time_major``, ...)."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{fn}: {name} must be a bool; got {type(value).__name__}")


def check_float_leaves(fn: str, name: str, params: object, fields: tuple[str, ...]) -> None:
    """Each ``params.<field>`` must be an array with a floating-point dtype."""
    for field in fields:
        leaf = getattr(params, field)
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise TypeError(f"{fn}: {name}.{field} must be an array; got {type(leaf).__name__}")
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"{fn}: {name}.{field} must have a floating-point dtype; got {leaf.dtype}"
            )
