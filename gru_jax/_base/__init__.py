"""What every cell of :mod:`gru_jax` uses: the bottom layer of the package.

``typing`` (array aliases and the shape notation), ``checks`` (trace-time argument checks),
``dtypes`` (the compute dtype), ``init`` (initializers and the chrono bias), ``resets``
(segments inside a sequence), ``sequence`` (the arguments every sequence function shares),
``linear_scan`` (the resettable linear recurrence under minGRU) and ``stack`` (the layer ×
direction loop of every stack). Nothing here imports :mod:`gru_jax._gru` or
:mod:`gru_jax._mingru`, which sit above it, side by side.
"""
