"""Benchmarks of super-resolution networks: speed and memory (``speed``), quality on data sets (``quality``).

The command-line entry point is ``tools/benchmark.py``; each module here does one job (model specs, data sets, FLOPs,
peak memory, reports, figures) so that other tools can reuse them.
"""
