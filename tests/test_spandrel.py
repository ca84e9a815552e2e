"""SAN and DRLN through spandrel's own API (``ModelLoader``, ``MAIN_REGISTRY``): every format the plugin reads, every
scale, width and depth, detection of spandrel's own architectures unchanged, and a cross-check of the plugin's RCAN
conversion against spandrel's independent RCAN."""

import copy
import re
import subprocess
import sys

import pytest
import torch
from basicsr.archs.rcan_arch import RCAN
from conftest import REPO_ROOT
from helpers.fixture_weights import fixture_and_weights

import san_plugin
from san_plugin.archs.drln_arch import DRLN
from san_plugin.archs.san_arch import SAN
from san_plugin.convert.checkpoint_io import save_weights_file
from san_plugin.convert.convert_file import convert_file
from san_plugin.convert.network_config import complete_config, network_record
from san_plugin.convert.original import original_arch, state_to_original
from san_plugin.convert.original_rcan import rcan_state_to_original
from san_plugin.inference import load_model

spandrel = pytest.importorskip('spandrel', reason="the spandrel extra (pip install '.[spandrel]')")
san_spandrel = pytest.importorskip('san_plugin.spandrel')

ODD_SIZE = (13, 17)
FORMATS = ['authors.pt', 'params.pth', 'params_ema.pth', 'safetensors']


def write_format(folder, authors_state, fmt):
    """Write the authors'-format weights in one of the plugin's formats into the new ``folder``; returns the path."""
    folder.mkdir()
    authors = folder / 'authors.pt'
    torch.save(authors_state, authors)
    if fmt == 'authors.pt':
        return authors
    if fmt == 'safetensors':
        path = folder / 'converted.safetensors'
        convert_file(authors, path)
        return path
    params = folder / 'params.pth'
    convert_file(authors, params)
    if fmt == 'params.pth':
        return params
    saved = torch.load(params, weights_only=True)  # as SANModel writes an EMA run: params_ema beside the record
    path = folder / 'params_ema.pth'
    torch.save({'params_ema': saved['params'], 'network_config': saved['network_config']}, path)
    return path


def base_registry():
    """spandrel's registry as shipped: its own architectures only."""
    registry = spandrel.ArchRegistry()
    ours = (san_spandrel.SAN_ARCH, san_spandrel.DRLN_ARCH)
    registry.add(*(support for support in spandrel.MAIN_REGISTRY if support.architecture not in ours))
    return registry


def claimed_by(registry, state_dict):
    """Ids of the registry's architectures whose detection accepts the (canonicalised) state dict."""
    state_dict = spandrel.canonicalize_state_dict(state_dict)
    return [support.architecture.id for support in registry.architectures('detection') if support.detect(state_dict)]


@pytest.mark.slow
def test_importing_san_plugin_does_not_import_spandrel():
    code = 'import sys, san_plugin; assert "spandrel" not in sys.modules, "spandrel imported"'
    subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO_ROOT)


def test_install_is_idempotent():
    san_spandrel.install()
    count = len(spandrel.MAIN_REGISTRY)
    assert san_spandrel.install() == []
    assert len(spandrel.MAIN_REGISTRY) == count
    assert spandrel.MAIN_REGISTRY.get('SAN').architecture is san_spandrel.SAN_ARCH
    assert spandrel.MAIN_REGISTRY.get('DRLN').architecture is san_spandrel.DRLN_ARCH


