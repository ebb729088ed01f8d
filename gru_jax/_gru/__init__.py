"""The GRU: parameters and the single step (``cell``), the loop plan (``plan``), the forward
kernels (``forward``), the tangents (``tangents``), the hand-written derivative (``jvp``), the
sequence function (``sequence``) and the stack (``stack``). Imports :mod:`gru_jax._base` only."""
