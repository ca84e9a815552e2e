"""Rebuild a study's report from what its runs left, without preparing data, training or evaluating anything
(``tools/compare.py --report-only``): the records of :class:`~san_plugin.study.records.RecordStore`.

The run records are taken as they are (a study whose training options changed since its runs were trained should be
run again without ``--report-only``, which retrains what changed); the peak-memory and bicubic records must have
been measured for the values the study gives now (their cache keys), else the rebuild stops naming the record.
"""

import logging

from san_plugin.study.data import dataset_specs
from san_plugin.study.plan import check_networks, plan_runs
from san_plugin.study.records import RecordStore
from san_plugin.study.report import reported_metrics, write_report

logger = logging.getLogger(__name__)


def rebuild_report(study):
    """Write the report of ``study`` again from its stored records (see the module docstring).

    Args:
        study (Study): The checked study.

    Returns:
        dict: The report (see :func:`san_plugin.study.report.build_report`).

    Raises:
        StudyError: A record is missing, unreadable or measured for other values; the message names it.
    """
    params = check_networks(study)
    store = RecordStore(study)
    records = [store.stored_run(run.name) for run in plan_runs(study)]
    memory = {
        (network, scale): store.stored_memory(network, scale) for network in study.networks for scale in study.scales
    }
    datasets = dataset_specs(study)
    extra, _ = reported_metrics(records)
    bicubic = [row for scale in study.scales for row in store.stored_bicubic(scale, datasets, extra)]
    report = write_report(study, records, bicubic, memory, params)
    logger.info(f'report of {study.name} rebuilt from {len(records)} run records in {study.out}')
    return report
