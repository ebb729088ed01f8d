"""Old keyword spellings of the Flax modules, kept working with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings

from gru_jax._base.typing import Initializer


def resolve_recurrent_init(
    fn: str, recurrent_init: Initializer | None, recurrent_kernel_init: Initializer | None
) -> Initializer:
    """The recurrent kernel's initializer of a module: ``recurrent_init``, the keyword of
    :func:`gru_jax.init_gru`, or the old spelling ``recurrent_kernel_init`` (Flax's), which warns
    and wins when given."""
    if recurrent_kernel_init is not None:
        warnings.warn(
            f"{fn}: recurrent_kernel_init is deprecated; use recurrent_init, the keyword of "
            "gru_jax.init_gru",
            DeprecationWarning,
            stacklevel=3,
        )
        return recurrent_kernel_init
    assert recurrent_init is not None  # every module gives it a default
    return recurrent_init
