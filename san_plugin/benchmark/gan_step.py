"""One GAN training step for the speed benchmark: BasicSR's ``ESRGANModel.optimize_parameters`` itself, run on given
networks without options, data or checkpoints.

The step is what ``SANGANModel`` (and the shipped ``options/train/train_*_GAN_x4.yml``) trains with: the generator's
forward, L1, VGG19 perceptual (``conv5_4``) and relativistic average GAN losses against a VGG-style discriminator,
both backward passes, both Adam steps, and the EMA update of the generator. The perceptual loss reads the VGG19
weights BasicSR reads (``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` of the working directory, else
torchvision's cache); without them the step runs without it, and :func:`perceptual_loss` says so.
"""

import copy
import functools

import torch
from basicsr.losses import build_loss
from basicsr.models.esrgan_model import ESRGANModel

from san_plugin.metrics.backbones import perceptual_loss_request

# The losses of BasicSR's ESRGAN x4 recipe (options/train/ESRGAN/train_ESRGAN_x4.yml), as in train_*_GAN_x4.yml.
PIXEL_OPT = {'type': 'L1Loss', 'loss_weight': 1e-2, 'reduction': 'mean'}
PERCEPTUAL_OPT = {'type': 'PerceptualLoss', 'layer_weights': {'conv5_4': 1}, 'vgg_type': 'vgg19',
                  'use_input_norm': True, 'range_norm': False, 'perceptual_weight': 1.0, 'style_weight': 0,
                  'criterion': 'l1'}  # fmt: skip
GAN_OPT = {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0, 'loss_weight': 5e-3}
EMA_DECAY = 0.999
LEARNING_RATE = 1e-4


@functools.cache
def perceptual_loss(device):
    """BasicSR's VGG19 perceptual loss of the ESRGAN recipe on ``device``, built once per device.

    Args:
        device (str): Device.

    Returns:
        tuple[nn.Module | None, str]: The loss, or None without VGG19 weights; and what the step uses, for reports.
    """
    request = perceptual_loss_request('--gan')
    path = request.existing_file()
    if path is None:
        return None, f'none: no VGG19 weights ({" or ".join(map(str, request.places()))})'
    path = path.absolute()
    return build_loss(copy.deepcopy(PERCEPTUAL_OPT)).to(device), f'VGG19 conv5_4, weights {path}'


class ESRGANStep(ESRGANModel):
    """``ESRGANModel``'s training step on given networks: no options file, data, validation or checkpoints.

    BasicSR's ``__init__`` (which builds everything from an options file) is not called; only what
    ``optimize_parameters`` (and the EMA update and loss logging it calls) reads is set, and the step itself is
    BasicSR's own code.

    Args:
        net_g (nn.Module): Generator, on its device, in train mode.
        net_d (nn.Module): Discriminator, on the same device, in train mode.
        cri_perceptual (nn.Module | None): Perceptual loss; None leaves it out.
        device (torch.device): Where the networks are.
    """

    def __init__(self, net_g, net_d, cri_perceptual, device):
        self.opt = {'dist': False}
        self.device = device
        self.net_g, self.net_d = net_g, net_d
        self.net_g_ema = copy.deepcopy(net_g).eval()
        self.ema_decay = EMA_DECAY
        self.cri_pix = build_loss(copy.deepcopy(PIXEL_OPT)).to(device)
        self.cri_perceptual = cri_perceptual
        self.cri_gan = build_loss(copy.deepcopy(GAN_OPT)).to(device)
        self.net_d_iters, self.net_d_init_iters = 1, 0
        self.optimizer_g = torch.optim.Adam(net_g.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.99))
        self.optimizer_d = torch.optim.Adam(net_d.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.99))

    def step(self, lq, gt):
        """One training step of both networks on the batch ``lq`` -> ``gt``.

        Args:
            lq (Tensor): Low-quality batch.
            gt (Tensor): Ground-truth batch, ``scale`` times larger.

        Returns:
            dict[str, float]: The step's losses, as BasicSR logs them.
        """
        self.lq, self.gt = lq, gt
        self.optimize_parameters(current_iter=1)
        return self.log_dict
