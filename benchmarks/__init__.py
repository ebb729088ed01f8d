"""The benchmark scripts of this checkout (not part of the wheel): ``bench.py`` times ``gru_jax``
against its peers, ``bench_export.py``, ``bench_resets.py`` and ``bench_mingru.py`` time variants of
its own calls, ``floor.py`` bounds any GRU forward pass from below, ``long_memory.py`` lists and
tabulates the long-memory runs, ``stablehlo.py`` compares compiled programs with another commit's,
``bench_gpu.py`` times ``impl="pallas"`` against ``"xla"``, Flax and cuDNN on a GPU (``--dry-run``
on CPU), ``auto_table.py`` turns its results into ``impl="auto"``'s table, ``bench_ppo.py`` times
the PPO agent against the same agent on Flax's scanned ``GRUCell``, and ``ppo_sweep.py`` measures
the PPO agent's success against MemoryChain's ``memory_length``. What the timing scripts share (the
interleaved timing loop, the machine description, the report files) is in ``harness.py``. Each
script runs as a module from the repository root, ``python -m benchmarks.bench --quick``, or as a
file, ``python benchmarks/bench.py --quick``.
"""
