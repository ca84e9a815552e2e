"""Two-process DDP training on CPU (Gloo) through BasicSR's own pipeline and ``--launcher pytorch``."""

import socket
from pathlib import Path

import cv2
import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils import img2tensor
from helpers.workflow import TINY_SAN, describe, make_pairs, read_log, run_python, train_options, write_options

from san_plugin.compat.dist import init_dist

LAUNCHER = Path(__file__).resolve().parent / 'helpers' / 'ddp_train.py'


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def l1_on_pairs(state_dict, gt_dir, lq_dir):
    """Mean L1 error of the tiny SAN with ``state_dict`` over every training pair (RGB in [0, 1])."""
    net = build_network(TINY_SAN).eval()
    net.load_state_dict(state_dict)
    losses = []
    with torch.no_grad():
        for gt_path in sorted(gt_dir.glob('*.png')):
            gt, lq = (cv2.imread(str(d / gt_path.name)).astype('float32') / 255 for d in (gt_dir, lq_dir))
            gt, lq = img2tensor([gt, lq], bgr2rgb=True)
            losses.append((net(lq[None]) - gt[None]).abs().mean())
    return torch.stack(losses).mean().item()


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_in_sync_and_learns(tmp_path):
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs')
    opt = train_options('tiny_ddp', gt_dir, lq_dir, total_iter=6)
    opt['num_gpu'] = 'auto'
    write_options(tmp_path / 'train.yml', opt)
    weights = tmp_path / 'weights'
    weights.mkdir()
    proc = run_python(
        [
            '-m',
            'torch.distributed.run',
            '--nnodes=1',
            '--nproc_per_node=2',
            '--master_addr=127.0.0.1',
            f'--master_port={free_port()}',
            LAUNCHER,
            weights,
            '-opt',
            'train.yml',
            '--launcher',
            'pytorch',
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, describe(proc)
    log = read_log(tmp_path / 'experiments' / opt['name'], 'train_')
    assert 'World size (gpu number): 2' in log
    assert 'Network: DistributedDataParallel - SAN' in log
    assert '# psnr:' in log
    init, final = ([torch.load(weights / f'rank{r}_{stage}.pth') for r in (0, 1)] for stage in ('init', 'final'))
    for key in final[0]:
        assert torch.equal(init[0][key], init[1][key]), f'{key} differs between ranks at the start'
        assert torch.equal(final[0][key], final[1][key]), f'{key} differs between ranks at the end'
    assert any(not torch.equal(init[0][key], final[0][key]) for key in final[0])
    assert l1_on_pairs(final[0], gt_dir, lq_dir) < l1_on_pairs(init[0], gt_dir, lq_dir)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only behaviour')
@pytest.mark.parametrize(
    'launcher, error, message',
    [('slurm', RuntimeError, '--launcher slurm needs CUDA GPUs'), ('mpi', ValueError, 'Invalid launcher type: mpi')],
)
def test_launchers_without_cuda_fail_clearly(launcher, error, message):
    with pytest.raises(error, match=message):
        init_dist(launcher)
