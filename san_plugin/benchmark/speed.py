"""Speed benchmark: forward latency, one training step and peak memory of networks at the same input sizes, and
optionally one GAN training step (:mod:`san_plugin.benchmark.gan_step`).

Each measurement runs in float32 and in the asked variants (autocast to bfloat16/float16, channels-last memory
format, ``torch.compile``), so every variant is compared with plain float32 in the same run. Peak memory is measured
in a fresh subprocess per measurement (``python -m san_plugin.benchmark.speed JOB``) so that networks measured
earlier cannot hide or add memory; see :mod:`san_plugin.benchmark.memory` for the method on each device.
"""

import copy
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from basicsr.archs import build_network

from san_plugin.benchmark.gan_step import ESRGANStep, perceptual_loss
from san_plugin.benchmark.memory import PeakMemory, describe_method
from san_plugin.benchmark.models import discriminator_opt, paper_network_opt
from san_plugin.utils.compile import compile_network
from san_plugin.utils.precision import autocast

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """How a network is run: autocast dtype (None: float32), channels-last memory format, ``torch.compile``."""

    amp: str | None = None
    channels_last: bool = False
    compile: bool = False

    @property
    def name(self):
        parts = ([f'amp-{self.amp}'] if self.amp else []) + (['channels_last'] if self.channels_last else [])
        return '+'.join(parts + (['compile'] if self.compile else [])) or 'fp32'


def variants_from_flags(amp=None, channels_last=False, compile=False):
    """Plain float32, each asked variant alone, and all of them together when more than one is asked."""
    singles = [Variant(amp=amp)] if amp else []
    singles += [Variant(channels_last=True)] if channels_last else []
    singles += [Variant(compile=True)] if compile else []
    combined = [Variant(amp, channels_last, compile)] if len(singles) > 1 else []
    return [Variant()] + singles + combined


def prepare_network(net, variant, device):
    """Move ``net`` to ``device`` and apply the variant's memory format and compilation (in place)."""
    net = net.to(device)
    if variant.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return compile_network(net) if variant.compile else net


def prepare_input(x, variant, device):
    """Move ``x`` to ``device`` in the variant's memory format."""
    x = x.to(device)
    return x.contiguous(memory_format=torch.channels_last) if variant.channels_last else x


def variant_autocast(variant, device):
    """Autocast context of the variant (a no-op for float32)."""
    return autocast(torch.device(device).type, variant.amp)


