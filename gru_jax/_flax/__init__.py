"""What :mod:`gru_jax.linen` and :mod:`gru_jax.nnx` are built from: the shared parameter trees
(``tree``), the parts of the linen modules (``linen_parts``) and of the NNX modules
(``nnx_parts``), and the old keyword spellings (``deprecations``). Imports the core and Flax."""
