"""SAN and DRLN for spandrel, the model loader of chaiNNer, ComfyUI and other image tools.

spandrel (``pip install 'san_plugin[spandrel]'``) recognises an architecture from the keys of a bare state dict; it
has no automatic discovery of extra architectures, so a host application calls :func:`install` once::

    import san_plugin.spandrel
    import spandrel

    san_plugin.spandrel.install()
    model = spandrel.ModelLoader().load_from_file('SAN_BIX4.pt')  # or a BasicSR .pth, or a .safetensors

Both architectures read every format the plugin reads: the authors' ``.pt`` (converted on load), BasicSR ``.pth``
files (spandrel unwraps ``params_ema``, else ``params``) and the plugin's ``.safetensors``, for any scale, width and
depth; in BasicSR's key names also every SAN ablation variant (``channel_attention``, ``attention_placement``,
``use_nonlocal``, ``share_source_skip``, read from which modules the keys show) and DRLNs of other ``cascade_sizes``.
They are added after spandrel's own architectures and claim a state dict only when its complete key set is a SAN's
(or a DRLN's), so no file of another architecture changes hands. spandrel passes the architectures the tensors
only, never a file's recorded configuration: settings that the tensors do not show (SAN's ``img_range``,
``nonlocal_grid``, ``soca_crop``, ``soca_iter``; DRLN's ``img_range``, ``upsample_relu``) take the arch defaults,
which are the authors'.

Importing ``san_plugin`` never imports this module or spandrel.
"""

try:
    import spandrel
except ImportError as error:  # an optional extra
    raise ImportError(
        f"san_plugin.spandrel needs spandrel ({error}); install it with pip install 'san_plugin[spandrel]'"
    ) from error
from spandrel import Architecture, ArchSupport, ImageModelDescriptor, ModelTiling

from san_plugin.convert import original_drln, original_san, ours
from san_plugin.convert.network_config import complete_config
from san_plugin.convert.original import config_from_ours, convert_original_state, original_arch
from san_plugin.utils.network_options import registered_arch

# Keys every SAN (DRLN) state dict has, in the authors' names, in ours, and in ours for every ablation variant
# (depth): a cheap first test, before the complete key set is checked.
SIGNATURE_KEYS = {
    arch: (module.DETECTION_KEYS, tuple(module.RULES.to_ours(key) for key in module.DETECTION_KEYS), variant_keys)
    for arch, module, variant_keys in (('SAN', original_san, ours.SAN_KEYS), ('DRLN', original_drln, ours.DRLN_KEYS))
}
# Measured (tests/test_spandrel.py): the whole network cast to float16 or bfloat16 gives finite outputs close to
# float32 on the reference fixtures; SOCA computes its statistics in float32 whatever the network's dtype.
SUPPORTS_HALF = True
SUPPORTS_BFLOAT16 = True


def recognised_arch(state_dict):
    """``'SAN'``, ``'DRLN'`` or ``'RCAN'`` if the plugin reads ``state_dict`` (authors' or our key names), else None."""
    return original_arch(state_dict) or config_from_ours(state_dict)[0]


def plugin_network(state_dict):
    """The plugin's network for a state dict in the authors' or our key names, and our state dict for it.

    Returns:
        tuple[nn.Module, dict, dict]: The network (untrained), its state dict in our names, its configuration.
    """
    if original_arch(state_dict) is not None:
        arch, state, config, _ = convert_original_state(state_dict)
    else:
        arch, shown = config_from_ours(state_dict)
        state, config = state_dict, complete_config(arch, shown, f'{arch} state dict')
    return registered_arch(arch, 'spandrel')(**config), state, config


class PluginArch(Architecture):
    """A spandrel architecture for one of the plugin's networks (``'SAN'`` or ``'DRLN'``).

    Args:
        arch (str): The arch name, also the spandrel id.
    """

    def __init__(self, arch):
        super().__init__(id=arch, detect=self._detect)
        self.arch = arch

    def _detect(self, state_dict):
        if not any(all(key in state_dict for key in keys) for keys in SIGNATURE_KEYS[self.arch]):
            return False
        try:
            return recognised_arch(state_dict) == self.arch
        except (KeyError, ValueError):  # the signature keys, but not a readable SAN (DRLN)
            return False

    def load(self, state_dict):
        net, state, config = plugin_network(state_dict)
        tags = [f'{config["num_feat"]}nf']
        if 'num_group' in config:
            tags += [f'{config["num_group"]}ng', f'{config["num_block"]}nb']
        return ImageModelDescriptor(
            net,
            state,
            architecture=self,
            purpose='SR',
            tags=tags,
            supports_half=SUPPORTS_HALF,
            supports_bfloat16=SUPPORTS_BFLOAT16,
            scale=config['upscale'],
            input_channels=config['num_in_ch'],
            output_channels=config['num_out_ch'],
            # Any input size runs. Tiled inference is what the authors' own test code does for large images.
            tiling=ModelTiling.SUPPORTED,
        )


SAN_ARCH = PluginArch('SAN')
DRLN_ARCH = PluginArch('DRLN')


def install(registry=None):
    """Add SAN and DRLN to a spandrel registry, after its own architectures; calling it again adds nothing.

    Args:
        registry (spandrel.ArchRegistry | None): Where to add them. Default: ``spandrel.MAIN_REGISTRY``, which
            ``spandrel.ModelLoader()`` uses.

    Returns:
        list[spandrel.ArchSupport]: The architectures added by this call.
    """
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    return registry.add(
        *(ArchSupport.from_architecture(arch) for arch in (SAN_ARCH, DRLN_ARCH)), ignore_duplicates=True
    )
