"""The benchmark scripts of this checkout (not part of the wheel): ``bench.py`` times ``gru_jax``
against its peers, ``bench_export.py``, ``bench_resets.py`` and ``bench_mingru.py`` time variants
of its own calls, ``floor.py`` bounds any GRU forward pass from below, ``long_memory.py`` lists
and tabulates the long-memory runs, and ``stablehlo.py`` compares compiled programs with another
commit's. What the timing scripts share (the interleaved timing loop, the machine description,
the report files) is in ``harness.py``. Each script runs as a module from the repository root,
``python -m benchmarks.bench --quick``, or as a file, ``python benchmarks/bench.py --quick``.
"""
