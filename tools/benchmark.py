"""Benchmark super-resolution networks.

    python tools/benchmark.py speed --models san rcan --sizes 64 128 --device cuda --json speed.json
    python tools/benchmark.py speed --models san rcan --gan --repeats 3     # also one GAN training step each
    python tools/benchmark.py quality --model bicubic --model san=WEIGHTS --dataset Set5=HR_DIR[:LR_DIR] \\
        --scale 4 --out DIR

``speed`` times the forward pass, one training step (and with ``--gan`` one GAN training step) and peak memory of
networks at their paper sizes (optionally under autocast, channels-last, ``torch.compile``, each against float32);
``quality`` measures PSNR/SSIM (and LPIPS, DISTS, NIQE with ``--metric``), parameters, FLOPs and latency of models on
data sets and writes JSON/CSV/Markdown results, a plot and crop grids.
"""

import argparse
import sys

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.benchmark.metrics import QUALITY_METRICS
from san_plugin.benchmark.models import PAPER_NETWORKS
from san_plugin.benchmark.options import quality_config, read_options_file
from san_plugin.benchmark.quality import run_quality, write_outputs
from san_plugin.benchmark.speed import SpeedConfig, format_table, run_speed
from san_plugin.convert.network_config import add_network_opt_argument
from san_plugin.utils.atomic_save import write_json
from san_plugin.utils.console_log import log_to_console
from san_plugin.utils.precision import AMP_DTYPES


def add_speed_parser(subparsers):
    p = subparsers.add_parser('speed', help='latency, training step and peak memory at the paper sizes')
    p.add_argument('--models', nargs='+', default=['san', 'rcan'], choices=sorted(PAPER_NETWORKS))
    p.add_argument('--sizes', nargs='+', type=int, default=[64, 128], help='LR sides of the forward timings')
    p.add_argument('--batch', type=int, default=1, help='batch of the forward timings')
    p.add_argument('--train-batch', type=int, default=4)
    p.add_argument('--train-size', type=int, default=48, help='LR side of the training step')
    p.add_argument('--memory-sizes', nargs='*', type=int, default=[256, 512], help='LR sides of full-image inference')
    p.add_argument('--scale', type=int, default=4)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--threads', type=int, help='CPU threads (torch.set_num_threads)')
    p.add_argument('--amp', choices=sorted(AMP_DTYPES), help='also measure under autocast to this dtype')
    p.add_argument('--channels-last', action='store_true', help='also measure in channels-last memory format')
    p.add_argument('--compile', action='store_true', help='also measure torch.compile(net)')
    p.add_argument('--gan', action='store_true',
                   help="also time one GAN training step (ESRGANModel's: generator, VGG-style discriminator, L1, "
                        'VGG19 perceptual if its weights are there, relativistic GAN, EMA)')  # fmt: skip
    p.add_argument('--gan-gt-size', dest='gan_gt_size', type=int, default=128,
                   help='GT side of the GAN step: 128 (ESRGAN) or 256; its LR side is this / --scale')  # fmt: skip
    p.add_argument('--json', help='save the measurements to this JSON file')


def add_quality_parser(subparsers):
    p = subparsers.add_parser('quality', help='PSNR/SSIM, parameters, FLOPs and latency on data sets')
    p.add_argument('-opt', help='YAML options file (see san_plugin/benchmark/options.py); flags add to it')
    p.add_argument('--model', action='append', help='bicubic, NAME=WEIGHTS, NAME=OPTIONS.yml or NAME=type:ARCH,k:v')
    add_network_opt_argument(p)
    p.add_argument('--dataset', action='append', help='NAME=HR_DIR[:LR_DIR]; {scale} in a folder becomes the scale')
    p.add_argument('--scale', action='append', type=int)
    p.add_argument('--out', help='output folder')
    p.add_argument('--device', help='cpu (default), cuda or cuda:N')
    p.add_argument('--threads', type=int, help='CPU threads (torch.set_num_threads)')
    p.add_argument('--flops-input', dest='flops_input', nargs=2, type=int, metavar=('H', 'W'),
                   help='LR size the FLOPs are counted at (default: the LR of a 1280x720 output)')  # fmt: skip
    p.add_argument('--warmup', type=int, help='warm-up forwards before timing each data set (default: 1)')
    p.add_argument('--chop', action='store_true', default=None, help="the authors' forward_chop")
    p.add_argument('--tile', type=int, help='tile side in LR pixels')
    p.add_argument('--tile-pad', dest='tile_pad', type=int, help='tile overlap in LR pixels (default: 10)')
    p.add_argument('--self-ensemble', dest='self_ensemble', action='store_true', default=None)
    p.add_argument('--amp', choices=sorted(AMP_DTYPES), help='run the networks under autocast to this dtype')
    p.add_argument('--crops', action='append', help='IMAGE_NAME[:x,y,size] of the crop grids (default: first image)')
    p.add_argument('--metric', action='append', choices=list(QUALITY_METRICS),
                   help='also compute this metric (lower is better), repeatable; options in the -opt file')  # fmt: skip
    p.add_argument('--no-progress', action='store_true', help='no progress bar')


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter
    )
    subparsers = parser.add_subparsers(dest='command', required=True)
    add_speed_parser(subparsers)
    add_quality_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        if args.command == 'speed':
            log_to_console('san_plugin.benchmark.speed')
            fields = {k: v for k, v in vars(args).items() if k not in ('command', 'json')}
            report = run_speed(SpeedConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}))
            print(format_table(report))
            if args.json:
                write_json(args.json, report)
            failed = [r for r in report['results'] if r['error']]
            return 1 if failed else 0
        config = quality_config(read_options_file(args.opt) if args.opt else {}, args)
        rows, crops = run_quality(config, show_progress=not args.no_progress)
        for path in write_outputs(rows, crops, config.out):
            print(f'wrote {path}')
        return 0
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
