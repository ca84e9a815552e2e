"""Convert the authors' SAN, DRLN or RCAN checkpoints to BasicSR checkpoints or safetensors, and back.

    python tools/convert_checkpoint.py SAN_BIX4.pt experiments/pretrained_models/SAN_x4.pth
    python tools/convert_checkpoint.py SAN_BIX4.pt SAN_x4.safetensors
    python tools/convert_checkpoint.py --to-original SAN_x4.pth SAN_BIX4_again.pt

The architecture and every configuration value (scale included) are read from the input's record or its tensors;
settings neither gives are warned about (give them with --network-opt key=value). The output records the complete
configuration, and the options block that builds the network is printed, ready to paste. Missing folders of the
output are created; weights of another network than SAN, DRLN or RCAN are refused (exit status 1, nothing
written).
"""

import argparse
import sys

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.convert.convert_file import convert_file, network_g_block
from san_plugin.convert.network_config import add_network_opt_argument, network_opts
from san_plugin.utils.cli import print_error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help="authors' .pt, BasicSR .pth or .safetensors file")
    parser.add_argument('output', help='.pth (BasicSR checkpoint) or .safetensors; with --to-original, a .pt')
    parser.add_argument('--to-original', action='store_true', help="write the authors' format, for their own code")
    parser.add_argument('--param-key', default='params', help='state dict key of a BasicSR input (default: params)')
    add_network_opt_argument(parser)
    args = parser.parse_args(argv)
    try:
        summary = convert_file(
            args.input,
            args.output,
            to_original=args.to_original,
            param_key=args.param_key,
            network_opt=network_opts(args.network_opt),
        )
    except (OSError, KeyError, ValueError) as error:
        print_error(error)
        return 1
    config = summary['config']
    print(f'architecture: {summary["arch"]}')
    print(f'scale: x{config["upscale"]}')
    print(f'parameters: {summary["num_params"]:,}')
    for note in summary['notes']:
        print(f'note: {note}')
    print(f'written: {args.output}' + (" (authors' format)" if args.to_original else ''))
    if not args.to_original:
        print('\nnetwork_g block for the options file (load with strict_load_g: true):\n')
        print(network_g_block(summary['arch'], config), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
