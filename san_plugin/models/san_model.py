from collections import OrderedDict

from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

from san_plugin.models.plugin_mixin import PluginModelMixin
from san_plugin.utils.precision import autocast


@MODEL_REGISTRY.register()
class SANModel(PluginModelMixin, SRModel):
    """SR model for SAN and the other networks of the plugin: BasicSR's ``SRModel`` with the plugin's features
    (:class:`~san_plugin.models.plugin_mixin.PluginModelMixin`: checkpoints that survive a kill, weights of every
    format, test-time options, the switches, distributed training on CPU) and a training step under autocast.

    Everything else (losses, EMA with ``params_ema``, validation, saved images) is ``SRModel``'s. With ``use_amp``
    the training forward and the test forward run under ``torch.autocast``; losses and test outputs are float32;
    float16 training scales the loss with a GradScaler, whose state is saved in the training state (``'scaler'``)
    and restored on resume.
    """

    def optimize_parameters(self, current_iter):
        """One step of ``SRModel``'s training (pixel and perceptual losses, EMA), with the network under autocast.

        The losses are computed in float32; with float16 the loss is scaled by the GradScaler before ``backward``.

        Args:
            current_iter (int): Current iteration.
        """
        self.optimizer_g.zero_grad()
        with autocast(self.device.type, self.switches.amp_dtype):
            self.output = self.net_g(self.lq)
        output = self.output.float()
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(output, self.gt)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(output, self.gt)
            loss_dict.update({k: v for k, v in (('l_percep', l_percep), ('l_style', l_style)) if v is not None})
        l_total = sum(loss_dict.values())
        if self.grad_scaler is None:
            l_total.backward()
            self.optimizer_g.step()
        else:
            self.grad_scaler.scale(l_total).backward()
            self.grad_scaler.step(self.optimizer_g)
            self.grad_scaler.update()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