@pytest.mark.parametrize(
    'name, arch, formats',
    [
        ('san_x3_g2b2.pt', 'SAN', FORMATS),
        ('san_x4_g2b2.pt', 'SAN', FORMATS),
        pytest.param('drln_x4_full.pt', 'DRLN', FORMATS[:2] + FORMATS[3:], marks=pytest.mark.slow),  # 34M parameters
    ],
)
def test_model_loader_reproduces_the_plugin_network(tmp_path, name, arch, formats):
    """The fixture's authors' weights and their conversions, loaded by spandrel, compute what the plugin's network
    computes (within 1e-5) at an odd size, in float32 and in each reduced precision the descriptor claims; and each
    claim holds: the whole network cast to that dtype stays finite and close to float32 (measured on the fixtures:
    largest difference 0.067, mean 0.004)."""
    fixture, weights = fixture_and_weights(name)
    lq = torch.rand(1, 3, *ODD_SIZE)
    net = san_plugin.from_original(weights)
    with torch.no_grad():
        expected = {torch.float32: net(lq).clamp(0, 1)}
        for dtype in (torch.bfloat16, torch.float16):  # each cast from the float32 weights: casts are lossy
            expected[dtype] = copy.deepcopy(net).to(dtype)(lq.to(dtype)).clamp(0, 1).float()
    for fmt in formats:
        path = write_format(tmp_path / fmt, weights, fmt)
        with pytest.raises(spandrel.UnsupportedModelError):  # not taken for RCAN or any other architecture
            spandrel.ModelLoader(registry=base_registry()).load_from_file(path)
        san_spandrel.install()
        descriptor = spandrel.ModelLoader().load_from_file(path)
        assert descriptor.architecture.id == arch and isinstance(descriptor.model, type(net)), fmt
        assert descriptor.scale == fixture['config']['scale']
        assert descriptor.input_channels == descriptor.output_channels == 3
        assert descriptor.purpose == 'SR' and descriptor.tiling == spandrel.ModelTiling.SUPPORTED
        assert descriptor.supports_bfloat16 and descriptor.supports_half
        # the authors' own outputs
        assert (descriptor(fixture['inputs'][0]) - fixture['outputs'][0].clamp(0, 1)).abs().max().item() < 1e-4
        for dtype, reference in expected.items():
            out = copy.deepcopy(descriptor).to(dtype)(lq.to(dtype))
            assert out.dtype == dtype
            assert out.shape[-2:] == (ODD_SIZE[0] * descriptor.scale, ODD_SIZE[1] * descriptor.scale)
            assert (out.float() - reference).abs().max().item() <= 1e-5, (fmt, dtype)
            to_float32 = (out.float() - expected[torch.float32]).abs()
            assert torch.isfinite(out).all(), dtype
            assert to_float32.max().item() < 0.1 and to_float32.mean().item() < 0.01, dtype


SAN_SHAPES = [
    {'upscale': 2, 'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4},
    {'upscale': 3, 'num_feat': 8, 'num_group': 3, 'num_block': 2, 'squeeze_factor': 2, 'nonlocal_reduction': 2},
    {'upscale': 4, 'num_feat': 24, 'num_group': 2, 'num_block': 3, 'squeeze_factor': 8},
    {'upscale': 8, 'num_feat': 16, 'num_group': 1, 'num_block': 2, 'squeeze_factor': 4},
]
DRLN_SHAPES = [{'upscale': scale, 'num_feat': 8, 'squeeze_factor': 4} for scale in (2, 3, 4, 8)]
# Networks that exist in our key names only: SAN's ablation variants and shallower DRLNs (no authors' format).
TINY_SAN = {'upscale': 2, 'num_feat': 16, 'num_group': 2, 'num_block': 1, 'squeeze_factor': 4}
OURS_ONLY = [
    ('SAN', SAN, {**TINY_SAN, 'channel_attention': 'first_order'}),
    ('SAN', SAN, {**TINY_SAN, 'channel_attention': 'none', 'upscale': 3}),
    ('SAN', SAN, {**TINY_SAN, 'use_nonlocal': False}),
    ('SAN', SAN, {**TINY_SAN, 'share_source_skip': False, 'upscale': 4}),
    ('SAN', SAN, {**TINY_SAN, 'channel_attention': 'laplacian'}),
    ('SAN', SAN, {**TINY_SAN, 'channel_attention': 'laplacian', 'attention_placement': 'block', 'upscale': 3}),
    ('SAN', SAN, {**TINY_SAN, 'attention_placement': 'block'}),
    ('SAN', SAN, {**TINY_SAN, 'channel_attention': 'first_order', 'attention_placement': 'block', 'upscale': 4}),
    ('DRLN', DRLN, {'upscale': 2, 'num_feat': 8, 'squeeze_factor': 4, 'cascade_sizes': [2]}),
    ('DRLN', DRLN, {'upscale': 4, 'num_feat': 8, 'squeeze_factor': 4, 'cascade_sizes': [1, 2, 1]}),
]


def state_dicts_of_every_shape():
    """(arch, config, state dict) in our key names and in the authors', over scales, widths, depths and variants."""
    cases = []
    for arch, network, shapes in (('SAN', SAN, SAN_SHAPES), ('DRLN', DRLN, DRLN_SHAPES)):
        for config in shapes:
            state = network(**config).state_dict()
            full = complete_config(arch, config, arch)
            cases += [(arch, config, state), (arch, config, state_to_original(arch, state, full))]
    return cases + [(arch, config, network(**config).state_dict()) for arch, network, config in OURS_ONLY]


@pytest.mark.slow
def test_every_scale_width_and_depth_is_detected_and_loaded():
    san_spandrel.install()
    base = base_registry()
    for arch, config, state in state_dicts_of_every_shape():
        assert claimed_by(base, state) == [], (arch, config)
        assert claimed_by(spandrel.MAIN_REGISTRY, state) == [arch], (arch, config)
        descriptor = spandrel.MAIN_REGISTRY.load(state)
        assert descriptor.scale == config['upscale']
        assert descriptor.input_channels == descriptor.output_channels == 3
        assert f'{config["num_feat"]}nf' in descriptor.tags
        lq = torch.rand(1, descriptor.input_channels, 5, 7)
        assert descriptor(lq).shape[-2:] == (5 * config['upscale'], 7 * config['upscale'])
        if original_arch(state) is None:  # our key names: the very network, with the very tensors
            loaded = descriptor.model.state_dict()
            assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state), config


