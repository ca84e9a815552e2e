"""Export SAN, DRLN or RCAN weights of any supported format to ONNX, with dynamic batch, height and width.

    python tools/export_onnx.py SAN_BIX4.pt san_x4.onnx
    python tools/export_onnx.py net_g_latest.pth san_x2.onnx --check-sizes 64x64,37x51 --opset 18

The graph takes ``lq`` (NCHW RGB float32 in [0, 1], height and width >= 4) and gives ``sr``. Before the file is put
in place (missing folders are created), onnxruntime must reproduce PyTorch within --tolerance at every --check-sizes
size (odd sizes included by default); otherwise nothing is written and the exit status is 1. The network's
configuration comes from the weights' record or tensors; a setting neither gives is warned about (give it with
--network-opt key=value). Needs the optional extra: pip install -e '.[onnx]'.
"""

import argparse
import sys

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.convert.network_config import add_network_opt_argument, network_opts
from san_plugin.inference import load_model
from san_plugin.onnx_export import MIN_OPSET, MIN_SIDE, export_onnx
from san_plugin.utils.cli import non_negative_float, positive_int, print_error
from san_plugin.utils.output_paths import check_output_file


def parse_sizes(text):
    """Parse ``'HxW,HxW'`` into a list of (height, width) pairs of at least ``MIN_SIDE``."""
    sizes = []
    for item in filter(None, text.split(',')):
        try:
            height, width = (int(side) for side in item.lower().split('x'))
        except ValueError:
            raise argparse.ArgumentTypeError(f'{item!r} is not HEIGHTxWIDTH, e.g. 37x51') from None
        if min(height, width) < MIN_SIDE:
            raise argparse.ArgumentTypeError(f'{item}: height and width must be at least {MIN_SIDE}')
        sizes.append((height, width))
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('weights', help="authors' .pt, BasicSR .pth or .safetensors file")
    parser.add_argument('output', help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=MIN_OPSET, help=f'ONNX opset, >= {MIN_OPSET} (default)')
    parser.add_argument(
        '--check-sizes',
        type=parse_sizes,
        default=[(32, 32), (19, 27)],
        help='input sizes onnxruntime is compared at; empty to skip (default: 32x32,19x27)',
    )
    parser.add_argument(
        '--tolerance', type=non_negative_float, default=1e-4, help='largest difference allowed (default: 1e-4)'
    )
    parser.add_argument('--scale', type=positive_int, help='expected scale; an error if the weights are of another')
    add_network_opt_argument(parser)
    args = parser.parse_args(argv)
    try:
        check_output_file(args.output, 'output', source=args.weights)
        net, scale = load_model(args.weights, scale=args.scale, network_opt=network_opts(args.network_opt))
        differences = export_onnx(
            net, args.output, opset=args.opset, check_sizes=args.check_sizes, tolerance=args.tolerance
        )
    except (ImportError, OSError, ValueError) as error:
        print_error(error)
        return 1
    print(f'wrote {args.output}: x{scale} {type(net).__name__}, opset {args.opset}, dynamic batch/height/width')
    for (height, width), difference in differences.items():
        print(f'onnxruntime vs PyTorch at {height}x{width}: max abs difference {difference:.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
