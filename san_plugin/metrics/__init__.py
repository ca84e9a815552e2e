"""Perceptual metrics for BasicSR: ``calculate_lpips`` and ``calculate_dists``, registered into ``METRIC_REGISTRY``.

``val.metrics`` of any BasicSR model, and ``tools/benchmark.py quality --metric``, can then use them. torchmetrics,
which computes them, is imported when a metric network is first built, so ``import basicsr`` stays as fast.
"""

from san_plugin.metrics.perceptual import calculate_dists, calculate_lpips  # noqa: F401  (registration)
