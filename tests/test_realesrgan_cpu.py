"""BasicSR's RealESRNetModel and RealESRGANModel on the CPU (san_plugin.compat.real_esr), with SAN as the generator.

BasicSR alone puts their JPEG simulator, sharpener and pool of training pairs on the GPU with ``.cuda()``; with the
plugin a CPU run keeps them on the model's device, and a GPU run calls BasicSR's code unchanged.
"""

from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.models.realesrnet_model import RealESRNetModel
from helpers.gan import cut_down, shipped_options, torch_home
from helpers.workflow import TINY_SAN, describe, make_pairs, read_log, run_python, write_options

import san_plugin  # noqa: F401  (applies the fixes)
from san_plugin.compat.real_esr import wrap_dequeue_and_enqueue, wrap_init

MODELS = {'RealESRNetModel': RealESRNetModel, 'RealESRGANModel': RealESRGANModel}
TINY_SAN_X4 = {**TINY_SAN, 'upscale': 4}


def model_options(tmp_path, name):
    """The cut-down shipped options of ``name``'s step, as ``basicsr.train`` completes them for one CPU process
    (no perceptual loss)."""
    shipped = 'train_SAN_RealESRNet_x4' if name == 'RealESRNetModel' else 'train_SAN_RealESRGAN_x4'
    opt = cut_down(shipped_options(shipped), 'real_esr', TINY_SAN_X4, tmp_path, tmp_path, total_iter=1)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    opt['path']['pretrain_network_g'] = None
    opt['train']['perceptual_opt'] = None
    return opt


@pytest.mark.skipif(torch.cuda.is_available(), reason='shows what BasicSR alone does without a GPU')
@pytest.mark.parametrize('name', MODELS)
def test_basicsr_alone_cannot_build_the_model_on_cpu_and_the_plugin_can(tmp_path, name):
    model_class = MODELS[name]
    with pytest.raises((RuntimeError, AssertionError), match='NVIDIA driver|not compiled with CUDA'):
        model_class.__init__.__wrapped__(model_class.__new__(model_class), model_options(tmp_path, name))
    model = model_class(model_options(tmp_path, name))
    assert model.device.type == 'cpu' and model.queue_size == 1
    devices = {p.device.type for module in (model.jpeger, model.usm_sharpener) for p in module.buffers()}
    assert devices == {'cpu'}


def test_gpu_runs_call_basicsrs_own_methods():
    init, dequeue = mock.Mock(), mock.Mock()
    model, opt = SimpleNamespace(), {'num_gpu': 1}
    wrap_init(RealESRNetModel, init)(model, opt)
    init.assert_called_once_with(model, opt)
    assert vars(model) == {}  # nothing else done
    model = SimpleNamespace(device=torch.device('cuda'), queue_size=4, lq=torch.zeros(2, 3, 4, 4))
    wrap_dequeue_and_enqueue(dequeue)(model)
    dequeue.assert_called_once_with(model)
    assert not hasattr(model, 'queue_lr')  # BasicSR's method makes its pool on the GPU itself
    for model_class in MODELS.values():
        assert model_class.__init__.san_plugin_fix and model_class._dequeue_and_enqueue.san_plugin_fix


def pool_model(queue_size):
    model = RealESRGANModel.__new__(RealESRGANModel)
    model.device, model.queue_size = torch.device('cpu'), queue_size
    return model


def test_pool_of_training_pairs_on_cpu_fills_then_swaps_pairs():
    model = pool_model(queue_size=4)
    batches = [(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16)) for _ in range(3)]
    for lq, gt in batches[:2]:
        model.lq, model.gt = lq, gt
        model._dequeue_and_enqueue()
        assert model.lq is lq and model.gt is gt  # filling: the batch is used as it is
    assert model.queue_lr.device.type == 'cpu' and model.queue_ptr == 4
    assert torch.equal(model.queue_lr, torch.cat([lq for lq, _ in batches[:2]]))
    assert torch.equal(model.queue_gt, torch.cat([gt for _, gt in batches[:2]]))
    model.lq, model.gt = batches[2]
    model._dequeue_and_enqueue()  # full: two pooled pairs out, the new batch in
    pooled = [(lq[i], gt[i]) for lq, gt in batches[:2] for i in range(2)]
    for i in range(2):
        assert any(torch.equal(model.lq[i], lq) and torch.equal(model.gt[i], gt) for lq, gt in pooled)
    assert torch.equal(model.queue_lr[:2], batches[2][0]) and torch.equal(model.queue_gt[:2], batches[2][1])


def test_pool_size_that_the_batch_does_not_divide_is_basicsrs_error():
    model = pool_model(queue_size=4)
    model.lq, model.gt = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 16, 16)
    with pytest.raises(AssertionError, match='queue size 4 should be divisible by batch size 3'):
        model._dequeue_and_enqueue()


@pytest.mark.slow
def test_san_trains_with_real_esrnet_then_real_esrgan_on_cpu(tmp_path, vgg19_weights):
    """Real-ESRGAN's two steps with the shipped files cut down: 2 iterations each (the first fills the pool of one
    pair, the second swaps), the GAN step starting from the Real-ESRNet step's EMA weights. The Real-ESRNet step
    leaves its GT unsharpened (``gt_usm``): the sharpener's 101x101 kernel over the data set's 400x400 crops is most
    of a CPU iteration, and the GAN step sharpens its GT anyway."""
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs', num=2, gt_size=208, scale=4)
    first = tmp_path / 'experiments' / 'tiny_RealESRNet' / 'models' / 'net_g_latest.pth'
    for step, pretrain in (('RealESRNet', None), ('RealESRGAN', str(first))):
        opt = shipped_options(f'train_SAN_{step}_x4')
        cut_down(opt, f'tiny_{step}', TINY_SAN_X4, gt_dir, lq_dir, total_iter=2)
        opt['path']['pretrain_network_g'] = pretrain
        if step == 'RealESRNet':
            opt['gt_usm'] = False
        write_options(tmp_path / f'{step}.yml', opt)
        proc = run_python(['-m', 'basicsr.train', '-opt', f'{step}.yml'], cwd=tmp_path, env=torch_home(vgg19_weights))
        assert proc.returncode == 0, describe(proc)
        experiment = tmp_path / 'experiments' / opt['name']
        log = read_log(experiment, 'train_')
        assert f'Model [{step}Model] is created.' in log and 'End of training.' in log
        assert f'iter: {2:>7,d}' in log and '# psnr: ' in log and '# niqe: ' in log
        assert {'net_g_2.pth', 'net_g_latest.pth'} <= {p.name for p in (experiment / 'models').iterdir()}
    assert f'Loading SAN model from {first}, with param key: [params_ema].' in log
    assert 'Network: UNetDiscriminatorSN' in log and 'l_g_percep: ' in log and 'l_d_fake: ' in log
    assert (experiment / 'models' / 'net_d_2.pth').is_file()
