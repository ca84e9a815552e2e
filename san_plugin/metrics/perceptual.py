"""LPIPS and DISTS as BasicSR metrics, computed by torchmetrics.

Library: torchmetrics. It ships the LPIPS linear heads (alex, vgg, squeeze) and the DISTS alpha/beta weights in its
wheel, so one maintained, actively released library gives both metrics, and it takes its ImageNet backbones from
torchvision, like BasicSR's perceptual loss. The ``lpips`` package (what BasicSR's own scripts use) has LPIPS only and
has had no release since 2021. torchmetrics is imported when a metric network is first built, not with the plugin.

Both functions take BasicSR's metric arguments (``img``, ``img2``, ``crop_border``, ``input_order``; HWC BGR images
in [0, 255], uint8 or float, as ``SRModel.nondist_validation`` passes them) and return a float; lower is better.
The networks are built once per backbone file (:func:`metric_network`) and reused; a metric looks its file up once
per backbone option and device.
"""

import os

import numpy as np
import torch
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils.registry import METRIC_REGISTRY

from san_plugin.metrics.backbones import BackboneRequest, MissingWeightsError, locate_backbones, torchvision_reads

PERCEPTUAL_METRICS = ('calculate_lpips', 'calculate_dists')
# LPIPS's ``net`` option -> torchvision's backbone.
LPIPS_BACKBONES = {'alex': 'alexnet', 'vgg': 'vgg16', 'squeeze': 'squeezenet1_1'}
DISTS_BACKBONE = 'vgg16'


def metric_backbone(metric_type, net, key='net'):
    """torchvision's name of the backbone of ``metric_type`` (``calculate_lpips`` or ``calculate_dists``).

    Args:
        metric_type (str): The registered metric name.
        net (str | None): LPIPS's network (alex, vgg, squeeze); ignored for DISTS.
        key (str): The option that gave ``net``, for messages. Default: 'net'.

    Returns:
        str: E.g. ``'alexnet'``.
    """
    if metric_type == 'calculate_dists':
        return DISTS_BACKBONE
    if net not in LPIPS_BACKBONES:
        raise ValueError(f'{key}: {net!r} is not one of {", ".join(LPIPS_BACKBONES)}')
    return LPIPS_BACKBONES[net]


# Built metric networks by (metric type, LPIPS net, absolute backbone file).
_NETWORKS = {}


def metric_network(metric_type, net, backbone_file, key):
    """The torchmetrics network of a metric with a checked backbone file, built on the CPU once per file.

    LPIPS is torchmetrics' ``LearnedPerceptualImagePatchSimilarity`` on [0, 1] inputs, without the distributed sync
    of its ``compute`` (BasicSR validates on rank 0 alone). DISTS is the ``DISTSNetwork`` that torchmetrics' DISTS
    functions build: its metric class builds a new one (reading the VGG16 file) on every update.

    Args:
        metric_type (str): ``calculate_lpips`` or ``calculate_dists``.
        net (str | None): LPIPS's network (alex, vgg, squeeze); None for DISTS.
        backbone_file (str | Path): The backbone's weights file.
        key (str): The option that asked for it, for messages.

    Returns:
        torch.nn.Module: The metric network.
    """
    cache_key = (metric_type, net, os.path.abspath(backbone_file))
    if cache_key not in _NETWORKS:
        with torchvision_reads(metric_backbone(metric_type, net), backbone_file, key):
            if metric_type == 'calculate_dists':
                from torchmetrics.functional.image.dists import DISTSNetwork

                network = DISTSNetwork().eval()
            else:
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                network = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True, sync_on_compute=False)
        _NETWORKS[cache_key] = network
    return _NETWORKS[cache_key]


def prepare_metric_networks(uses, other_requests=()):
    """Find (or download) every backbone file a run needs, then build its metric networks, before anything runs.

    Args:
        uses (list[PerceptualMetricUse]): The perceptual metrics of the run
            (:func:`san_plugin.metrics.options.check_metric_options`).
        other_requests (list[BackboneRequest]): Other files the run needs (a perceptual loss's VGG), listed in the
            same message when missing. Default: ().

    Raises:
        MissingWeightsError: One line naming every missing file, its option key and where to put it.
        WeightsFileError: A file is unreadable or holds another network.
    """
    found = locate_backbones([*other_requests, *(use.request for use in uses)])
    for use in uses:
        metric_network(use.metric_type, use.net, found[use.request], use.request.key)


