"""Exact weight conversion to and from torch, Flax, Keras, Haiku and Equinox; safe weight files.

Every peer lays out, and even defines, its GRU differently. This module moves weights between
them and :class:`gru_jax.GRUParams` *exactly*: the converted model computes the same function,
up to the last bit of floating-point rounding of the peer's own arithmetic.

What differs between the peers, and what each conversion does about it:

=================  ==========  ===========  =============  ======================================
peer               gate order  z weights    reset applied  biases
=================  ==========  ===========  =============  ======================================
gru_jax            z, r, n     candidate    either         ``b_x (3H,)``, ``b_h (3H,)``
torch.nn.GRU       r, z, n     old state    after matmul   ``bias_ih``, ``bias_hh`` (3H,)
flax.linen         r, z, n     old state    after matmul   ``ir, iz, in``, ``hn`` (no b_hr, b_hz)
flax.nnx           r, z, n     old state    after matmul   ``dense_i`` only (no b_h at all)
keras GRU          z, r, n     old state    either         ``(2, 3U)`` or ``(3U,)``
haiku hk.GRU       z, r, n     candidate    before matmul  ``b (3H,)``
equinox GRUCell    r, z, n     old state    after matmul   ``bias (3H,)``, ``bias_n (H,)``
=================  ==========  ===========  =============  ======================================

- *z weights the old state* (torch's convention, ``h' = z ⊙ h + (1 − z) ⊙ n``) versus *z weights
  the candidate* (gru_jax's, ``h' = (1 − z) ⊙ h + z ⊙ n``): converting negates the z-gate
  weights and biases, which is exact because σ(−a) = 1 − σ(a).
- Missing biases: a bias that sits outside ``r ⊙ ·`` can be folded into another one (summed)
  exactly; the candidate's recurrent bias ``b_hn`` of the reset-after form sits inside
  ``r ⊙ (h W_hn + b_hn)`` and cannot, so :func:`to_flax_nnx` refuses non-zero ``b_hn``.
- Reset before versus after the recurrent matmul (``(r ⊙ h) W_hn`` versus ``r ⊙ (h W_hn)``) are
  different functions: no exact conversion exists, and the ``to_*`` functions raise
  ``ValueError`` rather than approximate. torch, Flax and Equinox are reset-after only, Haiku is
  reset-before only, Keras has both.

Importing this module imports none of the peers: the torch and Keras converters work on arrays
(torch tensors are recognised when torch is already imported), and only :func:`to_flax_nnx` and
:func:`to_equinox` import their library, when called.

:func:`save_params` / :func:`load_params` write and read one ``.npz`` file, never pickling,
holding a :class:`~gru_jax.GRUParams` or a stack with its structure, variants and dtypes
(bfloat16 included).
"""

from gru_jax.interop._equinox import from_equinox, to_equinox
from gru_jax.interop._flax_linen import from_flax_linen, to_flax_linen
from gru_jax.interop._flax_nnx import from_flax_nnx, to_flax_nnx
from gru_jax.interop._haiku import from_haiku, to_haiku
from gru_jax.interop._keras import from_keras, to_keras
from gru_jax.interop._npz import load_params, save_params
from gru_jax.interop._torch import from_torch, to_torch

__all__ = [
    "from_equinox",
    "from_flax_linen",
    "from_flax_nnx",
    "from_haiku",
    "from_keras",
    "from_torch",
    "load_params",
    "save_params",
    "to_equinox",
    "to_flax_linen",
    "to_flax_nnx",
    "to_haiku",
    "to_keras",
    "to_torch",
]
