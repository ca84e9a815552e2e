"""Random ImageNet backbones saved under torchvision's file names, to test the real loading path of the perceptual
metrics and losses without the real weights (a random backbone's scores mean nothing, and no test claims they do).

The libraries read the whole torchvision file (torchvision loads every key strictly) but use only ``features``.
So ``features`` get a random initialisation, and the classifier, never used, is stored as one broadcast zero of the
right shape: VGG16's file is 59 MB instead of 528 MB, and it is written in a fraction of a second.
"""

from pathlib import Path

import torch
import torchvision

from san_plugin.metrics.backbones import weights_file_name
from san_plugin.utils.atomic_save import atomic_torch_save

# What the tests read: LPIPS squeeze and alex, DISTS (VGG16), BasicSR's perceptual loss (VGG19).
BACKBONES = ('squeezenet1_1', 'alexnet', 'vgg16', 'vgg19')


def random_backbone_state(arch, seed=0):
    """A state dict of torchvision's ``arch``: random ``features``, a broadcast zero for every other tensor."""
    with torch.device('meta'):
        model = torchvision.models.get_model(arch)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        features = model.features.to_empty(device='cpu')
        for module in features.modules():
            if hasattr(module, 'reset_parameters'):
                module.reset_parameters()
    return {
        name: tensor if name.startswith('features.') else torch.zeros(()).expand(tensor.shape)
        for name, tensor in model.state_dict().items()
    }


def write_random_backbone(arch, folder, seed=0):
    """Save :func:`random_backbone_state` as ``folder/<torchvision's file name>``; returns the path."""
    path = Path(folder) / weights_file_name(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(random_backbone_state(arch, seed), path)
    return path
