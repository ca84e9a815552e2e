"""The data of a study: its training LMDBs and its test sets, prepared with ``tools/prepare_data.py``'s code."""

import logging
from pathlib import Path

from san_plugin.benchmark.datasets import DatasetSpec
from san_plugin.data.prepare import prepare_benchmark, prepare_train

logger = logging.getLogger(__name__)


def dataset_specs(study):
    """The test sets of a study as benchmark data set specs (``{scale}`` in their folders), without preparing any:
    ``images`` sets are where :func:`prepare_data` prepares them, ``<data_root>/<name>/HR|LR_bicubic/x{scale}``.

    Args:
        study (Study): The study.

    Returns:
        list[DatasetSpec]: One per test set, in the study's order.
    """
    origin = f'{study.source}: test.datasets:'
    specs = []
    for test_set in study.test_sets:
        if test_set.images is None:
            specs.append(DatasetSpec(test_set.name, test_set.hr, test_set.lr, origin))
        else:
            root = Path(study.data_root) / test_set.name
            specs.append(DatasetSpec(test_set.name, f'{root}/HR/x{{scale}}', f'{root}/LR_bicubic/x{{scale}}', origin))
    return specs


def prepare_data(study):
    """Training LMDBs from ``train.data`` and the test sets given as ``images`` folders.

    Args:
        study (Study): The study.

    Returns:
        tuple[dict[int, Path], list[DatasetSpec]]: The training LMDBs (key 1 HR, key s the LR of scale s) and the
        test sets (see :func:`dataset_specs`).
    """
    train = study.train
    logger.info(f'preparing training data from {train["data"]} under {study.data_root}')
    lmdbs = prepare_train(
        train['data'],
        name=Path(train['data']).resolve().name,
        output_root=study.data_root,
        scales=study.scales,
        crop_size=train['crop_size'],
        step=train['step'],
    )
    for test_set in study.test_sets:
        if test_set.images is not None:
            prepare_benchmark(test_set.images, test_set.name, study.data_root, scales=study.scales)
    return lmdbs, dataset_specs(study)
