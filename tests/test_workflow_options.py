"""The shipped option files: they load with BasicSR's YAML loader, build their network, and agree on the scale."""

from pathlib import Path

import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY

from san_plugin.models.network_switches import NetworkSwitches, parse_switches

OPTIONS = Path(__file__).resolve().parents[1] / 'options'
NETS = ('SAN', 'RCAN', 'DRLN')
SCALES = (2, 3, 4, 8)
PHASES = ('train', 'test')
# Keys through which the files for different networks may differ (flattened, dotted).
NETWORK_KEYS = ('name', 'network_g.', 'path.pretrain_network_g')


@pytest.fixture(autouse=True)
def _one_thread():
    """Full-size networks on tiny inputs: one thread avoids the thread-pool overhead on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(phase, net, scale):
    with open(OPTIONS / phase / f'{phase}_{net}_x{scale}.yml') as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def flatten(tree, prefix=''):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def require_arch(net):
    if net not in ARCH_REGISTRY:
        pytest.skip(f'arch {net} is not registered yet')


def test_exactly_the_expected_files_exist():
    expected = {f'{phase}/{phase}_{net}_x{scale}.yml' for phase in PHASES for net in NETS for scale in SCALES}
    found = {str(path.relative_to(OPTIONS)) for phase in PHASES for path in (OPTIONS / phase).glob('*.yml')}
    assert found == expected


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('net', NETS)
def test_network_builds_and_upscales_by_the_file_scale(net, scale):
    require_arch(net)
    train, test = load('train', net, scale), load('test', net, scale)
    assert train['network_g'] == test['network_g']
    network = build_network(train['network_g']).eval()
    with torch.no_grad():
        out = network(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 8 * scale, 8 * scale)


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('net', NETS)
@pytest.mark.parametrize('phase', PHASES)
def test_scale_is_consistent(phase, net, scale):
    opt = load(phase, net, scale)
    assert opt['scale'] == opt['network_g']['upscale'] == scale
    assert opt['model_type'] == 'SANModel'
    assert opt['num_gpu'] == 'auto'
    metrics = opt['val']['metrics']
    assert set(metrics) == {'psnr', 'ssim'}
    for metric in metrics.values():
        assert metric['crop_border'] == scale
        assert metric['test_y_channel'] is True
    for dataset in opt['datasets'].values():
        assert dataset['dataroot_lq'].endswith((f'x{scale}', f'X{scale}_sub.lmdb'))
    if phase == 'train':
        assert opt['datasets']['train']['gt_size'] == 48 * scale
        assert opt['datasets']['train']['batch_size_per_gpu'] == 16
    else:
        assert opt['path']['pretrain_network_g'] == f'experiments/pretrained_models/{net}_BIX{scale}.pt'
        assert opt['path']['strict_load_g'] is True
        assert [d['name'] for d in opt['datasets'].values()] == ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('net', ('RCAN', 'DRLN'))
@pytest.mark.parametrize('phase', PHASES)
def test_networks_differ_only_in_network_keys(phase, net, scale):
    san, other = flatten(load(phase, 'SAN', scale)), flatten(load(phase, net, scale))
    differing = {key for key in san.keys() | other.keys() if san.get(key) != other.get(key)}
    assert differing, 'the files should at least differ in the network'
    assert all(key.startswith(NETWORK_KEYS) for key in differing), sorted(differing)


def test_san_training_recipe():
    """The authors' recipe: Adam (0.9, 0.99), lr 1e-4 halved every 10k iterations (200 epochs of 50), L1."""
    train = load('train', 'SAN', 4)['train']
    assert train['optim_g'] == {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
    assert train['scheduler']['milestones'] == list(range(10000, train['total_iter'], 10000))
    assert train['scheduler']['gamma'] == 0.5
    assert train['pixel_opt']['type'] == 'L1Loss'
    assert load('train', 'SAN', 4)['network_g'] == {
        'type': 'SAN',
        'num_in_ch': 3,
        'num_out_ch': 3,
        'num_feat': 64,
        'num_group': 20,
        'num_block': 10,
        'squeeze_factor': 16,
        'upscale': 4,
        'img_range': 255.0,
        'rgb_mean': [0.4488, 0.4371, 0.4040],
    }


@pytest.mark.parametrize('path', sorted(OPTIONS.glob('*/*.yml')), ids=lambda path: path.name)
def test_every_file_documents_the_switches_all_off(path):
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    assert {'use_amp', 'amp_dtype', 'channels_last', 'compile', 'compile_mode'} <= set(opt)
    assert parse_switches(opt) == NetworkSwitches()
