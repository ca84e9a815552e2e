"""The shipped option files: they load with BasicSR's YAML loader, build their network, agree on the scale, and
implement the two training recipes (the SAN paper's and the SAN authors' code's) for every network alike; the GAN
files follow BasicSR's ESRGAN recipe for every network alike, and the Real-ESR* files Real-ESRGAN's two steps."""

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
RECIPES = ('paper', 'code')
# Keys through which the two recipes' files for one network and scale may differ.
RECIPE_KEYS = ('name', 'datasets.train.gt_size', 'train.scheduler.milestones', 'train.scheduler.gamma')
# Keys through which the files for different networks may differ (flattened, dotted).
NETWORK_KEYS = ('name', 'network_g.', 'path.pretrain_network_g')
# Perceptual training at x4: ESRGAN's recipe for every network, Real-ESRGAN's two steps for SAN.
GAN_FILES = tuple(f'train/train_{net}_GAN_x4.yml' for net in NETS)
REAL_ESR_FILES = ('train/train_SAN_RealESRNet_x4.yml', 'train/train_SAN_RealESRGAN_x4.yml')
PLUGIN_MODELS = ('SANModel', 'SANGANModel')


@pytest.fixture(autouse=True)
def _one_thread():
    """Full-size networks on tiny inputs: one thread avoids the thread-pool overhead on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def file_name(phase, net, scale, recipe='paper'):
    return f'{phase}_{net}_x{scale}_{recipe}.yml' if phase == 'train' else f'{phase}_{net}_x{scale}.yml'


def load(phase, net, scale, recipe='paper'):
    return load_file(f'{phase}/{file_name(phase, net, scale, recipe)}')


def load_file(relative):
    with open(OPTIONS / relative) as f:
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
    expected = {
        f'{phase}/{file_name(phase, net, scale, recipe)}'
        for phase in PHASES
        for net in NETS
        for scale in SCALES
        for recipe in RECIPES
    }
    found = {str(path.relative_to(OPTIONS)) for phase in PHASES for path in (OPTIONS / phase).glob('*.yml')}
    assert found == expected | set(GAN_FILES) | set(REAL_ESR_FILES)


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('net', NETS)
def test_network_builds_and_upscales_by_the_file_scale(net, scale):
    require_arch(net)
    train, test = load('train', net, scale), load('test', net, scale)
    assert train['network_g'] == test['network_g'] == load('train', net, scale, 'code')['network_g']
    network = build_network(train['network_g']).eval()
    with torch.no_grad():
        out = network(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 8 * scale, 8 * scale)


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('net', NETS)
@pytest.mark.parametrize('phase, recipe', [('train', 'paper'), ('train', 'code'), ('test', None)])
def test_scale_is_consistent(phase, recipe, net, scale):
    opt = load(phase, net, scale, recipe)
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
        assert opt['name'] == f'{net}_BIX{scale}_DIV2K_{recipe}'
        # The paper states 48x48 LR patches; the authors' code takes 96x96 HR patches at every scale.
        assert opt['datasets']['train']['gt_size'] == (48 * scale if recipe == 'paper' else 96)
        assert opt['datasets']['train']['batch_size_per_gpu'] == 16
    else:
        assert opt['path']['pretrain_network_g'] == f'experiments/pretrained_models/{net}_BIX{scale}.pt'
        assert opt['path']['strict_load_g'] is True
        assert opt['val']['chop'] is True  # as the authors' test commands of SAN, RCAN and DRLN (--chop)
        assert [d['name'] for d in opt['datasets'].values()] == ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']


def differing_keys(first, second):
    first, second = flatten(first), flatten(second)
    return {key for key in first.keys() | second.keys() if first.get(key) != second.get(key)}


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('net', ('RCAN', 'DRLN'))
@pytest.mark.parametrize('phase, recipe', [('train', 'paper'), ('train', 'code'), ('test', None)])
def test_networks_differ_only_in_network_keys(phase, recipe, net, scale):
    differing = differing_keys(load(phase, 'SAN', scale, recipe), load(phase, net, scale, recipe))
    assert differing, 'the files should at least differ in the network'
    assert all(key.startswith(NETWORK_KEYS) for key in differing), sorted(differing)


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('net', NETS)
def test_recipes_differ_only_in_patch_and_schedule(net, scale):
    differing = differing_keys(load('train', net, scale, 'paper'), load('train', net, scale, 'code'))
    assert differing - {'datasets.train.gt_size'} == set(RECIPE_KEYS) - {'datasets.train.gt_size'}
    assert ('datasets.train.gt_size' in differing) == (scale != 2)  # 96 HR pixels are 48 LR ones at x2


# Epoch length of the authors' data loader: 800 DIV2K images, one patch each, batch 16.
ITERATIONS_PER_EPOCH = 800 // 16


@pytest.mark.parametrize('recipe, epochs_per_decay, gamma', [('paper', 200, 0.5), ('code', 50, 0.6)])
@pytest.mark.parametrize('scale', SCALES)
def test_san_training_recipes(recipe, epochs_per_decay, gamma, scale):
    """Adam (0.9, 0.99) at 1e-4 and L1 for 3000 epochs; the paper halves the rate every 200 epochs, the authors' code
    multiplies it by 0.6 every 50; an epoch is 50 iterations, and each file's header says so."""
    opt = load('train', 'SAN', scale, recipe)
    train = opt['train']
    step = epochs_per_decay * ITERATIONS_PER_EPOCH
    assert train['total_iter'] == 3000 * ITERATIONS_PER_EPOCH
    assert train['optim_g'] == {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': list(range(step, 150000, step)), 'gamma': gamma}
    assert train['pixel_opt']['type'] == 'L1Loss'
    header = (OPTIONS / 'train' / file_name('train', 'SAN', scale, recipe)).read_text().split('\n\n')[0]
    assert '800 / 16 = 50 iterations' in header
    assert f'{step:,} iterations' in header


def test_san_network_is_the_papers():
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


@pytest.mark.parametrize(
    'path', sorted(p for phase in PHASES for p in (OPTIONS / phase).glob('*.yml')), ids=lambda p: p.name
)
def test_every_file_of_a_plugin_model_documents_the_switches_all_off(path):
    opt = load_file(path.relative_to(OPTIONS))
    if opt['model_type'] not in PLUGIN_MODELS:
        assert not {'use_amp', 'channels_last', 'compile'} & set(opt), f'{opt["model_type"]} has no switches'
        return
    assert {'use_amp', 'amp_dtype', 'channels_last', 'compile', 'compile_mode'} <= set(opt)
    assert parse_switches(opt) == NetworkSwitches()


@pytest.mark.parametrize('net', NETS)
def test_gan_files_follow_esrgan_from_the_psnr_run(net):
    """BasicSR's ESRGAN x4 recipe (options/train/ESRGAN/train_ESRGAN_x4.yml) with the network of the PSNR-oriented
    paper recipe as the generator, started from that run's final model."""
    opt, psnr_run = load_file(f'train/train_{net}_GAN_x4.yml'), load('train', net, 4)
    assert (opt['name'], opt['model_type'], opt['scale'], opt['num_gpu']) == (
        f'{net}_GAN_x4_DIV2K',
        'SANGANModel',
        4,
        'auto',
    )
    assert opt['network_g'] == psnr_run['network_g']
    assert opt['path']['pretrain_network_g'] == f'experiments/{psnr_run["name"]}/models/net_g_latest.pth'
    assert opt['network_d'] == {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 64, 'input_size': 128}
    train_set = opt['datasets']['train']
    assert (train_set['gt_size'], train_set['batch_size_per_gpu']) == (128, 16)
    assert train_set['dataroot_gt'] == psnr_run['datasets']['train']['dataroot_gt']
    train = opt['train']
    assert train['ema_decay'] == 0.999 and train['total_iter'] == 400000
    adam = {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
    assert train['optim_g'] == train['optim_d'] == adam
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [50000, 100000, 200000, 300000], 'gamma': 0.5}
    assert train['pixel_opt'] == {'type': 'L1Loss', 'loss_weight': 0.01, 'reduction': 'mean'}
    perceptual = train['perceptual_opt']
    assert (perceptual['layer_weights'], perceptual['vgg_type'], perceptual['perceptual_weight']) == (
        {'conv5_4': 1},
        'vgg19',
        1.0,
    )
    assert (train['gan_opt']['gan_type'], train['gan_opt']['loss_weight']) == ('vanilla', 0.005)
    assert (train['net_d_iters'], train['net_d_init_iters']) == (1, 0)
    metrics = opt['val']['metrics']
    assert {key: metric['type'] for key, metric in metrics.items()} == {
        'psnr': 'calculate_psnr',
        'lpips': 'calculate_lpips',
        'niqe': 'calculate_niqe',
    }
    assert metrics['lpips']['better'] == metrics['niqe']['better'] == 'lower'


@pytest.mark.parametrize('net', ('RCAN', 'DRLN'))
def test_gan_files_differ_only_in_the_generator(net):
    differing = differing_keys(load_file(GAN_FILES[0]), load_file(f'train/train_{net}_GAN_x4.yml'))
    assert differing, 'the files should at least differ in the network'
    assert all(key.startswith(NETWORK_KEYS) for key in differing), sorted(differing)


def test_real_esr_files_are_real_esrgans_two_steps_with_san():
    net, gan = (load_file(path) for path in REAL_ESR_FILES)
    assert (net['model_type'], gan['model_type']) == ('RealESRNetModel', 'RealESRGANModel')
    assert net['network_g'] == gan['network_g'] == load('train', 'SAN', 4)['network_g']
    assert net['path']['pretrain_network_g'] == 'experiments/SAN_BIX4_DIV2K_paper/models/net_g_latest.pth'
    assert gan['path']['pretrain_network_g'] == f'experiments/{net["name"]}/models/net_g_latest.pth'
    assert gan['path']['param_key_g'] == 'params_ema' and net['train']['ema_decay'] > 0
    assert gan['network_d']['type'] == 'UNetDiscriminatorSN'
    assert net['datasets']['train'] == gan['datasets']['train']
    assert net['datasets']['train']['type'] == 'RealESRGANDataset'
    degradations = ('resize_prob', 'noise_range', 'jpeg_range', 'second_blur_prob', 'jpeg_range2', 'gt_size')
    assert all(net[key] == gan[key] for key in degradations)
