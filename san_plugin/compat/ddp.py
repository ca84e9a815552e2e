"""Distributed training on CPU for every BasicSR model: DDP without a CUDA device."""

from basicsr.models.base_model import BaseModel
from torch.nn.parallel import DistributedDataParallel


def wrap_model_to_device(model_to_device):
    """Wrap ``BaseModel.model_to_device`` (BasicSR 1.4.2) so that distributed runs on CPU work.

    BasicSR wraps the network in ``DistributedDataParallel(net, device_ids=[torch.cuda.current_device()])``, which
    fails without a GPU ("Found no NVIDIA driver"), although :func:`san_plugin.compat.dist.init_dist` lets
    ``torchrun ... --launcher pytorch`` start Gloo there. For a distributed run on the CPU the wrapper moves the
    network to the CPU and wraps it in DDP without ``device_ids``, honouring ``find_unused_parameters`` as BasicSR
    does; every other case (GPU runs, non-distributed runs) calls BasicSR's method unchanged.

    Args:
        model_to_device (callable): BasicSR's ``BaseModel.model_to_device(self, net)``.

    Returns:
        callable: The wrapper, with the same signature and return value.
    """

    def model_to_device_on_any_device(self, net):
        if not (self.opt['dist'] and self.device.type == 'cpu'):
            return model_to_device(self, net)
        find_unused_parameters = self.opt.get('find_unused_parameters', False)
        return DistributedDataParallel(net.to(self.device), find_unused_parameters=find_unused_parameters)

    model_to_device_on_any_device.__doc__ = model_to_device.__doc__
    model_to_device_on_any_device.san_plugin_fix = True
    return model_to_device_on_any_device


def apply_ddp_fix():
    """Install :func:`wrap_model_to_device` on ``BaseModel`` (every BasicSR model inherits it) once."""
    if not getattr(BaseModel.model_to_device, 'san_plugin_fix', False):
        BaseModel.model_to_device = wrap_model_to_device(BaseModel.model_to_device)
