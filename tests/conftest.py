"""Shared test fixtures: where ``../shared`` (reference fixtures and data sets) is, and how its absence is treated.

``SAN_PLUGIN_SHARED`` overrides the location. Without it, tests that need it skip with the reason, except under
``CI=true``, where they fail: CI must never pass without having checked parity against the authors' code.
"""

import importlib.util
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from helpers.study import study_options

REPO_ROOT = Path(__file__).resolve().parents[1]
# One CPU thread in every test process: each pytest-xdist worker (one per core) and each subprocess a test starts,
# so that workers do not compete for the cores and results are the same with and without xdist.
# Inductor likewise compiles in the worker's own process: its default pool of compile processes (one per core) would
# take the other worker's core, and start an interpreter each.
os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', TORCHINDUCTOR_COMPILE_THREADS='1')
torch.set_num_threads(1)
torch._inductor.config.compile_threads = 1  # in case the config was read before the variable was set


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


def load_tool(name):
    """Import ``tools/<name>.py`` (the tools are scripts, not modules of the package) and return it."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_fixture(name):
    """Load one reference fixture of ``../shared/fixtures`` (a plain dict of tensors and lists)."""
    return torch.load(require_shared('fixtures', name), weights_only=True)


@pytest.fixture(scope='session', autouse=True)
def _inductor_cache_of_this_run(tmp_path_factory):
    """Give the run an empty Inductor cache of its own, shared by its xdist workers.

    torch.compile's Inductor keeps compiled kernels on disk (``/tmp/torchinductor_<user>`` by default), so a machine
    that ran the suite before would compile far less than a fresh one; the run's own cache (in the run's base
    temporary folder, which pytest removes after a few runs) keeps its time what a fresh machine takes.
    """
    os.environ['TORCHINDUCTOR_CACHE_DIR'] = str(run_folder(tmp_path_factory) / 'inductor_cache')


def run_folder(tmp_path_factory):
    """The folder that the run's xdist workers share (the parent of their base temporary folders)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


@pytest.fixture(scope='session')
def tiny_memory_records(tmp_path_factory):
    """Peak-memory records of the tiny study's SAN and RCAN at x2 (:func:`helpers.study.study_options`), measured once
    per run as the study runner records them (:meth:`~san_plugin.study.records.RecordStore.memory`, two fresh
    processes each) and shared by the xdist workers. Returns a function that copies them into a study's
    ``<out>/runs``, where the runner reads them instead of measuring again; the tests that check the measurement
    itself do not use it."""
    from san_plugin.study.measure import network_peak_memory
    from san_plugin.study.options import parse_study
    from san_plugin.study.records import RecordStore

    root = run_folder(tmp_path_factory) / 'tiny_memory'
    with FileLock(f'{root}.lock'):
        if not (root / 'done').exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            study = parse_study(study_options(root, str(root), str(root / 'datasets')))
            store = RecordStore(study)
            for network in study.networks:
                memory = store.memory(network, 2, lambda n=network: network_peak_memory(study, n, 2))
                assert memory['errors'] == {} and memory['infer_peak_mb'] > 0 and memory['train_peak_mb'] > 0, memory
            (root / 'done').touch()

    def copy_into(out):
        (Path(out) / 'runs').mkdir(parents=True, exist_ok=True)
        for record in (root / 'runs').glob('memory_*.json'):
            shutil.copy(record, Path(out) / 'runs' / record.name)

    return copy_into


@pytest.fixture(scope='session')
def random_torch_home(tmp_path_factory):
    """A ``TORCH_HOME`` whose ``hub/checkpoints`` holds random SqueezeNet 1.1, AlexNet, VGG16 and VGG19 weights under
    torchvision's file names (``helpers/backbones.py``), written once per run and shared by the xdist workers."""
    from helpers.backbones import BACKBONES, write_random_backbone

    root = run_folder(tmp_path_factory) / 'torch_home'
    with FileLock(f'{root}.lock'):
        if not (root / 'done').exists():
            for arch in BACKBONES:
                write_random_backbone(arch, root / 'hub' / 'checkpoints')
            (root / 'done').touch()
    return root


@pytest.fixture
def torch_home(random_torch_home, monkeypatch):
    """``TORCH_HOME`` set to :func:`random_torch_home` for the test."""
    monkeypatch.setenv('TORCH_HOME', str(random_torch_home))
    return random_torch_home


@pytest.fixture
def offline_hub(monkeypatch):
    """torch.hub's downloads fail as they do without a network; returns the list of the addresses tried."""
    import urllib.error

    tried = []

    def download_url_to_file(url, dst, *args, **kwargs):
        tried.append(url)
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download_url_to_file)
    return tried


@pytest.fixture
def tiny_study(tmp_path):
    """A valid tiny study mapping (see :func:`helpers.study.study_options`) with its outputs in ``tmp_path``."""
    return study_options(tmp_path, str(tmp_path / 'report'), str(tmp_path / 'datasets'))


@pytest.fixture
def study_log(caplog):
    """pytest's ``caplog``, recording the INFO lines of the study runner (what ``tools/compare.py`` shows on the
    console): ``study_log.messages`` are the lines so far, ``study_log.clear()`` forgets them."""
    caplog.set_level(logging.INFO, logger='san_plugin.study')
    return caplog


@pytest.fixture(scope='session')
def tiny_gan_study(tmp_path_factory, random_torch_home, tiny_memory_records):
    """The tiny study with a GAN stage (:func:`helpers.study.run_gan_study`: SAN and RCAN at x2, one seed, four
    iterations per stage, NIQE, LPIPS and DISTS on random backbones), run once per test run and shared by the xdist
    workers. Returns a function that copies the study's working directory (``study.yml``, ``report/``,
    ``experiments/``, ``datasets/``, ``console.log``) into a test's folder, where the same study can run again."""
    from helpers.study import run_gan_study

    root = run_folder(tmp_path_factory) / 'tiny_gan_study'
    with FileLock(f'{root}.lock'):
        if not (root / 'done').exists():
            shutil.rmtree(root, ignore_errors=True)
            (root / 'study').mkdir(parents=True)
            run_gan_study(root / 'study', random_torch_home, tiny_memory_records)
            (root / 'done').touch()

    def copy_into(folder):
        shutil.copytree(root / 'study', folder, dirs_exist_ok=True)
        return Path(folder)

    return copy_into


@pytest.fixture(scope='session')
def vgg19_weights(random_torch_home):
    """Locally made VGG19 weights (:func:`random_torch_home`'s), for BasicSR's perceptual loss: the file is
    ``<root>/hub/checkpoints/vgg19-dcbb9e9d.pth``, where torchvision looks when ``TORCH_HOME`` is ``<root>``
    (``helpers.gan.torch_home``); a run may also link it as its working directory's
    ``experiments/pretrained_models/vgg19-dcbb9e9d.pth``, where BasicSR looks first. Point at it or link it, never
    copy it.

    Returns:
        Path: The weights file.
    """
    return random_torch_home / 'hub' / 'checkpoints' / 'vgg19-dcbb9e9d.pth'


@pytest.fixture(autouse=True)
def _deterministic_cpu():
    torch.manual_seed(0)
    yield


# The private one-node SLURM cluster of the SLURM tests (see tests/helpers/slurm.py).
from helpers.slurm import slurm_cluster  # noqa: E402, F401
