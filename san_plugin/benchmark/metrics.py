"""The quality benchmark's extra metrics (``--metric``, ``metrics:``): LPIPS, DISTS and NIQE, all lower-is-better.

Each is BasicSR's registered metric (the plugin's ``calculate_lpips`` and ``calculate_dists``, BasicSR's
``calculate_niqe``), called as BasicSR's validation calls it, with ``crop_border`` = the scale.
"""

from dataclasses import dataclass

from basicsr.utils.registry import METRIC_REGISTRY

from san_plugin.metrics.options import PerceptualMetricUse, check_metric_options
from san_plugin.metrics.perceptual import prepare_metric_networks
from san_plugin.utils.arch_arguments import constructor_arguments

# Name in --metric / metrics: -> (BasicSR metric, column label). Every one is better when lower.
QUALITY_METRICS = {
    'lpips': ('calculate_lpips', 'LPIPS'),
    'dists': ('calculate_dists', 'DISTS'),
    'niqe': ('calculate_niqe', 'NIQE'),
}
# Arguments the benchmark passes itself.
SET_BY_BENCHMARK = ('crop_border', 'input_order')


@dataclass
class MetricSpec:
    """One extra metric of a quality run.

    Args:
        name (str): Its name in :data:`QUALITY_METRICS`, also its key in the results.
        options (dict): Its own options (e.g. ``net`` and ``backbone_path`` of LPIPS).
        use (PerceptualMetricUse | None): The backbone an LPIPS or DISTS needs; None for NIQE.
        full_reference (bool): Whether it compares with the HR image (NIQE does not).
    """

    name: str
    options: dict
    use: PerceptualMetricUse | None
    full_reference: bool

    def compute(self, sr, hr, scale):
        """The metric of the uint8 BGR image ``sr`` (against ``hr`` for full-reference metrics)."""
        function = METRIC_REGISTRY.get(QUALITY_METRICS[self.name][0])
        images = (sr, hr) if self.full_reference else (sr,)
        return float(function(*images, crop_border=scale, input_order='HWC', **self.options))


def metric_spec(name, options, key, path_key):
    """Check one metric and its options; ``key`` and ``path_key`` name where they come from in messages."""
    if name not in QUALITY_METRICS:
        raise ValueError(f'{key}: unknown metric {name!r} (known: {", ".join(QUALITY_METRICS)})')
    if not isinstance(options, dict):
        raise ValueError(f'{key}: expected a mapping of options, got {options!r}')
    metric_type = QUALITY_METRICS[name][0]
    use = check_metric_options(metric_type, options, key, SET_BY_BENCHMARK, path_key)
    full_reference = 'img2' in constructor_arguments(METRIC_REGISTRY.get(metric_type))[0]
    return MetricSpec(name, dict(options), use, full_reference)


def parse_metric_specs(value, names=(), where='metrics'):
    """The metrics of a ``metrics:`` mapping (the quality benchmark's ``-opt`` file, a study's ``test.metrics``) and
    of ``--metric`` flags, each once, the mapping first.

    Args:
        value (list | dict): The mapping's value: a list of names, or a mapping name -> options (or null).
        names (Iterable[str] | None): Names given with ``--metric``; None for none. Default: ().
        where (str): The key of ``value``, for messages. Default: 'metrics'.

    Returns:
        list[MetricSpec]: The metrics.
    """
    if isinstance(value, list):
        value = dict.fromkeys(value)
    if not isinstance(value, dict):
        raise ValueError(f'{where}: expected a list of metric names or a mapping name -> options, got {value!r}')
    specs = [metric_spec(str(name), options or {}, f'{where}.{name}', None) for name, options in value.items()]
    for name in names or ():
        if name not in [spec.name for spec in specs]:
            specs.append(metric_spec(name, {}, f'--metric {name}', f'{where}.{name}.backbone_path of the -opt file'))
    return specs


def prepare_metrics(specs, other_requests=()):
    """Find the backbone files of the metrics (or stop, naming each missing one) and build their networks.

    Args:
        specs (list[MetricSpec]): The metrics.
        other_requests (list[BackboneRequest]): Other files the run needs (a perceptual loss's VGG), named in the same
            message when missing. Default: ().
    """
    prepare_metric_networks([spec.use for spec in specs if spec.use], other_requests)
