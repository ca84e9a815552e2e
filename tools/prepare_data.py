"""Prepare super-resolution data for BasicSR: training LMDBs and benchmark sets, with MATLAB bicubic LR.

Examples:
    python tools/prepare_data.py train --input datasets/DIV2K/DIV2K_train_HR
    python tools/prepare_data.py benchmark --input path/to/Set14_original --name Set14
"""

import argparse
import logging
import os
import sys

from san_plugin.data.images import IMAGE_SUFFIXES, ImageError, display_path
from san_plugin.data.prepare import SUPPORTED_SCALES, PrepareDataError, prepare_benchmark, prepare_train

TRAIN_HELP = """\
From a folder of HR images, writes under OUTPUT_ROOT/NAME/:
  NAME_train_LR_bicubic/X{s}/<stem>.png      MATLAB bicubic LR of each HR image (modcropped to a multiple of s)
  NAME_train_HR_sub/<stem>_y0000_x0240.png    HR sub-images, CROP_SIZE square, every STEP pixels
  NAME_train_LR_bicubic/X{s}_sub/             their LR partners (CROP_SIZE / s), same names
  NAME_train_HR_sub.lmdb                      LMDB of the HR sub-images (with BasicSR's meta_info.txt)
  NAME_train_LR_bicubic_X{s}_sub.lmdb         LMDB of the LR sub-images of scale s, same keys
Point BasicSR's PairedImageDataset (io_backend: {type: lmdb}) at the two .lmdb folders of a scale.
Re-running skips complete LMDBs and reuses the images already written."""

BENCHMARK_HELP = """\
From a folder of HR images, writes under OUTPUT_ROOT/NAME/, for each scale s:
  HR/x{s}/<stem>.png          the HR image cropped to a multiple of s (MATLAB modcrop)
  LR_bicubic/x{s}/<stem>.png  its MATLAB bicubic LR
Outputs that already exist with the right size are kept."""


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True, metavar='{train,benchmark}')
    workers = min(4, os.cpu_count() or 1)

    def add_common(sub, name_default):
        suffixes = ', '.join(suffix[1:] for suffix in IMAGE_SUFFIXES)
        sub.add_argument('--input', required=True, help=f'folder of HR images ({suffixes})')
        if name_default is None:
            sub.add_argument('--name', required=True, help='set name, e.g. Set5: the output folder OUTPUT_ROOT/NAME')
        else:
            sub.add_argument(
                '--name', default=name_default, help=f'data set name, prefix of every output (default: {name_default})'
            )
        sub.add_argument('--output-root', default='datasets', help='root of the outputs (default: datasets)')
        sub.add_argument(
            '--scales',
            type=int,
            nargs='+',
            default=list(SUPPORTED_SCALES),
            metavar='S',
            help='LR scales among 2 3 4 8 (default: 2 3 4 8)',
        )
        sub.add_argument(
            '--workers', type=int, default=workers, help=f'processes working in parallel (default: {workers})'
        )

    train = commands.add_parser(
        'train',
        help='training LMDBs: sub-images of HR and MATLAB bicubic LR',
        description=TRAIN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(train, 'DIV2K')
    train.add_argument('--crop-size', type=int, default=480, help='HR sub-image size, a multiple of 24 (default: 480)')
    train.add_argument(
        '--step', type=int, default=240, help='distance between sub-images, a multiple of 24 (default: 240)'
    )
    train.add_argument(
        '--thresh-size',
        type=int,
        default=0,
        help='a left-over strip at the bottom or right up to this size gets no sub-image (default: 0)',
    )

    benchmark = commands.add_parser(
        'benchmark',
        help='benchmark set: modcropped HR and MATLAB bicubic LR per scale',
        description=BENCHMARK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(benchmark, None)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        if args.command == 'train':
            options = ('name', 'output_root', 'scales', 'crop_size', 'step', 'thresh_size', 'workers')
            paths = prepare_train(args.input, **{key: getattr(args, key) for key in options})
            for scale, path in paths.items():
                print(f'{"HR" if scale == 1 else f"X{scale}"}: {display_path(path)}')
        else:
            root = prepare_benchmark(
                args.input, name=args.name, output_root=args.output_root, scales=args.scales, workers=args.workers
            )
            shown = display_path(root)
            print(f'{display_path(args.name)}: {shown}/HR/x{{s}} and {shown}/LR_bicubic/x{{s}}')
    except (PrepareDataError, ImageError, OSError) as error:
        parser.exit(1, f'{parser.prog} {args.command}: error: {error}\n')


if __name__ == '__main__':
    sys.exit(main())
