"""Model specs of the benchmarks: ``bicubic``, ``name=WEIGHTS``, ``name=OPTIONS.yml``, ``name=type:ARCH,key:value``.

A spec becomes a network for one scale with :meth:`ModelSpec.build`. Weight files of any format go through
``san_plugin.convert.loading`` (architecture and configuration from the file's record or its tensors, the authors'
formats converted); options files load their ``pretrain_network_g`` as ``tools/test.py`` does, with ``param_key_g``
and ``strict_load_g``.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml
from basicsr.archs import build_network

from san_plugin.convert.loading import load_into_network, read_network_file

BICUBIC = 'bicubic'
OPTION_SUFFIXES = ('.yml', '.yaml')
# How a benchmark user gives settings that a weights file neither records nor shows.
OVERRIDE_HINT = '--network-opt key=value, or NAME=OPTIONS.yml with a network_g block'

# The networks at the sizes of their papers, for the speed benchmark.
PAPER_NETWORKS = {
    'san': {'type': 'SAN', 'num_feat': 64, 'num_group': 20, 'num_block': 10, 'squeeze_factor': 16},
    'rcan': {'type': 'RCAN', 'num_feat': 64, 'num_group': 10, 'num_block': 20, 'squeeze_factor': 16},
    'drln': {'type': 'DRLN', 'num_feat': 64},
}
# The discriminator of the GAN step (BasicSR's ESRGAN recipe); its input_size is the GT patch side.
PAPER_DISCRIMINATOR = {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 64}
GAN_GT_SIZES = (128, 256)  # the input sizes VGGStyleDiscriminator takes


def discriminator_opt(gt_size, scale):
    """``network_d`` options of the GAN step's discriminator for ``gt_size`` GT patches at ``scale``.

    Args:
        gt_size (int): GT patch side (``--gan-gt-size``).
        scale (int): Upscaling factor; it must divide ``gt_size``.

    Returns:
        dict: :data:`PAPER_DISCRIMINATOR` with its ``input_size``.
    """
    if gt_size not in GAN_GT_SIZES or gt_size % scale:
        sizes = ' or '.join(map(str, GAN_GT_SIZES))
        raise ValueError(f'--gan-gt-size {gt_size}: VGGStyleDiscriminator takes {sizes}, a multiple of --scale {scale}')
    return {**PAPER_DISCRIMINATOR, 'input_size': gt_size}


def paper_network_opt(name, scale):
    """``network_g`` options of a network of :data:`PAPER_NETWORKS` at ``scale``."""
    if name not in PAPER_NETWORKS:
        raise ValueError(f'unknown model {name!r} for --models; choose from {sorted(PAPER_NETWORKS)}')
    return {**PAPER_NETWORKS[name], 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': scale}


@dataclass
class ModelSpec:
    """One model of a benchmark.

    Args:
        name (str): Name shown in reports.
        network_opt (dict | None): BasicSR ``network_g`` options; None for bicubic upscaling.
        weights (str | None): Weights file loaded into the network; None leaves it untrained.
        origin (str): Where the spec came from (flag or option key), for error messages.
        param_key (str | None): Key of the weights in a BasicSR file (``path.param_key_g``). Default: 'params'.
        strict (bool): Require every key to match (``path.strict_load_g``). Default: True.
    """

    name: str
    network_opt: dict | None = None
    weights: str | None = None
    origin: str = '--model'
    param_key: str | None = 'params'
    strict: bool = True

    @property
    def is_bicubic(self):
        return self.network_opt is None

    def supports(self, scale):
        """Whether the model upscales by ``scale`` (networks without a fixed ``upscale`` take any)."""
        return self.is_bicubic or self.network_opt.get('upscale', scale) == scale

    def build(self, scale):
        """The network for ``scale`` in eval mode on the CPU, its weights loaded; None for bicubic."""
        if self.is_bicubic:
            return None
        if not self.supports(scale):
            raise ValueError(
                f'{self.origin} {self.name}: the network upscales x{self.network_opt["upscale"]}, not x{scale}'
            )
        opt = copy.deepcopy(self.network_opt)
        opt.setdefault('upscale', scale)
        try:
            net = build_network(opt)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'{self.origin} {self.name}: cannot build network {self.network_opt}: {error}') from error
        if self.weights is not None:
            try:
                load_into_network(net, self.weights, self.param_key, self.strict, network_opt=opt)
            except (RuntimeError, ValueError) as error:
                raise ValueError(f'{self.origin} {self.name}: {error}') from error
        return net.eval()


def _inline_network_opt(text, origin):
    opt = {}
    for item in text.split(','):
        key, sep, value = item.partition(':')
        if not sep or not key.strip():
            raise ValueError(f'{origin}: {item!r} in {text!r} is not key:value')
        opt[key.strip()] = yaml.safe_load(value)
    return opt


def _options_file_spec(name, path, origin):
    try:
        options = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f'{origin} {name}: cannot read options file {path}: {error}') from error
    if not isinstance(options, dict) or not isinstance(options.get('network_g'), dict):
        raise ValueError(f'{origin} {name}: options file {path} has no network_g block')
    path_opt = options.get('path') or {}
    weights = path_opt.get('pretrain_network_g')
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f'{origin} {name}: path.pretrain_network_g of {path} ({weights}) does not exist')
    # As BasicSR's SRModel reads them for tools/test.py.
    param_key = path_opt.get('param_key_g', 'params')
    strict = path_opt.get('strict_load_g', True)
    return ModelSpec(name, dict(options['network_g']), weights, origin, param_key, strict)


def _weights_file_spec(name, path, origin, network_opt=None):
    try:
        arch, _, config, _, _, _ = read_network_file(path, network_opt=network_opt, override_hint=OVERRIDE_HINT)
    except (OSError, ValueError) as error:
        raise ValueError(f'{origin} {name}: {error}') from error
    if arch is None:
        raise ValueError(
            f'{origin} {name}: the network of weights file {path} is not recognised; '
            f'give an options file with its network_g instead (NAME=OPTIONS.yml)'
        )
    return ModelSpec(name, {'type': arch, **config}, str(path), origin)


def parse_model_spec(text, origin='--model', network_opt=None):
    """Parse one model spec.

    Args:
        text (str): ``bicubic``; ``NAME=WEIGHTS`` (.pth/.pt/.safetensors of any supported layout);
            ``NAME=OPTIONS.yml`` (its ``network_g`` and ``path.pretrain_network_g``); or
            ``NAME=type:ARCH,key:value,...`` (an untrained network, values read as YAML).
        origin (str): Flag or option key of the spec, named in errors. Default: '--model'.
        network_opt (dict | None): Constructor arguments for a ``NAME=WEIGHTS`` model that its file neither records
            nor shows (``--network-opt``). Default: None.

    Returns:
        ModelSpec: The spec.
    """
    if text == BICUBIC:
        return ModelSpec(BICUBIC, origin=origin)
    name, sep, value = text.partition('=')
    if not sep or not name or not value:
        raise ValueError(f'{origin} {text!r}: expected bicubic, NAME=WEIGHTS, NAME=OPTIONS.yml or NAME=type:ARCH,...')
    return model_spec_from_value(name, value, origin, network_opt)


def model_spec_from_value(name, value, origin, network_opt=None):
    """Build a spec named ``name`` from a string (see :func:`parse_model_spec`) or a ``network_g`` mapping.

    A mapping may hold ``weights`` (a weights file) beside the ``network_g`` keys. ``network_opt`` applies to weights
    files only.
    """
    if isinstance(value, dict):
        opt = dict(value)
        weights = opt.pop('weights', None)
        if 'type' not in opt:
            raise ValueError(f'{origin} {name}: a network_g block needs a type key')
        if weights is not None and not Path(weights).is_file():
            raise FileNotFoundError(f'{origin} {name}: weights file {weights} does not exist')
        return ModelSpec(name, opt, weights, origin)
    if not isinstance(value, str):
        raise ValueError(f'{origin} {name}: expected a string or a network_g mapping, got {value!r}')
    if value == BICUBIC:
        return ModelSpec(name, origin=origin)
    if value.startswith('type:'):
        return ModelSpec(name, _inline_network_opt(value, f'{origin} {name}'), origin=origin)
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f'{origin} {name}: {path} does not exist (expected a weights or options file)')
    if path.suffix in OPTION_SUFFIXES:
        return _options_file_spec(name, path, origin)
    return _weights_file_spec(name, path, origin, network_opt)
