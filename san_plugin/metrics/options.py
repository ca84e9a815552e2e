"""Options of the perceptual metrics, checked the same way for BasicSR's ``val.metrics`` and the quality benchmark."""

from dataclasses import dataclass

from basicsr.utils.registry import METRIC_REGISTRY

from san_plugin.metrics.backbones import BackboneRequest
from san_plugin.metrics.perceptual import PERCEPTUAL_METRICS, metric_backbone
from san_plugin.utils.arch_arguments import option_problems


@dataclass(frozen=True)
class PerceptualMetricUse:
    """One perceptual metric asked for by one option, with the backbone file it needs.

    Args:
        metric_type (str): ``calculate_lpips`` or ``calculate_dists``.
        net (str | None): LPIPS's network; None for DISTS.
        request (BackboneRequest): Its backbone file.
    """

    metric_type: str
    net: str | None
    request: BackboneRequest


def check_metric_options(metric_type, options, key, set_by_caller=(), path_key=None):
    """Raise a ValueError naming ``key`` if ``options`` are not the arguments of the registered metric.

    Args:
        metric_type (str): The registered metric, e.g. ``calculate_lpips``.
        options (dict): Its options, without ``type`` and ``better``.
        key (str): Where they come from, e.g. ``val.metrics.lpips``.
        set_by_caller (tuple[str]): Arguments the caller passes itself, not accepted as options. Default: ().
        path_key (str | None): Where a user gives the backbone file, for messages; None for
            ``<key>.backbone_path``. Default: None.

    Returns:
        PerceptualMetricUse | None: For LPIPS and DISTS, what they need; None for other metrics.
    """
    # Every BasicSR metric takes **kwargs, for the ``better`` that BasicSR passes it: a misspelt option (``nett``,
    # ``backbone_pth``) would be ignored without a word, so only named arguments are options.
    accepted, unknown, missing = option_problems(
        METRIC_REGISTRY.get(metric_type), options, ('img', 'img2', *set_by_caller), any_key_with_kwargs=False
    )
    if unknown or missing:
        problems = [f'unknown option(s) {unknown}'] if unknown else []
        problems += [f'missing required option(s) {missing}'] if missing else []
        raise ValueError(f'{key} ({metric_type}): {"; ".join(problems)}; {metric_type} accepts {list(accepted)}')
    if metric_type not in PERCEPTUAL_METRICS:
        return None
    net = options.get('net', accepted.get('net')) if 'net' in accepted else None
    arch = metric_backbone(metric_type, net, f'{key}.net')
    request = BackboneRequest(key, arch, options.get('backbone_path'), path_key or f'{key}.backbone_path')
    return PerceptualMetricUse(metric_type, net, request)
