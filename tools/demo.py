"""`make demo`: the smallest study. SAN, RCAN and DRLN of equal size trained on scikit-image's photographs through
BasicSR, then tested against bicubic on held-out photographs, by the runner of ``tools/compare.py``.

    python tools/demo.py [--scale 2] [--out results/demo] [--iters N] [--threads N]

Writes the data under datasets/, the runs under experiments/demo_x<scale>_*/ and the report under --out.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import san_plugin  # noqa: E402, F401  (registers the archs)
from san_plugin.data.prepare import PrepareDataError  # noqa: E402
from san_plugin.study.demo import HELD_OUT_NAME, demo_study  # noqa: E402
from san_plugin.study.processes import stop_on_sigterm  # noqa: E402
from san_plugin.study.runner import StudyFailed, run_study  # noqa: E402
from san_plugin.utils.cli import non_negative_int, positive_int, print_error  # noqa: E402
from san_plugin.utils.console_log import log_to_console  # noqa: E402
from san_plugin.utils.output_paths import check_output_folder  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--scale', type=int, default=2, choices=(2, 3, 4, 8), help='upscaling factor (default: 2)')
    parser.add_argument('--out', default='results/demo', help='report folder (default: results/demo)')
    parser.add_argument('--iters', type=positive_int, help='training iterations of each network (default: 1200)')
    parser.add_argument(
        '--threads',
        type=non_negative_int,
        default=1,
        help="CPU threads of each process (default: 1; 0: torch's default)",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    log_to_console('san_plugin.study')
    try:
        check_output_folder(args.out, '--out')
        report = run_study(demo_study(args.scale, args.out, iters=args.iters, threads=args.threads or None))
    except StudyFailed as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    except (OSError, ValueError, PrepareDataError) as error:
        print_error(error)
        return 1
    out = Path(args.out)
    print((out / 'report.md').read_text(encoding='utf-8'))
    bicubic = next(b['psnr'] for b in report['bicubic'] if b['dataset'] == HELD_OUT_NAME)
    san = next(r['psnr_mean'] for r in report['summary'] if r['network'] == 'SAN')
    print(f'SAN gains {san - bicubic:+.2f} dB PSNR over bicubic on the held-out photographs')
    for name in ('report.json', 'report.csv', 'report.md', *sorted(p.name for p in out.glob('*.png'))):
        print('report:', out / name)
    return 0


if __name__ == '__main__':
    sys.exit(main())
