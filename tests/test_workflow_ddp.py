"""Two-process DDP training on CPU (Gloo) through BasicSR's own pipeline and ``--launcher pytorch``."""

from pathlib import Path

import cv2
import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils import img2tensor
from helpers.workflow import (
    TINY_MSRRESNET,
    TINY_SAN,
    describe,
    free_port,
    make_pairs,
    read_log,
    run_python,
    train_options,
    write_options,
)

from san_plugin.compat.dist import init_dist

LAUNCHER = Path(__file__).resolve().parent / 'helpers' / 'ddp_train.py'
RESUME_CHOICE = Path(__file__).resolve().parent / 'helpers' / 'ddp_resume_choice.py'
# SANModel (the plugin's) and BasicSR's own SRModel, which the plugin's CPU DDP fix must serve too.
DDP_CASES = {'SANModel-SAN': ('SANModel', TINY_SAN), 'SRModel-MSRResNet': ('SRModel', TINY_MSRRESNET)}


def torchrun(script, *args, cwd):
    """Run ``script`` with two CPU processes under ``torch.distributed.run``; return the completed process."""
    launch = ['-m', 'torch.distributed.run', '--nnodes=1', '--nproc_per_node=2', '--master_addr=127.0.0.1']
    return run_python([*launch, f'--master_port={free_port()}', script, *args], cwd=cwd)


def l1_on_pairs(network, state_dict, gt_dir, lq_dir):
    """Mean L1 error of ``network`` with ``state_dict`` over every training pair (RGB in [0, 1])."""
    net = build_network(network).eval()
    net.load_state_dict(state_dict)
    losses = []
    with torch.no_grad():
        for gt_path in sorted(gt_dir.glob('*.png')):
            gt, lq = (cv2.imread(str(d / gt_path.name)).astype('float32') / 255 for d in (gt_dir, lq_dir))
            gt, lq = img2tensor([gt, lq], bgr2rgb=True)
            losses.append((net(lq[None]) - gt[None]).abs().mean())
    return torch.stack(losses).mean().item()


@pytest.mark.slow
@pytest.mark.parametrize('case', DDP_CASES)
def test_two_process_gloo_training_keeps_ranks_in_sync_and_learns(case, tmp_path):
    model_type, network = DDP_CASES[case]
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs')
    opt = train_options(f'tiny_ddp_{case}', gt_dir, lq_dir, total_iter=6, network=network)
    opt.update(num_gpu='auto', model_type=model_type)
    write_options(tmp_path / 'train.yml', opt)
    weights = tmp_path / 'weights'
    weights.mkdir()
    proc = torchrun(LAUNCHER, weights, '-opt', 'train.yml', '--launcher', 'pytorch', cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    log = read_log(tmp_path / 'experiments' / opt['name'], 'train_')
    assert 'World size (gpu number): 2' in log
    assert f'Model [{model_type}] is created.' in log
    assert f'Network: DistributedDataParallel - {network["type"]}' in log
    assert '# psnr:' in log
    init, final = ([torch.load(weights / f'rank{r}_{stage}.pth') for r in (0, 1)] for stage in ('init', 'final'))
    for key in final[0]:
        assert torch.equal(init[0][key], init[1][key]), f'{key} differs between ranks at the start'
        assert torch.equal(final[0][key], final[1][key]), f'{key} differs between ranks at the end'
    assert any(not torch.equal(init[0][key], final[0][key]) for key in final[0])
    assert l1_on_pairs(network, final[0], gt_dir, lq_dir) < l1_on_pairs(network, init[0], gt_dir, lq_dir)


def save_checkpoints(run_dir, iterations, network):
    """Write ``net_g_<i>.pth`` and a real training state ``<i>.state`` per iteration, as a run does."""
    (run_dir / 'models').mkdir(parents=True)
    (run_dir / 'training_states').mkdir()
    net = build_network(network)
    optimizer = torch.optim.Adam(net.parameters())
    for current_iter in iterations:
        torch.save({'params': net.state_dict()}, run_dir / 'models' / f'net_g_{current_iter}.pth')
        state = {'epoch': 0, 'iter': current_iter, 'optimizers': [optimizer.state_dict()], 'schedulers': []}
        torch.save(state, run_dir / 'training_states' / f'{current_iter}.state')


@pytest.mark.slow
def test_every_rank_resumes_from_the_checkpoint_rank_zero_chose(tmp_path):
    save_checkpoints(tmp_path / 'run', (2, 4, 6), TINY_MSRRESNET)
    proc = torchrun(RESUME_CHOICE, tmp_path / 'run', tmp_path, cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    # Rank 1 alone would see only 2.state; both resume from rank 0's newest complete one.
    assert [(tmp_path / f'rank{r}.txt').read_text() for r in (0, 1)] == ['iter 6', 'iter 6']


@pytest.mark.slow
def test_every_rank_stops_when_rank_zero_finds_no_usable_checkpoint(tmp_path):
    save_checkpoints(tmp_path / 'run', (2, 4), TINY_MSRRESNET)
    for path in (tmp_path / 'run' / 'models').iterdir():
        path.write_bytes(path.read_bytes()[:100])  # every network file truncated
    proc = torchrun(RESUME_CHOICE, tmp_path / 'run', tmp_path, cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    for rank in (0, 1):
        outcome = (tmp_path / f'rank{rank}.txt').read_text()
        assert outcome.startswith('ResumeError --auto_resume: the run has training states'), outcome
        assert 'net_g_4.pth' in outcome and 'net_g_2.pth' in outcome


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only behaviour')
def test_unknown_launcher_without_cuda_fails_clearly():
    # --launcher slurm works without CUDA now: tests/test_slurm_launcher.py.
    with pytest.raises(ValueError, match='Invalid launcher type: mpi'):
        init_dist('mpi')
