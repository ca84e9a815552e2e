"""The ``slurm_cluster`` fixture: a private one-node SLURM cluster (``tools/slurm_cluster.py``) for a test session.

Tests that use it must carry ``@pytest.mark.xdist_group('slurm')`` so that under ``pytest -n N --dist loadgroup``
one worker starts the cluster and runs them all (another worker would start a second cluster, which works but costs
a start and CPU time).
"""

import importlib.util
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_tool():
    spec = importlib.util.spec_from_file_location('slurm_cluster_tool', REPO_ROOT / 'tools' / 'slurm_cluster.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slurm_tool = _load_tool()


class SlurmCluster(dict):
    """Environment variables that point SLURM's commands at a running cluster, and where its parts are.

    A dict (``SLURM_CONF``), so ``dict(os.environ, **cluster)`` is the environment of ``srun``, ``sbatch`` or a
    submitit executor; attributes: ``root`` (its folder), ``partition`` (the default and only partition, ``debug``),
    ``jobcomp_log`` (the job-completion log, one line per finished job with ``JobId=... JobState=...``; there is no
    slurmdbd, so ``sacct -c`` reads this, plain ``sacct`` does not work).
    """

    def __init__(self, root, env):
        super().__init__(env)
        where = slurm_tool.paths(root)
        self.root = where['root']
        self.partition = slurm_tool.PARTITION
        self.jobcomp_log = where['jobcomp']


@pytest.fixture(scope='session')
def slurm_cluster(tmp_path_factory):
    """Start a one-node SLURM cluster (this host, all its CPUs) for the session; yield it; stop it after.

    Yields a :class:`SlurmCluster`: a dict of environment variables (``SLURM_CONF``) with ``partition`` and
    ``jobcomp_log`` attributes. Jobs run as root on this machine, in the test's working directory, with the
    submitting environment. Without root or without the packages (``make test`` installs them as root) the tests
    that use it skip with the reason, except under ``CI=true``, where they fail.
    """
    reasons = slurm_tool.missing_requirements()
    if reasons:
        reason = 'no private SLURM cluster: ' + '; '.join(reasons)
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(f'CI=true and {reason}')
        pytest.skip(reason)
    root = tmp_path_factory.mktemp('slurm')
    env = slurm_tool.start_cluster(root)
    try:
        yield SlurmCluster(root, env)
    finally:
        slurm_tool.stop_cluster(root)
