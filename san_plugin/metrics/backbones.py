"""The ImageNet weight files of torchvision backbones that perceptual metrics and losses read, and where they are.

torchvision keeps its pretrained weights in ``$TORCH_HOME/hub/checkpoints/<file name>`` (``~/.cache/torch`` when
``TORCH_HOME`` is unset) and downloads a file that is missing there. Here a file is found before anything runs: at the
path an option gives, or in that cache (then downloaded by torch.hub if it can be; a failed download becomes one line
of a :class:`MissingWeightsError`). While a metric network is built, :func:`torchvision_reads` makes torchvision read
exactly the files found, checked against the architecture, and never download: a backbone can neither come out
random nor start a download later in a worker.
"""

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from basicsr.archs import vgg_arch
from torchvision.models import _api as torchvision_weights_api


class MissingWeightsError(FileNotFoundError):
    """Weight files that runs need are missing; the message names each file, where to put it and which option asked."""


class WeightsFileError(ValueError):
    """A weight file exists but is unreadable or holds another network's weights."""


def weights_url(arch):
    """torchvision's download address of the default ImageNet weights of ``arch`` (e.g. ``'vgg16'``)."""
    return torchvision.models.get_model_weights(arch).DEFAULT.url


def weights_file_name(arch):
    """torchvision's file name of the default ImageNet weights of ``arch``, e.g. ``vgg16-397923af.pth``."""
    return os.path.basename(urlparse(weights_url(arch)).path)


