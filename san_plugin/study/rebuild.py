"""Rebuild a study's report from what its runs left, without training or evaluating anything
(``tools/compare.py --report-only``): the run records ``<out>/runs/<run>.json`` and the peak-memory and bicubic
caches beside them (``memory_<network>_x<scale>.json``, ``bicubic_x<scale>.json``).

The records are taken as they are: a study whose options changed since its runs were trained should be run again
without ``--report-only``, which retrains what changed.
"""

import json

from san_plugin.study.options import StudyError
from san_plugin.study.plan import check_networks, plan_runs
from san_plugin.study.report import write_report


def _stored(path, what, study):
    if not path.is_file():
        raise StudyError(
            f'{study.source}: {what} has no record ({path}); run tools/compare.py -opt {study.source} without '
            '--report-only to make it'
        )
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as error:
        raise StudyError(f'{study.source}: {what}: cannot read {path}: {error}') from error


def rebuild_report(study, log=print):
    """Write the report of ``study`` again from its stored records (see the module docstring).

    Args:
        study (Study): The checked study.
        log (callable): Called with a progress line. Default: print.

    Returns:
        dict: The report (see :func:`san_plugin.study.report.build_report`).
    """
    params = check_networks(study)
    runs_dir = study.out / 'runs'
    records = [_stored(runs_dir / f'{run.name}.json', f'run {run.name}', study) for run in plan_runs(study)]
    memory = {
        (network, scale): _stored(runs_dir / f'memory_{network}_x{scale}.json', f'peak memory of {network}', study)[
            'value'
        ]
        for network in study.networks
        for scale in study.scales
    }
    bicubic = [
        row
        for scale in study.scales
        for row in _stored(runs_dir / f'bicubic_x{scale}.json', f'bicubic x{scale}', study)['value']
    ]
    report = write_report(study, records, bicubic, memory, params)
    log(f'report of {study.name} rebuilt from {len(records)} run records in {study.out}')
    return report
