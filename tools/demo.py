"""`make demo`: train a small SAN and RCAN on scikit-image's photographs and benchmark them against bicubic.

    python tools/demo.py [--scale 2] [--out results/demo]

Writes the data under datasets/, the runs under experiments/demo_{SAN,RCAN}_x<scale>/ and the report under --out.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from san_plugin.demo import run_demo  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=2, choices=(2, 3, 4, 8), help='upscaling factor (default: 2)')
    parser.add_argument('--out', default='results/demo', help='report folder (default: results/demo)')
    parser.add_argument('--iters', type=int, help="training iterations of each network (default: the options')")
    args = parser.parse_args()
    rows = run_demo(args.scale, args.out, iters=args.iters)
    print((Path(args.out) / 'results.md').read_text())
    psnr = {row['model']: row['psnr'] for row in rows}
    print(f'SAN gains {psnr["SAN"] - psnr["bicubic"]:+.2f} dB PSNR over bicubic on the held-out photographs')
    for name in ('results.json', 'results.csv', 'results.md'):
        print('report:', Path(args.out) / name)
    for picture in sorted(Path(args.out).glob('*.png')):
        print('picture:', picture)


if __name__ == '__main__':
    main()
