"""Tiny GAN runs for the tests: the shipped GAN and Real-ESR* option files, cut down to tiny data and networks.

Everything a tiny run does not need to change (losses, their weights, the discriminator's kind, the schedule, the
degradations) is read from ``options/train``, so the tests run the shipped recipes. The perceptual loss reads the
run's VGG19 weights (the session's locally made file, see ``vgg19_weights`` in ``conftest.py``) but uses only
``conv1_2``: BasicSR's ``VGGFeatureExtractor`` keeps the layers up to the deepest one asked, so the rest never runs.
"""

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / 'options' / 'train'
CHEAP_PERCEPTUAL_LAYERS = {'conv1_2': 1.0}
TINY_DISCRIMINATORS = {
    'VGGStyleDiscriminator': {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 4, 'input_size': 128},
    'UNetDiscriminatorSN': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4, 'skip_connection': True},
}
# PSNR and NIQE; LPIPS (in the shipped files) is another module's metric.
TINY_METRICS = ('psnr', 'niqe')


def shipped_options(name):
    """The option file ``options/train/<name>.yml`` as a dict."""
    return yaml.safe_load((SHIPPED / f'{name}.yml').read_text())


def torch_home(vgg19_weights):
    """Environment that makes torchvision (and so BasicSR's perceptual loss) read ``vgg19_weights``."""
    return {'TORCH_HOME': str(Path(vgg19_weights).parents[2])}


def _paired_on_disk(dataset, name, gt_dir, lq_dir):
    """Point a paired data set's options (of the shipped type) at image folders."""
    dataset.update(name=name, dataroot_gt=str(gt_dir), dataroot_lq=str(lq_dir), filename_tmpl='{}')
    dataset['io_backend'] = {'type': 'disk'}


def cut_down(opt, name, network_g, gt_dir, lq_dir, total_iter):
    """Turn shipped options ``opt`` into a tiny CPU run's, in place, and return them.

    Changed: name, CPU, the generator, a tiny discriminator of the shipped kind, tiny data (batch 1, no workers;
    ``RealESRGANDataset`` reads the GT folder through ``<gt_dir>/../meta_info.txt``, which this writes; its models
    crop 64-pixel patches and keep a pool of one pair), ``total_iter``, the perceptual layers
    (:data:`CHEAP_PERCEPTUAL_LAYERS`), the metrics (:data:`TINY_METRICS`), only the final validation, without
    images, checkpoints every 2 iterations, log every iteration, no TensorBoard.

    Args:
        opt (dict): Shipped options.
        name (str): Run name.
        network_g (dict): The generator's options.
        gt_dir (Path): GT images of at least 128 pixels (also the validation's).
        lq_dir (Path): Their LQ partners.
        total_iter (int): Iterations.

    Returns:
        dict: ``opt``.
    """
    opt.update(name=name, num_gpu=0, network_g=dict(network_g))
    if 'network_d' in opt:
        opt['network_d'] = dict(TINY_DISCRIMINATORS[opt['network_d']['type']])
    train_set = opt['datasets']['train']
    train_set.update(num_worker_per_gpu=0, batch_size_per_gpu=1, dataset_enlarge_ratio=1)
    if train_set['type'] == 'RealESRGANDataset':
        meta_info = Path(gt_dir).parent / 'meta_info.txt'
        meta_info.write_text(''.join(f'{path.name}\n' for path in sorted(Path(gt_dir).glob('*.png'))))
        train_set.update(name='tiny_train', dataroot_gt=str(gt_dir), meta_info=str(meta_info))
        train_set['io_backend'] = {'type': 'disk'}
        opt.update(gt_size=64, queue_size=1)
    else:
        _paired_on_disk(train_set, 'tiny_train', gt_dir, lq_dir)
    _paired_on_disk(opt['datasets']['val'], 'tiny_val', gt_dir, lq_dir)
    opt['train']['total_iter'] = total_iter
    if opt['train'].get('perceptual_opt'):
        opt['train']['perceptual_opt']['layer_weights'] = dict(CHEAP_PERCEPTUAL_LAYERS)
    metrics = opt['val']['metrics']
    # Only BasicSR's final validation, after the last iteration.
    opt['val'].update(val_freq=total_iter + 1, save_img=False, metrics={key: metrics[key] for key in TINY_METRICS})
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False, wandb=None)
    return opt
