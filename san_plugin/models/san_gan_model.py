from basicsr.models.esrgan_model import ESRGANModel
from basicsr.utils.registry import MODEL_REGISTRY

from san_plugin.models.plugin_mixin import PluginModelMixin

# Discriminators that take one input size only (constructor argument and its default).
FIXED_INPUT_SIZE = {'VGGStyleDiscriminator': ('input_size', 128)}


def check_discriminator_input(opt):
    """Raise a ValueError naming the keys if the discriminator cannot take the training GT patches.

    ``VGGStyleDiscriminator`` takes ``input_size`` x ``input_size`` images only, and sees the GT patches
    (``datasets.train.gt_size``); BasicSR would stop at the first iteration with an assertion that names neither.

    Args:
        opt (dict): Training options.
    """
    net_d = opt.get('network_d') or {}
    if net_d.get('type') not in FIXED_INPUT_SIZE:
        return
    key, default = FIXED_INPUT_SIZE[net_d['type']]
    input_size, gt_size = net_d.get(key, default), opt['datasets']['train'].get('gt_size')
    if gt_size is not None and gt_size != input_size:
        raise ValueError(
            f'network_d.{key} is {input_size} but datasets.train.gt_size is {gt_size}: {net_d["type"]} sees the GT '
            'patches, so they must be equal'
        )


@MODEL_REGISTRY.register()
class SANGANModel(PluginModelMixin, ESRGANModel):
    """GAN model for SAN and the other networks of the plugin: BasicSR's ``ESRGANModel`` with the plugin's features
    (:class:`~san_plugin.models.plugin_mixin.PluginModelMixin`).

    The training is ``ESRGANModel``'s, unchanged: the generator ``network_g`` and the discriminator ``network_d``,
    pixel (``pixel_opt``), perceptual (``perceptual_opt``) and relativistic average GAN losses (``gan_opt``),
    ``net_d_iters`` and ``net_d_init_iters``, EMA with ``params_ema``. Added:

    - ``net_g`` (with ``net_g_ema``), ``net_d`` and the training state are written atomically, each network file
      recording its options; ``--auto_resume`` resumes from the newest iteration whose state, ``net_g`` and
      ``net_d`` all load (:mod:`san_plugin.compat.resume`);
    - ``pretrain_network_g``, typically the PSNR-oriented generator, may be an authors' SAN/DRLN/RCAN ``.pt``, a
      BasicSR ``.pth`` or a ``.safetensors``; it is loaded into ``net_g`` and ``net_g_ema``;
    - a discriminator that takes one input size only must get GT patches of that size
      (:func:`check_discriminator_input`, before any network is trained);
    - validation and testing with the test-time options of the ``val`` section (``chop``, ``tile``,
      ``self_ensemble``);
    - ``channels_last`` and ``compile`` on the generator and the discriminator; ``use_amp`` is turned off with a
      warning, as ``ESRGANModel``'s step has neither autocast nor a GradScaler;
    - distributed training on CPU, as every BasicSR model with the plugin.
    """

    unsupported_switches = {
        'use_amp': "SANGANModel trains with ESRGANModel's step, which has no autocast and no GradScaler",
    }

    def init_training_settings(self):
        """Check the discriminator's input size, then set up training as ``ESRGANModel`` and the mixin do."""
        check_discriminator_input(self.opt)
        super().init_training_settings()
