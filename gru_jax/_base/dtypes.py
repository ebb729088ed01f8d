"""The dtype every cell computes in, and casting parameters to it."""

from __future__ import annotations

from typing import TypeVar

import jax
import jax.numpy as jnp

from gru_jax._base.typing import DTypeLike

_P = TypeVar("_P")


def compute_dtype(*dtypes: DTypeLike) -> jnp.dtype:
    """The dtype a cell computes in: JAX's type promotion of its inputs' dtypes."""
    return jnp.result_type(*dtypes)


def cast_params(params: _P, dtype: jnp.dtype) -> _P:
    """``params`` (a parameter pytree) with every array cast to ``dtype`` (a no-op where it
    already is)."""
    out: _P = jax.tree.map(lambda a: a.astype(dtype), params)
    return out
