"""Check, when BasicSR parses a run's options, that the ImageNet weights the run needs are there and sound.

A run needs them for BasicSR's perceptual loss (any ``train`` section of type ``PerceptualLoss``, e.g.
``train.perceptual_opt``: its ``VGGFeatureExtractor`` reads ``experiments/pretrained_models/vgg19-dcbb9e9d.pth``,
else torchvision's cache) and for the plugin's perceptual metrics in ``val.metrics`` (``calculate_lpips``,
``calculate_dists``). Without this check a missing file ends in a download traceback in the middle of model
building, or, for a metric, at the first validation after hours of training.
"""

import warnings

from basicsr.archs import vgg_arch

from san_plugin.metrics.backbones import perceptual_loss_request, weights_file_name
from san_plugin.metrics.options import check_metric_options
from san_plugin.metrics.perceptual import PERCEPTUAL_METRICS, prepare_metric_networks

PERCEPTUAL_LOSS = 'PerceptualLoss'


def _perceptual_loss_requests(opt):
    """The VGG file of every perceptual loss in ``train``, with the loss's option name and options."""
    for name, loss_opt in (opt.get('train') or {}).items():
        if not isinstance(loss_opt, dict) or loss_opt.get('type') != PERCEPTUAL_LOSS:
            continue
        vgg_type = loss_opt.get('vgg_type', 'vgg19')
        if vgg_type.replace('_bn', '') not in vgg_arch.NAMES:
            continue  # BasicSR's own error names it
        yield name, loss_opt, perceptual_loss_request(f'train.{name}', vgg_type)


def _runs_its_vgg(loss_opt):
    """False when BasicSR's PerceptualLoss computes neither term (both weights 0), so its VGG never runs."""
    return loss_opt.get('perceptual_weight', 1.0) > 0 or loss_opt.get('style_weight', 0.0) > 0


def _perceptual_metric_uses(opt):
    """Check every LPIPS and DISTS of ``val.metrics`` (setting ``better: lower``) and return what they need."""
    uses = []
    for name, metric_opt in ((opt.get('val') or {}).get('metrics') or {}).items():
        if not isinstance(metric_opt, dict) or metric_opt.get('type') not in PERCEPTUAL_METRICS:
            continue  # other metrics, and unknown types (BasicSR's own error at validation), are left as they are
        key = f'val.metrics.{name}'
        if metric_opt.setdefault('better', 'lower') != 'lower':
            raise ValueError(f'{key}.better: {metric_opt["type"]} is better when lower, got {metric_opt["better"]!r}')
        options = {k: v for k, v in metric_opt.items() if k not in ('type', 'better')}
        uses.append(check_metric_options(metric_opt['type'], options, key))
    return uses


def check_weights(opt):
    """Stop a run whose ImageNet weights are missing or bad, before BasicSR creates any folder or log.

    Every weight file asked for is found (or downloaded into torchvision's cache, as the libraries would); the
    missing ones are named together in one message, each with the option key that asked for it. The metric
    networks are then built from the files (and kept for the validation), so a corrupt or wrong file stops the run
    here too. A perceptual loss with ``perceptual_weight`` and ``style_weight`` both 0 never runs its VGG: when its
    file is missing, the loss is left out (``opt['train'][name] = None``, with a warning) instead of failing; when
    it is there, the run is BasicSR's as before. A run without perceptual losses or metrics checks nothing.

    Args:
        opt (dict): Parsed options; LPIPS/DISTS metrics get ``better: lower`` when they have no ``better``.

    Raises:
        MissingWeightsError: Files missing (one line listing each file, its option key and where to put it).
        WeightsFileError: A file is unreadable or holds another network.
        ValueError: A metric option is wrong (unknown key or ``net``, ``better`` not ``lower``).
    """
    loss_requests = []
    for name, loss_opt, request in _perceptual_loss_requests(opt):
        if _runs_its_vgg(loss_opt):
            loss_requests.append(request)
        elif request.existing_file() is None:
            opt['train'][name] = None
            warnings.warn(
                f'{request.key}: perceptual_weight and style_weight are 0 and {weights_file_name(request.arch)} is '
                f'missing, so the loss is left out (its VGG would never run)',
                stacklevel=2,
            )
    uses = _perceptual_metric_uses(opt)
    if loss_requests or uses:
        prepare_metric_networks(uses, loss_requests)
