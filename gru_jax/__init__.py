"""gru_jax: gated recurrent units in JAX, as pure functions on ``jax.lax.scan``.

``z`` weights the candidate: ``h' = (1 − z) ⊙ h + z ⊙ n`` (Cho et al., Haiku), the opposite of
torch/Flax/Keras/Equinox. See :func:`gru_jax.gru_cell` for the exact equations.
"""

import gru_jax._serialization  # noqa: F401  (registers the parameter classes with jax.export)
from gru_jax._base.init import default_bias_init, default_kernel_init, default_recurrent_init
from gru_jax._base.linear_scan import linear_recurrence
from gru_jax._base.resets import resets_from_segment_ids, segment_ends
from gru_jax._gru.cell import GRUParams, gru_cell, init_gru
from gru_jax._gru.sequence import gru
from gru_jax._gru.stack import GRUStackParams, gru_stack, gru_stack_cell, init_gru_stack
from gru_jax._mingru.cell import MinGRUParams, init_mingru, mingru_cell
from gru_jax._mingru.sequence import mingru
from gru_jax._mingru.stack import (
    MinGRUStackParams,
    init_mingru_stack,
    mingru_stack,
    mingru_stack_cell,
)

__version__ = "0.1.0"

__all__ = [
    "GRUParams",
    "GRUStackParams",
    "MinGRUParams",
    "MinGRUStackParams",
    "default_bias_init",
    "default_kernel_init",
    "default_recurrent_init",
    "gru",
    "gru_cell",
    "gru_stack",
    "gru_stack_cell",
    "init_gru",
    "init_gru_stack",
    "init_mingru",
    "init_mingru_stack",
    "linear_recurrence",
    "mingru",
    "mingru_cell",
    "mingru_stack",
    "mingru_stack_cell",
    "resets_from_segment_ids",
    "segment_ends",
]
