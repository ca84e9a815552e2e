"""Top-level options of the plugin's models (``SANModel``, ``SANGANModel``) that change how any network runs:
autocast, channels-last, ``torch.compile``.

Options (all off by default)::

    use_amp: false          # autocast the network's forward in training and testing
    amp_dtype: bfloat16     # bfloat16 | float16 (float16 training uses a GradScaler)
    channels_last: false    # channels-last memory format for the network and its inputs
    compile: false          # torch.compile the network (in place: checkpoint keys keep their names)
    compile_mode: default   # default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs

A switch an architecture cannot use (:data:`UNSUPPORTED`), that a model's training step cannot use, or that this
machine cannot provide, is turned off with a warning that says why; the run goes on without it.
"""

import shutil
import warnings
from dataclasses import dataclass, replace

import torch
from torch._inductor import config as inductor_config

from san_plugin.utils.compile import COMPILE_MODES, compile_network
from san_plugin.utils.precision import AMP_DTYPES

# (arch type, switch) -> why that architecture cannot use the switch. Each entry must be a measured failure of the
# switch on that arch. Checked on CPU with torch 2.14.1 (forward, backward, two input sizes): SAN, DRLN and BasicSR's
# RCAN, EDSR, MSRResNet, RRDBNet, SwinIR, ECBSR, SRVGGNetCompact and RIDNet all run under bfloat16 and float16
# autocast, channels-last and torch.compile (once Inductor's layout optimisation is off, see
# san_plugin.utils.compile), so no entry is known yet.
UNSUPPORTED = {}


@dataclass(frozen=True)
class NetworkSwitches:
    """How the network runs.

    Args:
        amp_dtype (str | None): Autocast dtype (a key of ``AMP_DTYPES``); None: float32.
        channels_last (bool): Channels-last memory format.
        compile_mode (str | None): ``torch.compile`` mode; None: eager.
    """

    amp_dtype: str | None = None
    channels_last: bool = False
    compile_mode: str | None = None

    @property
    def needs_grad_scaler(self):
        """Whether training needs a GradScaler (float16 gradients underflow without loss scaling)."""
        return self.amp_dtype == 'float16'


def _flag(opt, key):
    """Read the boolean option ``key`` (default false).

    Args:
        opt (dict): Options.
        key (str): Option name.

    Returns:
        bool: Its value.
    """
    value = opt.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f'option {key}: expected true or false, got {value!r}')
    return value


def _choice(opt, key, default, choices):
    """Read the option ``key``, one of ``choices``.

    Args:
        opt (dict): Options.
        key (str): Option name.
        default (str): Value when the key is absent.
        choices (tuple[str]): Allowed values.

    Returns:
        str: Its value.
    """
    value = opt.get(key, default)
    if value not in choices:
        raise ValueError(f'option {key}: expected one of {", ".join(choices)}, got {value!r}')
    return value


def parse_switches(opt):
    """Read and check the switches of an options dict (the top level of a BasicSR options file).

    Args:
        opt (dict): Options.

    Returns:
        NetworkSwitches: The switches asked for.
    """
    amp_dtype = _choice(opt, 'amp_dtype', 'bfloat16', tuple(AMP_DTYPES))
    compile_mode = _choice(opt, 'compile_mode', 'default', COMPILE_MODES)
    return NetworkSwitches(
        amp_dtype=amp_dtype if _flag(opt, 'use_amp') else None,
        channels_last=_flag(opt, 'channels_last'),
        compile_mode=compile_mode if _flag(opt, 'compile') else None,
    )


def _unavailable_here(switch, value, device):
    """Why this machine cannot provide ``switch``.

    Args:
        switch (str): ``'use_amp'``, ``'channels_last'`` or ``'compile'``.
        value (str | bool): The switch's value (the autocast dtype for ``use_amp``).
        device (torch.device): Where the network runs.

    Returns:
        str | None: The reason, or None if it can.
    """
    if switch == 'use_amp':
        if not torch.amp.autocast_mode.is_autocast_available(device.type):
            return f'autocast is not available on {device.type}'
        if device.type == 'cuda' and value == 'bfloat16' and not torch.cuda.is_bf16_supported():
            return 'this GPU does not support bfloat16'
    if switch == 'compile':
        compilers = [name for name in inductor_config.cpp.cxx if name]  # None: a conda download, off by default
        if device.type == 'cpu' and not any(shutil.which(name) for name in compilers):
            names = ' or '.join(compilers)
            return f'torch.compile on CPU needs a C++ compiler ({names}; $CXX names another) and none was found'
        if device.type == 'cuda' and not torch.utils._triton.has_triton():
            return 'torch.compile on CUDA needs Triton, which is not installed'
    return None


def resolve_switches(switches, arch, device, logger=None, model_unsupported=None):
    """Turn off, with a warning, the switches ``arch`` cannot use (:data:`UNSUPPORTED`), the model's training step
    cannot use (``model_unsupported``) or ``device`` cannot provide.

    Args:
        switches (NetworkSwitches): The switches asked for.
        arch (str): The network's type in the options (``network_g: type``).
        device (torch.device): Where the network runs.
        logger (logging.Logger | None): Also gets the warnings. Default: None.
        model_unsupported (dict[str, str] | None): Switch -> why the model cannot use it. Default: None.

    Returns:
        NetworkSwitches: The switches the run uses.
    """
    fields = {'use_amp': 'amp_dtype', 'channels_last': 'channels_last', 'compile': 'compile_mode'}
    off = {'amp_dtype': None, 'channels_last': False, 'compile_mode': None}
    for switch, field in fields.items():
        value = getattr(switches, field)
        if not value:
            continue
        reason = (
            UNSUPPORTED.get((arch, switch))
            or (model_unsupported or {}).get(switch)
            or _unavailable_here(switch, value, device)
        )
        if reason is None:
            continue
        message = f'{switch}: turned off for {arch} on {device.type}: {reason}'
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        if logger is not None:
            logger.warning(message)
        switches = replace(switches, **{field: off[field]})
    return switches


def apply_switches(net, switches):
    """Put ``net`` in the switches' memory format and compile it in place, with dynamic shapes (training crops, test
    images and tiles differ in size).

    Args:
        net (nn.Module): Bare network, already on its device.
        switches (NetworkSwitches): Resolved switches.

    Returns:
        nn.Module: ``net``.
    """
    if switches.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if switches.compile_mode is not None:
        net = compile_network(net, mode=switches.compile_mode, dynamic=True)
    return net


def to_memory_format(tensor, switches):
    """``tensor`` in the switches' memory format.

    Args:
        tensor (Tensor): A batch; only 4-D tensors are converted.
        switches (NetworkSwitches): Resolved switches.

    Returns:
        Tensor: ``tensor``, channels-last if the switches ask for it.
    """
    if switches.channels_last and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor
