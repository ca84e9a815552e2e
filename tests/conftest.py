"""Shared test fixtures: where ``../shared`` (reference fixtures and data sets) is, and how its absence is treated.

``SAN_PLUGIN_SHARED`` overrides the location. Without it, tests that need it skip with the reason, except under
``CI=true``, where they fail: CI must never pass without having checked parity against the authors' code.
"""

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_root():
    """Return the shared folder: ``$SAN_PLUGIN_SHARED`` or ``../shared`` beside the repository."""
    return Path(os.environ.get('SAN_PLUGIN_SHARED', REPO_ROOT.parent / 'shared')).resolve()


def require_shared(*relative_parts):
    """Return ``shared_root() / relative_parts``; skip the test if it is missing, or fail it under ``CI=true``."""
    path = shared_root().joinpath(*relative_parts)
    if not path.exists():
        reason = f'{path} is missing (set SAN_PLUGIN_SHARED to the folder holding fixtures/ and datasets/)'
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(f'CI=true and {reason}')
        pytest.skip(reason)
    return path


def load_fixture(name):
    """Load one reference fixture of ``../shared/fixtures`` (a plain dict of tensors and lists)."""
    return torch.load(require_shared('fixtures', name), weights_only=True)


@pytest.fixture(autouse=True)
def _deterministic_cpu():
    torch.manual_seed(0)
    yield


# The private one-node SLURM cluster of the SLURM tests (see tests/helpers/slurm.py).
from helpers.slurm import slurm_cluster  # noqa: E402, F401
