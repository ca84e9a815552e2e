"""What the plugin adds to any BasicSR model: atomic checkpoints, weights of every format, switches, test-time
options.

:class:`PluginModelMixin` goes before a BasicSR model class in the bases (``class SANModel(PluginModelMixin,
SRModel)``, ``class SANGANModel(PluginModelMixin, ESRGANModel)``), so that its methods wrap BasicSR's through
``super()``; the training step stays the BasicSR model's (or the subclass's own).
"""

from functools import cached_property
from os import path as osp

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only

from san_plugin.models.network_switches import apply_switches, parse_switches, resolve_switches, to_memory_format
from san_plugin.utils.atomic_save import atomic_torch_save, remove_temporaries
from san_plugin.utils.precision import autocast
from san_plugin.utils.test_time import test_forward


class PluginModelMixin:
    """The plugin's features for a BasicSR model built on ``SRModel`` (``SRModel``, ``SRGANModel``,
    ``ESRGANModel``, ...):

    - networks (``.pth``: ``net_g``, ``net_d`` and any other) and training states (``.state``) are written
      atomically (:func:`san_plugin.utils.atomic_save.atomic_torch_save`), a failed write raises instead of being
      ignored, and each save first removes the temporary files of a save that was killed; each network file records
      its ``network_<label>`` options (:mod:`san_plugin.convert.network_config`);
    - ``pretrain_network_g`` may be an authors' SAN/DRLN/RCAN ``.pt``, a BasicSR ``.pth`` or a ``.safetensors``
      (converted on load, strict checks); ``allow_scale_change_g: true`` in ``train`` loads weights of another scale
      into everything but the upsampler of ``net_g``, for fine-tuning across scales; ``pretrain_network_d`` goes
      through the same checks;
    - :meth:`test` runs the network through :meth:`_forward_test`, which applies the test-time options of the
      ``val`` section (``chop``, ``tile``, ``self_ensemble``; see :func:`san_plugin.utils.test_time.test_forward`);
    - top-level switches for any network, all off by default (parsed, checked and resolved in
      :mod:`san_plugin.models.network_switches`), applied to every network the model builds (``net_g``,
      ``net_g_ema``, ``net_d``) and to the ``lq``/``gt`` batches:

      - ``use_amp`` (false) with ``amp_dtype`` (``bfloat16`` | ``float16``): the test forward runs under
        ``torch.autocast``, and so does the training forward of a model whose step supports it (``SANModel``); a
        GradScaler for float16 training is made here, saved in the training state (``'scaler'``) and restored on
        resume; a model whose training step has no autocast lists ``use_amp`` in :attr:`unsupported_switches`;
      - ``channels_last`` (false): networks and ``lq``/``gt`` batches in channels-last memory format;
      - ``compile`` (false) with ``compile_mode`` (``default`` | ``reduce-overhead`` | ``max-autotune`` |
        ``max-autotune-no-cudagraphs``): the bare networks are compiled in place with dynamic shapes before any DDP
        wrapping, so parameter names, EMA updates and saved keys are unchanged (no ``_orig_mod.``);

      a value of the wrong type or outside its choices raises ``ValueError`` naming the key; a switch the network
      (:data:`~san_plugin.models.network_switches.UNSUPPORTED`), the model (:attr:`unsupported_switches`) or the
      machine cannot use is turned off with a warning (``warnings`` and the BasicSR logger) and the run goes on
      without it;
    - distributed training on CPU (:mod:`san_plugin.compat.ddp`).
    """

    # Switches this model's training step cannot use: switch -> why (turned off with a warning).
    unsupported_switches = {}

    @cached_property
    def switches(self):
        """The run's :class:`~san_plugin.models.network_switches.NetworkSwitches`, checked against the arch, the
        model and the device (read on first use: BasicSR builds the network before this class's ``__init__`` body
        runs)."""
        asked = parse_switches(self.opt)
        arch = self.opt['network_g']['type']
        return resolve_switches(asked, arch, self.device, get_root_logger(), self.unsupported_switches)

    def init_training_settings(self):
        """BasicSR's settings, then the switches on ``net_g_ema`` and a GradScaler for float16 training."""
        super().init_training_settings()
        if hasattr(self, 'net_g_ema'):
            self.net_g_ema = apply_switches(self.net_g_ema, self.switches)
        self.grad_scaler = torch.amp.GradScaler(self.device.type) if self.switches.needs_grad_scaler else None

    def feed_data(self, data):
        """Take ``lq`` (and ``gt``) from a batch, in the switches' memory format."""
        super().feed_data(data)
        self.lq = to_memory_format(self.lq, self.switches)
        if hasattr(self, 'gt'):
            self.gt = to_memory_format(self.gt, self.switches)

    def _network_section(self, net):
        """The options section that ``net`` (a bare network) was built from: ``network_d`` or ``network_g``."""
        net_d = getattr(self, 'net_d', None)
        return 'network_d' if net_d is not None and net is self.get_bare_model(net_d) else 'network_g'

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """Load weights of any supported format into ``net`` (see :func:`san_plugin.convert.loading`).

        When the file records its network configuration, every value that differs from the network's options
        (``network_g``, or ``network_d`` for ``net_d``) is logged as a warning.

        Args:
            net (nn.Module): Network.
            load_path (str): Weights file.
            strict (bool): Whether every key must match. Default: True.
            param_key (str | None): Key of the weights in a BasicSR file. Default: 'params'.
        """
        from san_plugin.convert.loading import load_into_network  # the converters load only when weights do

        net = self.get_bare_model(net)
        logger = get_root_logger()
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        section = self._network_section(net)
        allow_scale_change = section == 'network_g' and (self.opt.get('train') or {}).get('allow_scale_change_g', False)
        load_into_network(net, load_path, param_key, strict, allow_scale_change, logger, self.opt.get(section))

    def model_to_device(self, net):
        """Move ``net`` to the model's device with the switches applied, then wrap it as BasicSR does (DDP also on
        CPU: see :mod:`san_plugin.compat.ddp`).

        Args:
            net (nn.Module): Network.

        Returns:
            nn.Module: The network, wrapped for distributed or multi-GPU training when the options ask for it.
        """
        return super().model_to_device(apply_switches(net.to(self.device), self.switches))

    def _forward_test(self, net, lq):
        """Super-resolve ``lq`` with ``net`` for validation and testing; called under ``torch.no_grad()``.

        The bare network is used: a DDP wrapper would wait in collective calls for ranks that do not validate.

        Args:
            net (nn.Module): ``net_g`` or ``net_g_ema``, possibly wrapped.
            lq (Tensor): Low-quality batch, (b, c, h, w).

        Returns:
            Tensor: Output batch in float32, (b, c, h * scale, w * scale).
        """
        val = self.opt.get('val') or {}
        with autocast(self.device.type, self.switches.amp_dtype):
            output = test_forward(
                self.get_bare_model(net),
                lq,
                self.opt['scale'],
                chop=val.get('chop', False),
                shave=val.get('chop_shave', 10),
                min_size=val.get('chop_min_size', 160000),
                tile=val.get('tile'),
                tile_pad=val.get('tile_pad', 10),
                self_ensemble=val.get('self_ensemble', False),
            )
        return output.float()

    def test(self):
        """Set ``self.output`` from ``self.lq`` with ``net_g_ema`` if there is one, else ``net_g``, in eval mode."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = self._forward_test(net, self.lq)
        net.train(was_training)

    def _cpu_state_dict(self, net):
        """State dict of the bare ``net`` on the CPU, without a ``module.`` prefix."""
        state = self.get_bare_model(net).state_dict()
        return {key.removeprefix('module.'): value.cpu() for key, value in state.items()}

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """Save networks to ``<models>/<net_label>_<iter>.pth`` (``latest`` for iteration -1), atomically.

        The file records the network's complete configuration (the ``network_<label>`` options, e.g. ``network_g``
        for ``net_g``, merged with the constructor's defaults) under the top-level key ``network_config``, which
        BasicSR's ``load_network`` and spandrel ignore (see :mod:`san_plugin.convert.network_config`).

        Args:
            net (nn.Module | list[nn.Module]): Network(s) to save.
            net_label (str): Network label, e.g. ``'net_g'``.
            current_iter (int): Current iteration; -1 for the final save.
            param_key (str | list[str]): Key(s) of the network(s) in the file. Default: ``'params'``.
        """
        from san_plugin.convert.network_config import RECORD_KEY, network_record  # loads the converters: when used

        nets = net if isinstance(net, list) else [net]
        param_keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(param_keys):
            raise ValueError(f'{len(nets)} networks but {len(param_keys)} param keys to save them under')
        suffix = 'latest' if current_iter == -1 else current_iter
        save_dict = {key: self._cpu_state_dict(net_) for net_, key in zip(nets, param_keys)}
        section = f'network_{net_label.removeprefix("net_")}'
        if section in self.opt:
            save_dict[RECORD_KEY] = network_record(self.opt[section], section)
        remove_temporaries(self.opt['path']['models'])  # left by a save that was killed
        atomic_torch_save(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{suffix}.pth'))

    def resume_training(self, resume_state):
        """Reload the optimizers and schedulers, and the GradScaler of float16 training.

        Args:
            resume_state (dict): Training state written by :meth:`save_training_state`.
        """
        super().resume_training(resume_state)
        if self.grad_scaler is None:
            if 'scaler' in resume_state:
                get_root_logger().info('the training state has a GradScaler state, unused: this run is not float16')
        elif 'scaler' in resume_state:
            self.grad_scaler.load_state_dict(resume_state['scaler'])
        else:
            get_root_logger().warning('the training state has no GradScaler state (not a float16 run): fresh scale')

    @master_only
    def save_training_state(self, epoch, current_iter):
        """Save optimizer, scheduler (and GradScaler) states to ``<training_states>/<iter>.state``, atomically.

        Args:
            epoch (int): Current epoch.
            current_iter (int): Current iteration; -1 (the final save) writes nothing, as in BasicSR.
        """
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [optimizer.state_dict() for optimizer in self.optimizers],
            'schedulers': [scheduler.state_dict() for scheduler in self.schedulers],
        }
        if self.grad_scaler is not None:
            state['scaler'] = self.grad_scaler.state_dict()
        remove_temporaries(self.opt['path']['training_states'])  # left by a save that was killed
        atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))