def torchvision_cache(arch):
    """Where torchvision looks for the weights of ``arch``: ``$TORCH_HOME/hub/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / 'checkpoints' / weights_file_name(arch)


@dataclass(frozen=True)
class BackboneRequest:
    """One weight file that one option asks for.

    Args:
        key (str): The option that asks for it, e.g. ``val.metrics.lpips`` or ``train.perceptual_opt``.
        arch (str): torchvision's name of the backbone, e.g. ``'alexnet'``.
        path (str | None): The file given by the option ``path_key``; None for torchvision's cache. Default: None.
        path_key (str | None): The option that gives a file instead of the cache (e.g.
            ``val.metrics.lpips.backbone_path``); None when there is none. Default: None.
        also_read (tuple[str]): Files the reader takes first when they exist (BasicSR's VGG reads
            ``experiments/pretrained_models/vgg19-dcbb9e9d.pth``). Default: ().
    """

    key: str
    arch: str
    path: str | None = None
    path_key: str | None = None
    also_read: tuple = ()

    def places(self):
        """The files the reader takes, first found first."""
        return [Path(self.path)] if self.path else [*map(Path, self.also_read), torchvision_cache(self.arch)]

    def existing_file(self):
        """The file the reader would take, or None when there is none."""
        return next((place for place in self.places() if place.is_file()), None)

    def problem(self):
        """One clause of a :class:`MissingWeightsError` for this request."""
        if self.path:
            return f'{self.path_key}: {self.path} does not exist'
        alternative = f' (or give its path as {self.path_key})' if self.path_key else ''
        places = ' or '.join(str(place) for place in reversed(self.places()))
        return f'{self.key} needs {weights_file_name(self.arch)}: put it at {places}{alternative}'


def perceptual_loss_request(key, vgg_type='vgg19'):
    """The VGG file that BasicSR's ``PerceptualLoss`` (its ``VGGFeatureExtractor``) reads for ``vgg_type``.

    BasicSR reads ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` of the working directory
    (``basicsr.archs.vgg_arch.VGG_PRETRAIN_PATH``) when it exists, else torchvision's cache; the plugin counts that
    file for VGG19 only, the one network it holds.

    Args:
        key (str): The option that asks for the loss, e.g. ``train.perceptual_opt``.
        vgg_type (str): The loss's ``vgg_type``, torchvision's name of the network (``'vgg19'``, ``'vgg16_bn'``).
            Default: 'vgg19'.

    Returns:
        BackboneRequest: The request.
    """
    also_read = (vgg_arch.VGG_PRETRAIN_PATH,) if vgg_type == 'vgg19' else ()
    return BackboneRequest(key, vgg_type, also_read=also_read)


def _download(arch):
    """Fetch the weights of ``arch`` into torchvision's cache as torchvision would; returns None or why it failed."""
    destination = torchvision_cache(arch)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        hash_prefix = torch.hub.HASH_REGEX.search(destination.name).group(1)
        torch.hub.download_url_to_file(weights_url(arch), str(destination), hash_prefix)
    except Exception as error:  # no network, a proxy, a full disk, a hash mismatch: all end as one clause
        return f'{type(error).__name__}: {error}'
    return None


def locate_backbones(requests):
    """Find the file of every request, downloading into torchvision's cache those that are missing there.

    Files given by a path option are never downloaded. Each missing file is downloaded once, whichever requests ask
    for it.

    Args:
        requests (list[BackboneRequest]): What the run needs.

    Returns:
        dict[BackboneRequest, Path]: The file of each request.

    Raises:
        MissingWeightsError: One line naming every file still missing, with its option key and where to put it.
    """
    found, downloads, problems = {}, {}, []
    for request in requests:
        path = request.existing_file()
        if path is None and not request.path:
            if request.arch not in downloads:  # arch -> why its download failed, None when it worked
                downloads[request.arch] = _download(request.arch)
            path = request.existing_file()
        if path is None:
            problems.append(request.problem())
        else:
            found[request] = path
    if problems:
        failures = sorted({error for error in downloads.values() if error})
        failed = f' (downloading failed: {"; ".join(failures)})' if failures else ''
        raise MissingWeightsError(f'missing ImageNet weights{failed}: {"; ".join(dict.fromkeys(problems))}')
    return found


def read_backbone(arch, path, key):
    """Load the weights of ``arch`` from ``path`` and check them against torchvision's architecture.

    Args:
        arch (str): torchvision's name of the backbone.
        path (str | Path): The file.
        key (str): The option that asked for it, for messages.

    Returns:
        dict[str, Tensor]: The state dict, on the CPU.

    Raises:
        WeightsFileError: The file cannot be read or is not a state dict of ``arch``.
    """
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch's reasons run to several sentences: the first one says it
        reason = str(error).split('\n')[0].split('. ')[0] or type(error).__name__
        raise WeightsFileError(f'{key}: {path} cannot be read as a torch file ({reason})') from error
    with torch.device('meta'):
        expected = {name: tensor.shape for name, tensor in torchvision.models.get_model(arch).state_dict().items()}
    if not isinstance(state, dict):
        raise WeightsFileError(f'{key}: {path} holds a {type(state).__name__}, not a state dict of {arch}')
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    wrong_shape = [name for name in expected if name in state and state[name].shape != expected[name]]
    if missing or unexpected or wrong_shape:
        found = [f'{label} {names[:3]}' for label, names in
                 (('missing', missing), ('unexpected', unexpected), ('wrong shape', wrong_shape)) if names]  # fmt: skip
        raise WeightsFileError(f'{key}: {path} is not torchvision {arch} weights ({"; ".join(found)})')
    return state


@contextlib.contextmanager
def torchvision_reads(arch, path, key):
    """While the block runs, torchvision's pretrained-weights loading reads ``path`` for ``arch`` and nothing else.

    A library that builds ``torchvision.models.<arch>(weights=...)`` inside the block gets the checked weights of
    ``path`` (:func:`read_backbone`); asking for any other weights raises instead of downloading.

    Args:
        arch (str): torchvision's name of the backbone.
        path (str | Path): Its weights file.
        key (str): The option that asked for it, for messages.
    """
    expected_name = weights_file_name(arch)

    def load_state_dict_from_url(url, *args, **kwargs):
        name = os.path.basename(urlparse(url).path)
        if name != expected_name:
            raise MissingWeightsError(f'{key}: torchvision asked for {name}, but only {expected_name} was prepared')
        return read_backbone(arch, path, key)

    original = torchvision_weights_api.load_state_dict_from_url
    torchvision_weights_api.load_state_dict_from_url = load_state_dict_from_url
    try:
        yield
    finally:
        torchvision_weights_api.load_state_dict_from_url = original
