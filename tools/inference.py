"""Upscale images with SAN, DRLN or RCAN weights of any supported format.

    python tools/inference.py -i photo.png -o results -w SAN_BIX4.pt
    python tools/inference.py -i lr_folder -o results -w SAN_x4.safetensors --tile 200 --device cuda --half

Writes ``<stem>_x<scale>.png`` per input image; the architecture and configuration come from the weights (their
record, else their tensors; a setting neither gives is warned about: give it with --network-opt key=value). A file
that fails (not an image, truncated, corrupt, of a depth or channel count the network cannot take, ...) is reported
in one line naming it and skipped; the others are still upscaled. Exit status 0 when every file succeeded, 1
otherwise, 2 for a usage error.
"""

import argparse
import sys

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.convert.network_config import add_network_opt_argument, network_opts
from san_plugin.data.images import display_path
from san_plugin.inference import run_inference
from san_plugin.utils.cli import non_negative_int, positive_int, print_error
from san_plugin.utils.device import check_device


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='image file or folder of images')
    parser.add_argument('-o', '--output', required=True, help='output folder (created if missing)')
    parser.add_argument('-w', '--weights', required=True, help="authors' .pt, BasicSR .pth or .safetensors file")
    parser.add_argument('--scale', type=positive_int, help='expected scale; an error if the weights are of another')
    parser.add_argument('--tile', type=positive_int, help='tile size in input pixels, for images too large for memory')
    parser.add_argument('--tile-pad', type=non_negative_int, default=10, help='overlap of the tiles (default: 10)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ... (default: cpu)')
    parser.add_argument('--half', action='store_true', help='run in float16 (GPU)')
    parser.add_argument('--suffix', help='output name suffix instead of x<scale>')
    add_network_opt_argument(parser)
    args = parser.parse_args(argv)
    try:
        check_device(args.device)
        written, failed = run_inference(
            args.input,
            args.output,
            args.weights,
            scale=args.scale,
            tile=args.tile,
            tile_pad=args.tile_pad,
            device=args.device,
            half=args.half,
            suffix=args.suffix,
            network_opt=network_opts(args.network_opt),
        )
    except (OSError, ValueError) as error:
        print_error(error)
        return 1
    print(f'{len(written)} written to {display_path(args.output)}, {len(failed)} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