def spandrel_own_state_dicts():
    """State dicts of spandrel's own architectures at small sizes: id -> state dict."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.RCAN import RCAN as SpandrelRCAN
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    return {
        'RCAN': SpandrelRCAN(scale=2, n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4).state_dict(),
        'ESRGAN': ESRGAN(num_filters=16, num_blocks=2, scale=4).state_dict(),
        'Compact': Compact(num_feat=16, num_conv=4, upscale=2).state_dict(),
        'SPAN': SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2).state_dict(),
        'SwinIR': SwinIR(
            embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=2, upsampler='pixelshuffle'
        ).state_dict(),
    }


def test_spandrel_detection_of_its_own_architectures_is_unchanged(tmp_path):
    """Before and after install(), from state dicts and from files written with the plugin's network record."""
    base = base_registry()
    san_spandrel.install()
    record = network_record({'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3})
    for arch_id, state in spandrel_own_state_dicts().items():
        before = base.load(state)
        after = spandrel.MAIN_REGISTRY.load(state)
        assert before.architecture.id == after.architecture.id == arch_id
        assert (before.scale, before.tags) == (after.scale, after.tags), arch_id
        assert not san_spandrel.SAN_ARCH.detect(state) and not san_spandrel.DRLN_ARCH.detect(state), arch_id
        for suffix in ('.pth', '.safetensors'):
            path = tmp_path / f'{arch_id}{suffix}'
            save_weights_file(state, path, record=record)
            loaded = spandrel.ModelLoader().load_from_file(path)
            assert (loaded.architecture.id, loaded.scale, loaded.tags) == (arch_id, after.scale, after.tags), path


def test_rcan_conversion_agrees_with_spandrel_rcan(tmp_path):
    """The same authors'-format RCAN weights through spandrel's RCAN and through the plugin's conversion to
    BasicSR's RCAN: equal outputs while the mean-shift layers are the fixed shift BasicSR assumes; with
    ``add_mean.bias`` off by ``delta``, outputs differ by exactly what the converter reports, divided by 255."""
    authors = rcan_state_to_original(RCAN(3, 3, upscale=2, num_feat=16, num_group=2, num_block=2, squeeze_factor=4)
                                     .state_dict())  # fmt: skip
    lq = torch.rand(1, 3, *ODD_SIZE)
    for delta in (0.0, 1.5):
        src = tmp_path / f'RCAN_BIX2_{delta}.pt'
        torch.save({**authors, 'add_mean.bias': authors['add_mean.bias'] + torch.tensor([0.0, delta, 0.0])}, src)
        summary = convert_file(src, tmp_path / f'rcan_{delta}.pth')
        note = next(note for note in summary['notes'] if 'mean-shift' in note)
        reported = {key: float(value) for key, value in re.findall(r'(\w+_mean\.\w+) ([-+.e\d]+)', note)}
        assert reported['add_mean.bias'] == pytest.approx(delta, abs=1e-4)
        assert reported['sub_mean.weight'] == reported['add_mean.weight'] == 0 and reported['sub_mean.bias'] < 1e-4
        theirs = spandrel.ModelLoader(registry=base_registry()).load_from_file(src)
        assert theirs.architecture.id == 'RCAN'
        ours, _ = load_model(tmp_path / f'rcan_{delta}.pth')
        with torch.no_grad():
            difference = theirs.model.eval()(lq.clone()) - ours(lq)  # spandrel's RCAN scales its input in place
        assert (difference[:, 1] - reported['add_mean.bias'] / 255).abs().max().item() <= 1e-5
        assert difference[:, [0, 2]].abs().max().item() <= 1e-5
