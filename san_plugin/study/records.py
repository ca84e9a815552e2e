"""The records a study keeps in ``<out>/runs``: the one place that knows their file names and cache keys.

- ``<run>.json``: the record of a finished run (its evaluation, training times and validation curve), with the
  fingerprint of the options it was trained with (``options_digest``): a study run again skips the runs whose record
  has the fingerprint of today's options and stops on one trained with other options.
- ``memory_<network>_x<scale>.json`` and ``bicubic_x<scale>.json``: ``{"key": ..., "value": ...}``, a network's peak
  memory and the bicubic rows (with the perceptual metrics of the study), kept for the values they were measured with
  (the key) and measured again when the key changes.
- ``<run>.job.json``: the SLURM job ids of a run (with its options' fingerprint), so that a dispatcher started again
  re-attaches to its jobs.

The runner and the executors read and write them here; ``--report-only`` (:mod:`san_plugin.study.rebuild`) reads
them with the ``stored_*`` methods, which check the cache keys too and name the record a rebuild lacks.
"""

import json
from dataclasses import asdict
from pathlib import Path

from san_plugin.study.options import StudyError
from san_plugin.study.plan import network_opt
from san_plugin.utils.atomic_save import write_json


class RecordStore:
    """The records of one study (see the module docstring).

    Args:
        study (Study): The study (``out`` and ``source``; the values of the memory key).
    """

    def __init__(self, study):
        self.study = study
        self.folder = Path(study.out) / 'runs'

    # Run records

    def run_path(self, run_name):
        """``<out>/runs/<run>.json``."""
        return self.folder / f'{run_name}.json'

    def read_run(self, run_name, digest):
        """The record of a finished run, or None when it has none.

        Args:
            run_name (str): The run.
            digest (str): The fingerprint of the options the study gives it now.

        Returns:
            dict | None: The record.

        Raises:
            StudyError: The record was made with other options, or cannot be read.
        """
        path = self.run_path(run_name)
        if not path.is_file():
            return None
        record = self._read(path, f'run {run_name}')
        if record.get('options_digest') != digest:
            raise StudyError(
                f'{self.study.source}: run {run_name} was trained with other options than the study now gives; to '
                f'retrain it, remove {path} and experiments/{run_name}/ (or give the study another name)'
            )
        return record

    def write_run(self, run_name, record):
        """Write the record of a finished run."""
        write_json(self.run_path(run_name), record)

    def stored_run(self, run_name):
        """The record of a run as it is (``--report-only``); raises :class:`StudyError` when it has none."""
        return self._stored(self.run_path(run_name), f'run {run_name}')

    # Peak memory and bicubic caches

    def memory_path(self, network, scale):
        return self.folder / f'memory_{network}_x{scale}.json'

    def memory_key(self, network, scale):
        """What a network's peak memory depends on: its options, the inference input and the training batch."""
        study = self.study
        return {'network_g': network_opt(study, network, scale), 'memory_input': study.memory_input,
                'batch_size': study.train['batch_size'], 'gt_size': study.train['gt_size']}  # fmt: skip

    def memory(self, network, scale, measure):
        """The stored peak memory of ``network`` at ``scale``, else ``measure()``'s result, stored first."""
        return self._cached(self.memory_path(network, scale), self.memory_key(network, scale), measure)

    def stored_memory(self, network, scale):
        """The stored peak memory (``--report-only``); raises :class:`StudyError` when it is missing or stale."""
        key = self.memory_key(network, scale)
        return self._stored(self.memory_path(network, scale), f'peak memory of {network}', key)['value']

    def bicubic_path(self, scale):
        return self.folder / f'bicubic_x{scale}.json'

    def bicubic(self, scale, datasets, evaluate, metrics=()):
        """The stored bicubic rows at ``scale`` for the test sets ``datasets`` and the perceptual ``metrics`` (names),
        else ``evaluate()``'s, stored first."""
        return self._cached(self.bicubic_path(scale), _bicubic_key(datasets, metrics), evaluate)

    def stored_bicubic(self, scale, datasets, metrics=()):
        """The stored bicubic rows (``--report-only``); raises :class:`StudyError` when they are missing or stale."""
        key = _bicubic_key(datasets, metrics)
        return self._stored(self.bicubic_path(scale), f'bicubic x{scale}', key)['value']

    # SLURM job ids

    def job_path(self, run_name):
        return self.folder / f'{run_name}.job.json'

    def job_ids(self, run_name, digest):
        """Job ids of a run's earlier SLURM attempts, oldest first (none when its options have changed since)."""
        path = self.job_path(run_name)
        if not path.is_file():
            return []
        info = json.loads(path.read_text(encoding='utf-8'))
        return [str(i) for i in info.get('job_ids', [])] if info.get('digest') == digest else []

    def write_job_ids(self, run_name, digest, folder, job_ids):
        """Record the job ids of a run's SLURM attempts and submitit's folder of their files."""
        write_json(self.job_path(run_name), {'run': run_name, 'digest': digest, 'folder': str(folder),
                                             'job_ids': list(job_ids)})  # fmt: skip

    # Files

    def _read(self, path, what):
        try:
            return json.loads(path.read_text(encoding='utf-8'))
        except (OSError, json.JSONDecodeError) as error:
            raise StudyError(f'{self.study.source}: {what}: cannot read {path}: {error}') from error

    def _cached(self, path, key, compute):
        if path.is_file():
            stored = json.loads(path.read_text(encoding='utf-8'))
            if stored.get('key') == key:
                return stored['value']
        value = compute()
        write_json(path, {'key': key, 'value': value})
        return value

    def _stored(self, path, what, key=None):
        source = self.study.source
        again = f'run tools/compare.py -opt {source} without --report-only to make it'
        if not path.is_file():
            raise StudyError(f'{source}: {what} has no record ({path}); {again}')
        stored = self._read(path, what)
        if key is not None and stored.get('key') != key:
            raise StudyError(
                f'{source}: {what} was recorded for other values than the study now gives ({path}); {again} again'
            )
        return stored


def _bicubic_key(datasets, metrics):
    """What the bicubic rows depend on: the test sets, and the perceptual metrics when there are any, in any order (a
    study without them keeps the key it always had)."""
    key = [asdict(d) for d in datasets]
    return {'datasets': key, 'metrics': sorted(metrics)} if metrics else key
