"""What a study measures besides training, with the benchmarks' code: the quality rows (PSNR, SSIM and the perceptual
metrics) of a trained network and of bicubic upscaling (``tools/benchmark.py quality``), and a network's peak memory
in fresh processes (``tools/benchmark.py speed``)."""

import statistics
from dataclasses import asdict

import torch

from san_plugin.benchmark.datasets import load_dataset
from san_plugin.benchmark.models import ModelSpec
from san_plugin.benchmark.quality import QualityConfig, run_quality
from san_plugin.benchmark.speed import Variant, run_in_subprocess
from san_plugin.study.plan import network_opt


def eval_device():
    """Where the trained networks are evaluated: the GPU when there is one, as ``num_gpu: auto`` trains."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def evaluate_run(study, run, weights, datasets, device=None, threads=None, metrics=(), param_key='params'):
    """PSNR/SSIM (and the perceptual ``metrics``), parameters, FLOPs and latency of a trained run on every test set.

    Args:
        study (Study): The study.
        run (Run): The run.
        weights (str | Path): Its weights (``net_g_latest.pth``).
        datasets (list[DatasetSpec]): The test sets.
        device (str | None): Where to evaluate (default: :func:`eval_device`).
        threads (int | None): CPU threads (default: the study's ``threads``).
        metrics (Sequence[MetricSpec]): Perceptual metrics (:mod:`san_plugin.study.metrics`). Default: none.
        param_key (str): The weights in the file: 'params', or 'params_ema' (a GAN run's EMA generator).

    Returns:
        list[dict]: The quality benchmark's rows, one per test set (``per_image`` included).
    """
    opt = network_opt(study, run.network, run.scale)
    spec = ModelSpec(run.network, opt, str(weights), f'networks.{run.network}', param_key)
    config = QualityConfig(
        models=[spec],
        datasets=datasets,
        scales=[run.scale],
        out=str(study.out),
        device=device or eval_device(),
        threads=threads or study.threads,
        flops_input=study.flops_input,
        metrics=list(metrics),
    )
    rows, _ = run_quality(config, show_progress=False)
    return rows


def evaluate_bicubic(study, scale, datasets, metrics=()):
    """PSNR/SSIM (and the perceptual ``metrics``) of bicubic upscaling on every test set at ``scale`` (the quality
    benchmark's rows), with ``hr_<metric>``: each no-reference metric (NIQE) of the HR images themselves, the value
    a perfect network would reach."""
    config = QualityConfig(
        models=[ModelSpec('bicubic')],
        datasets=datasets,
        scales=[scale],
        out=str(study.out),
        threads=study.threads,
        metrics=list(metrics),
    )
    rows, _ = run_quality(config, show_progress=False)
    no_reference = [metric for metric in metrics if not metric.full_reference]
    by_name = {dataset.name: dataset for dataset in datasets}
    for row in rows:
        pairs = load_dataset(by_name[row['dataset']], scale)
        for metric in no_reference:
            row[f'hr_{metric.name}'] = statistics.fmean(metric.compute(pair.hr, pair.hr, scale) for pair in pairs)
    return rows


def network_peak_memory(study, network, scale):
    """Peak memory of one network in fresh processes: full-image inference at ``test.memory_input`` and one training
    step of the study's batch, as ``tools/benchmark.py speed`` measures it.

    Returns:
        dict: ``infer_peak_mb``, ``train_peak_mb`` (None where a measurement failed), ``errors`` and the inputs.
    """
    base = {'network_opt': network_opt(study, network, scale), 'device': eval_device(), 'threads': study.threads}
    base['variant'] = asdict(Variant())
    lr_patch = study.train['gt_size'] // scale
    jobs = {
        'infer_peak_mb': {'batch': 1, 'size': study.memory_input, 'train': False},
        'train_peak_mb': {'batch': study.train['batch_size'], 'size': lr_patch, 'train': True},
    }
    result = {'errors': {}}
    for key, job in jobs.items():
        value, error = run_in_subprocess({**base, **job})
        result[key] = value
        if error:
            result['errors'][key] = error
    result['infer_input'] = f'1x3x{study.memory_input}x{study.memory_input}'
    result['train_input'] = f'{study.train["batch_size"]}x3x{lr_patch}x{lr_patch}'
    return result
