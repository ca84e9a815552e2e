from basicsr.models.esrgan_model import ESRGANModel
from basicsr.utils.registry import MODEL_REGISTRY

from san_plugin.models.plugin_mixin import PluginModelMixin


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
    - validation and testing with the test-time options of the ``val`` section (``chop``, ``tile``,
      ``self_ensemble``);
    - ``channels_last`` and ``compile`` on the generator and the discriminator; ``use_amp`` is turned off with a
      warning, as ``ESRGANModel``'s step has neither autocast nor a GradScaler;
    - distributed training on CPU, as every BasicSR model with the plugin.
    """

    unsupported_switches = {
        'use_amp': "SANGANModel trains with ESRGANModel's step, which has no autocast and no GradScaler",
    }