def synchronize(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_median_ms(fns, device, warmup, repeats):
    """Median wall time in milliseconds of each closure, timed in turns (A B A B ...) after ``warmup`` calls each.

    Taking turns makes a slow-down of the machine hit every closure alike, so their ratios hold on a noisy machine.

    Args:
        fns (dict[str, Callable]): Closures by name.
        device (str): Device to synchronise before reading the clock.
        warmup (int): Untimed calls of each closure first.
        repeats (int): Timed calls of each closure.

    Returns:
        dict[str, float]: Median milliseconds by name.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def forward_fn(net, x, variant, device):
    """A closure running one inference forward."""

    def run():
        with torch.inference_mode(), variant_autocast(variant, device):
            net(x)

    return run


def train_step_fn(net, x, target, variant, device):
    """A closure running one training step: L1 loss, backward, Adam step (a gradient scaler under float16)."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=variant.amp == 'float16')

    def run():
        optimizer.zero_grad(set_to_none=True)
        with variant_autocast(variant, device):
            loss = F.l1_loss(net(x).float(), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return run


def gan_step_fn(net_g, net_d, lq, gt, cri_perceptual, device):
    """A closure running one GAN training step of ``net_g`` against ``net_d`` (:class:`ESRGANStep`)."""
    step = ESRGANStep(net_g, net_d, cri_perceptual, torch.device(device))
    return lambda: step.step(lq, gt)


def build(network_opt, variant, device, train):
    """Build a network from ``network_g`` options, in train or eval mode, prepared for the variant."""
    net = build_network(copy.deepcopy(network_opt))
    return prepare_network(net.train(train), variant, device)


def lr_input(batch, size, variant, device):
    return prepare_input(torch.rand(batch, 3, size, size), variant, device)


def measure_memory(job):
    """Peak memory in MiB of one job (see :func:`child_main`) run in this process, from the network build on."""
    device = torch.device(job['device'])
    variant = Variant(**job['variant'])
    memory = PeakMemory(device).start()
    net = build(job['network_opt'], variant, device, job['train'])
    x = lr_input(job['batch'], job['size'], variant, device)
    if job['train']:
        hr = job['size'] * job['network_opt']['upscale']
        target = torch.rand(job['batch'], 3, hr, hr, device=device)
        train_step_fn(net, x, target, variant, device)()
    else:
        forward_fn(net, x, variant, device)()
    return memory.peak_mb()


def run_in_subprocess(job, timeout=None):
    """Run :func:`measure_memory` for ``job`` in a fresh Python process; returns (MiB or None, error or None)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env['PYTHONPATH'] = os.pathsep.join([root, env['PYTHONPATH']]) if env.get('PYTHONPATH') else root
    cmd = [sys.executable, '-m', 'san_plugin.benchmark.speed', json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f'timed out after {timeout} s'
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        return None, f'subprocess failed ({proc.returncode}): {tail}'
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_mb'], None


@dataclass
class SpeedConfig:
    """What :func:`run_speed` measures; see ``tools/benchmark.py speed --help``."""

    models: tuple = ('san', 'rcan')
    sizes: tuple = (64, 128)
    batch: int = 1
    train_batch: int = 4
    train_size: int = 48
    memory_sizes: tuple = (256, 512)
    scale: int = 4
    repeats: int = 5
    warmup: int = 2
    device: str = 'cpu'
    threads: int | None = None
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    gan: bool = False
    gan_gt_size: int = 128


def _attempt(fn):
    try:
        return fn(), None
    except (RuntimeError, torch.OutOfMemoryError) as error:
        return None, str(error).strip().splitlines()[0][:300]


def _timed_rows(config, variant, measurement, batch, size, closures, errors):
    """Time the closures of the models in turns; one row per model (its build error, if any, instead)."""
    values, error = _attempt(lambda: interleaved_median_ms(closures, config.device, config.warmup, config.repeats))
    return [
        _row(model, variant, measurement, batch, size, (values or {}).get(model), errors.get(model, error))
        for model in config.models
    ]


def _build_all(config, variant, train):
    """Every model's network for the variant: (networks by model, build errors by model)."""
    nets, errors = {}, {}
    for model in config.models:
        opt = paper_network_opt(model, config.scale)
        net, error = _attempt(lambda opt=opt: build(opt, variant, config.device, train))
        if net is None:
            errors[model] = error
        else:
            nets[model] = net
    return nets, errors


def _timings(config, variant):
    """Forward latency at each size and the training-step time of every model for one variant, models in turns."""
    device = config.device
    rows = []
    nets, errors = _build_all(config, variant, train=False)
    for size in config.sizes:
        x = lr_input(config.batch, size, variant, device)
        closures = {model: forward_fn(net, x, variant, device) for model, net in nets.items()}
        rows += _timed_rows(config, variant, 'forward_ms', config.batch, size, closures, errors)
    nets, errors = _build_all(config, variant, train=True)
    x = lr_input(config.train_batch, config.train_size, variant, device)
    hr = config.train_size * config.scale
    target = torch.rand(config.train_batch, 3, hr, hr, device=device)
    closures = {model: train_step_fn(net, x, target, variant, device) for model, net in nets.items()}
    rows += _timed_rows(config, variant, 'train_step_ms', config.train_batch, config.train_size, closures, errors)
    if config.gan and variant.amp is None:  # SANGANModel trains without autocast
        rows += gan_step_rows(config, variant)
    return rows


def gan_step_rows(config, variant):
    """Time one GAN training step of every model (as generator) for one variant, models in turns.

    Each model gets its own paper-size discriminator (:func:`~san_plugin.benchmark.models.discriminator_opt`) with
    ``gan_gt_size`` GT patches and ``train_batch`` pairs; the variant's memory format and compilation apply to both
    networks, as ``SANGANModel`` applies them.

    Args:
        config (SpeedConfig): What to measure.
        variant (Variant): How the networks run (without autocast).

    Returns:
        list[dict]: One ``gan_step_ms`` row per model.
    """
    device = config.device
    net_d_opt = discriminator_opt(config.gan_gt_size, config.scale)
    cri_perceptual, _ = perceptual_loss(device)
    lr_size = config.gan_gt_size // config.scale
    lq = lr_input(config.train_batch, lr_size, variant, device)
    gt = prepare_input(torch.rand(config.train_batch, 3, config.gan_gt_size, config.gan_gt_size), variant, device)
    nets, errors = _build_all(config, variant, train=True)
    closures = {}
    for model, net_g in nets.items():
        net_d = build(net_d_opt, variant, device, train=True)
        closures[model] = gan_step_fn(net_g, net_d, lq, gt, cri_perceptual, device)
    return _timed_rows(config, variant, 'gan_step_ms', config.train_batch, lr_size, closures, errors)


def _memory(config, model, variant):
    """Peak memory of full-image inference at each memory size and of one training step, in subprocesses."""
    network_opt = paper_network_opt(model, config.scale)
    base = {'network_opt': network_opt, 'device': config.device, 'threads': config.threads}
    base['variant'] = asdict(variant)
    jobs = [('forward_peak_mb', {'batch': 1, 'size': s, 'train': False}) for s in config.memory_sizes]
    jobs.append(('train_peak_mb', {'batch': config.train_batch, 'size': config.train_size, 'train': True}))
    rows = []
    for measurement, job in jobs:
        value, error = run_in_subprocess({**base, **job})
        rows.append(_row(model, variant, measurement, job['batch'], job['size'], value, error))
    return rows


def _row(model, variant, measurement, batch, size, value, error):
    row = {'model': model, 'variant': variant.name, 'measurement': measurement, 'input': f'{batch}x3x{size}x{size}'}
    row.update(value=value, error=error)
    logger.info(
        f'{model:>6} {variant.name:>22} {measurement:>15} {row["input"]:>14}: '
        + (f'{value:.1f}' if error is None else f'failed: {error}')
    )
    return row


def ratios(rows, reference):
    """Ratios of each model's values to ``reference``'s for the same measurement, input and variant, and of each
    variant to float32 for the same model, measurement and input."""
    index = {(r['model'], r['variant'], r['measurement'], r['input']): r['value'] for r in rows}
    model_ratios, variant_ratios = [], []
    for (model, variant, measurement, inp), value in index.items():
        ref = index.get((reference, variant, measurement, inp))
        if model != reference and value is not None and ref:
            model_ratios.append({'ratio': f'{model}/{reference}', 'variant': variant, 'measurement': measurement,
                                 'input': inp, 'value': value / ref})  # fmt: skip
        fp32 = index.get((model, 'fp32', measurement, inp))
        if variant != 'fp32' and value is not None and fp32:
            variant_ratios.append({'model': model, 'ratio': f'{variant}/fp32', 'measurement': measurement,
                                   'input': inp, 'value': value / fp32})  # fmt: skip
    return model_ratios, variant_ratios


def run_speed(config):
    """Measure every model and variant, logging one line per finished measurement (``tools/benchmark.py speed``
    shows them on the console).

    Args:
        config (SpeedConfig): What to measure.

    Returns:
        dict: ``environment`` (device, threads, versions, memory method), ``config``, ``results`` (rows with model,
        variant, measurement, input, value, error) and the ratios (``model_ratios``, ``variant_ratios``).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    if torch.device(config.device).type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda: CUDA is not available')
    for model in config.models:
        paper_network_opt(model, config.scale)
    if config.gan:
        discriminator_opt(config.gan_gt_size, config.scale)
    variants = variants_from_flags(config.amp, config.channels_last, config.compile)
    rows = []
    for variant in variants:
        rows += _timings(config, variant)
        for model in config.models:
            rows += _memory(config, model, variant)
    reference = 'rcan' if 'rcan' in config.models else config.models[-1]
    model_ratios, variant_ratios = ratios(rows, reference)
    device_name = torch.cuda.get_device_name(config.device) if torch.device(config.device).type == 'cuda' else 'cpu'
    environment = {
        'device': device_name,
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
        'memory_method': describe_method(config.device) + ', one fresh subprocess per measurement',
    }
    if config.gan:
        environment['gan_perceptual_loss'] = perceptual_loss(config.device)[1]
    return {'environment': environment, 'config': asdict(config), 'results': rows, 'model_ratios': model_ratios,
            'variant_ratios': variant_ratios}  # fmt: skip


def format_table(report):
    """Plain-text table of a :func:`run_speed` report: one line per measurement, models side by side, ratios."""
    rows = report['results']
    models = list(dict.fromkeys(r['model'] for r in rows))
    ratio_by_key = {
        (r['ratio'], r['measurement'], r['input'], r['variant']): r['value'] for r in report['model_ratios']
    }
    names = sorted({r['ratio'] for r in report['model_ratios']})
    head = ['measurement', 'input', 'variant', *models, *names]
    lines = []
    keys = list(dict.fromkeys((r['measurement'], r['input'], r['variant']) for r in rows))
    value = {(r['model'], r['measurement'], r['input'], r['variant']): r for r in rows}
    for key in keys:
        cells = list(key)
        for model in models:
            row = value.get((model, *key))
            cells.append('-' if row is None else ('failed' if row['value'] is None else f'{row["value"]:.1f}'))
        for name in names:
            ratio = ratio_by_key.get((name, *key))
            cells.append('-' if ratio is None else f'{ratio:.2f}')
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    text = [' '.join(str(c).rjust(w) for c, w in zip(cells, widths)) for cells in [head, *lines]]
    env = report['environment']
    text.append(f'device: {env["device"]}, threads: {env["threads"]}, torch {env["torch"]}')
    text.append('forward: median ms after warm-up under torch.inference_mode; train step: L1 + Adam, median ms')
    text.append(f'peak memory (MiB): {env["memory_method"]}')
    if 'gan_perceptual_loss' in env:
        text.append(
            "GAN step: ESRGANModel's step, generator + VGG-style discriminator, L1 + perceptual + relativistic GAN, "
            f'both Adam steps and EMA, median ms; perceptual loss: {env["gan_perceptual_loss"]}'
        )
    for r in report['variant_ratios']:
        text.append(f'{r["model"]} {r["ratio"]} {r["measurement"]} {r["input"]}: {r["value"]:.2f}')
    return '\n'.join(text)


def child_main(argv):
    """Entry of the memory subprocess: run one JSON job, print ``{"peak_mb": ...}``."""
    import san_plugin  # noqa: F401  (registers the archs)

    job = json.loads(argv[0])
    if job.get('threads'):
        torch.set_num_threads(job['threads'])
    print(json.dumps({'peak_mb': measure_memory(job)}))


if __name__ == '__main__':
    child_main(sys.argv[1:])
