"""Real-ESRNet and Real-ESRGAN training on any device: BasicSR's ``RealESRNetModel`` and ``RealESRGANModel``
without their hard-coded ``.cuda()`` calls when the run is on the CPU."""

import functools

import torch
from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.models.realesrnet_model import RealESRNetModel
from basicsr.utils import DiffJPEG, USMSharp

# BasicSR 1.4.2's models that synthesise their LQ images on the model's device.
REAL_ESR_MODELS = (RealESRNetModel, RealESRGANModel)


def runs_on_cuda(opt):
    """Whether BasicSR puts a model with the options ``opt`` on CUDA (``BaseModel``: ``num_gpu`` other than 0)."""
    return opt['num_gpu'] != 0


def wrap_init(model_class, init):
    """Wrap ``model_class.__init__`` (BasicSR 1.4.2) so that the model can be built on the CPU.

    BasicSR puts the JPEG simulator (``DiffJPEG``) and the unsharp-masking sharpener (``USMSharp``) on the GPU with
    ``.cuda()``, so a run with ``num_gpu: 0`` stops with "Found no NVIDIA driver" (or "Torch not compiled with CUDA
    enabled") before its first iteration. For a CPU run the wrapper does what BasicSR's ``__init__`` does with the
    model's device instead: the parent class's ``__init__``, both modules on ``self.device``, ``queue_size``
    (default 180). A CUDA run calls BasicSR's method unchanged.

    Args:
        model_class (type): ``RealESRNetModel`` or ``RealESRGANModel``.
        init (callable): Its ``__init__(self, opt)``.

    Returns:
        callable: The wrapper, with the same signature; BasicSR's method is its ``__wrapped__``.
    """

    @functools.wraps(init)
    def init_on_any_device(self, opt):
        if runs_on_cuda(opt):
            init(self, opt)
            return
        super(model_class, self).__init__(opt)
        self.jpeger = DiffJPEG(differentiable=False).to(self.device)
        self.usm_sharpener = USMSharp().to(self.device)
        self.queue_size = opt.get('queue_size', 180)

    init_on_any_device.san_plugin_fix = True
    return init_on_any_device


def wrap_dequeue_and_enqueue(dequeue_and_enqueue):
    """Wrap ``_dequeue_and_enqueue`` (BasicSR 1.4.2), the pool of training pairs, so that it works on the CPU.

    BasicSR makes the pool with ``torch.zeros(...).cuda()`` on the first call. On the CPU the wrapper makes the same
    zero-filled pool (``queue_size`` LQ and GT patches of the batch's shapes) on the model's device first, so that
    BasicSR's method finds it and fills, shuffles and swaps exactly as it does on a GPU. A batch size that does not
    divide ``queue_size`` is left to BasicSR's own assertion, which names both. CUDA runs call BasicSR's method
    unchanged.

    Args:
        dequeue_and_enqueue (callable): BasicSR's ``_dequeue_and_enqueue(self)``.

    Returns:
        callable: The wrapper, with the same signature; BasicSR's method is its ``__wrapped__``.
    """

    @functools.wraps(dequeue_and_enqueue)
    def dequeue_and_enqueue_on_any_device(self):
        batch = self.lq.size(0)
        if self.device.type != 'cuda' and not hasattr(self, 'queue_lr') and self.queue_size % batch == 0:
            self.queue_lr = torch.zeros(self.queue_size, *self.lq.shape[1:], device=self.device)
            self.queue_gt = torch.zeros(self.queue_size, *self.gt.shape[1:], device=self.device)
            self.queue_ptr = 0
        dequeue_and_enqueue(self)

    dequeue_and_enqueue_on_any_device.san_plugin_fix = True
    return dequeue_and_enqueue_on_any_device


def apply_real_esr_fix():
    """Install :func:`wrap_init` and :func:`wrap_dequeue_and_enqueue` on :data:`REAL_ESR_MODELS` (and so on their
    subclasses) once."""
    for model_class in REAL_ESR_MODELS:
        if getattr(model_class.__init__, 'san_plugin_fix', False):
            continue
        model_class.__init__ = wrap_init(model_class, model_class.__init__)
        model_class._dequeue_and_enqueue = wrap_dequeue_and_enqueue(model_class._dequeue_and_enqueue)
