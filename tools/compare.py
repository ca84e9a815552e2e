"""Compare networks: train each network of a study with the same protocol and seeds, evaluate them, write a report.

    python tools/compare.py -opt options/compare/san_ablation_x2.yml [--train-data HR_FOLDER] [--max-parallel N]
    python tools/compare.py -opt options/compare/san_ablation_x2.yml --report-only

Trains every run through ``python -m basicsr.train --auto_resume`` (run the same command again after a stop: finished
runs are skipped, the others resume), then writes report.json/.csv/.md and plots into the study's ``out`` folder.
Runs train on this machine, ``max_parallel`` at once, or as SLURM jobs (``executor: slurm``); a failed run does not
stop the others, and the command then exits with status 1 naming it, its log file and its last lines.
``--report-only`` rebuilds the report from the run records in ``<out>/runs/`` without training (every run needs
one). With a ``gan:`` block every PSNR run is followed by a GAN run from its final weights, and the report has both
stages (``options/compare/attention_gan_x4.yml``). The study file's format is described in
``san_plugin/study/options.py``. A bad study file or data folder ends with one line naming the file and the key, exit
status 1 (2 for a malformed command line).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import san_plugin  # noqa: E402, F401  (registers the archs)
from san_plugin.data.prepare import PrepareDataError  # noqa: E402
from san_plugin.study.options import override_max_parallel, read_study  # noqa: E402
from san_plugin.study.processes import stop_on_sigterm  # noqa: E402
from san_plugin.study.rebuild import rebuild_report  # noqa: E402
from san_plugin.study.runner import StudyFailed, run_study  # noqa: E402
from san_plugin.utils.cli import positive_int, print_error  # noqa: E402
from san_plugin.utils.console_log import log_to_console  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='study file (options/compare/*.yml)')
    parser.add_argument('--train-data', help="folder of HR training images instead of the study's train.data")
    parser.add_argument(
        '--max-parallel', type=positive_int, help="runs at once instead of the study's max_parallel (slurm's too)"
    )
    parser.add_argument(
        '--report-only', action='store_true', help='rebuild the report from the stored run records; train nothing'
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    log_to_console('san_plugin.study')
    try:
        study = read_study(args.opt, args.train_data)
        override_max_parallel(study, args.max_parallel)
        (rebuild_report if args.report_only else run_study)(study)
    except StudyFailed as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, RuntimeError, PrepareDataError) as error:
        print_error(error)
        return 1
    print((study.out / 'report.md').read_text(encoding='utf-8'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
