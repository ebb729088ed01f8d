"""The minGRU: parameters, gates and the single step (``cell``), the sequence function in its
three modes (``sequence``) and the stack (``stack``). Imports :mod:`gru_jax._base` only."""