# Metric networks ready on their device, by (metric type, LPIPS net, backbone file given or torchvision's cache
# folder, device): a metric called once per image looks its file up once.
_READY = {}


def _network(metric_type, net, backbone_path):
    """The metric network with the backbone at ``backbone_path``, else in torchvision's cache; never downloads."""
    device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else torch.device('cpu')
    place = os.path.abspath(backbone_path) if backbone_path else torch.hub.get_dir()
    ready_key = (metric_type, net, place, device)
    if ready_key not in _READY:
        request = BackboneRequest(metric_type, metric_backbone(metric_type, net), backbone_path, 'backbone_path')
        path = request.existing_file()
        if path is None:
            raise MissingWeightsError(f'missing ImageNet weights: {request.problem()}')
        _READY[ready_key] = metric_network(metric_type, net, path, metric_type).to(device)
    return _READY[ready_key]


def image_tensor(img, crop_border, input_order):
    """A BasicSR metric input (BGR, [0, 255]) as an RGB float32 tensor (1, 3, H, W) in [0, 1], border cropped.

    Args:
        img (ndarray): Image, HWC or CHW (``input_order``), uint8 or float in [0, 255].
        crop_border (int): Pixels cropped on each edge.
        input_order (str): 'HWC' or 'CHW'.

    Returns:
        Tensor: The image.
    """
    img = reorder_image(img, input_order=input_order)
    if img.shape[2] != 3:
        raise ValueError(f'expected 3-channel BGR images, got shape {img.shape}')
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
    rgb = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).unsqueeze(0)


def _image_pair(img, img2, crop_border, input_order, device):
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes are different: {img.shape}, {img2.shape}.')
    return (image_tensor(i, crop_border, input_order).to(device) for i in (img, img2))


@METRIC_REGISTRY.register()
def calculate_lpips(img, img2, crop_border, input_order='HWC', net='alex', backbone_path=None, **kwargs):
    """LPIPS (Zhang et al., CVPR 2018) between two images, by torchmetrics; lower is better.

    Args:
        img (ndarray): Images with range [0, 255], BGR.
        img2 (ndarray): Images with range [0, 255], BGR.
        crop_border (int): Cropped pixels in each edge of an image. These pixels are not involved in the calculation.
        input_order (str): Whether the input order is 'HWC' or 'CHW'. Default: 'HWC'.
        net (str): Backbone: 'alex', 'vgg' or 'squeeze'. Default: 'alex'.
        backbone_path (str | None): Its ImageNet weights; None reads torchvision's cache
            (``$TORCH_HOME/hub/checkpoints``). Default: None.
        **kwargs: The metric's other options (BasicSR passes ``better``); not used.

    Returns:
        float: LPIPS.
    """
    metric = _network('calculate_lpips', net, backbone_path)
    x, y = _image_pair(img, img2, crop_border, input_order, metric.device)
    metric.reset()
    with torch.inference_mode():
        metric.update(x, y)
        return float(metric.compute())


@METRIC_REGISTRY.register()
def calculate_dists(img, img2, crop_border, input_order='HWC', backbone_path=None, **kwargs):
    """DISTS (Ding et al., TPAMI 2020) between two images, by torchmetrics; lower is better.

    Args:
        img (ndarray): Images with range [0, 255], BGR.
        img2 (ndarray): Images with range [0, 255], BGR.
        crop_border (int): Cropped pixels in each edge of an image. These pixels are not involved in the calculation.
        input_order (str): Whether the input order is 'HWC' or 'CHW'. Default: 'HWC'.
        backbone_path (str | None): VGG16's ImageNet weights; None reads torchvision's cache
            (``$TORCH_HOME/hub/checkpoints``). Default: None.
        **kwargs: The metric's other options (BasicSR passes ``better``); not used.

    Returns:
        float: DISTS.
    """
    network = _network('calculate_dists', None, backbone_path)
    x, y = _image_pair(img, img2, crop_border, input_order, network.mean.device)
    with torch.inference_mode():
        return float(network(x, y))
