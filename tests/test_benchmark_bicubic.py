"""The bicubic rows of the quality benchmark reproduce the published Set5 / Set14 x4 figures."""

import pytest
from conftest import require_shared

from san_plugin.benchmark.datasets import DatasetSpec
from san_plugin.benchmark.models import parse_model_spec
from san_plugin.benchmark.quality import QualityConfig, run_quality

# Published PSNR / SSIM of bicubic x4 and the tolerances of the check.
PUBLISHED = {'Set5': (28.42, 0.8104, 0.05, 0.002), 'Set14': (26.00, 0.7027, 0.10, 0.003)}


@pytest.mark.slow
@pytest.mark.parametrize('lr_folder', [True, False], ids=['lr-folder', 'bicubic-from-hr'])
def test_bicubic_reproduces_literature(lr_folder, tmp_path):
    datasets = []
    for name in PUBLISHED:
        root = require_shared('datasets', name)
        lr = str(root / 'LR_bicubic' / 'x{scale}') if lr_folder else None
        datasets.append(DatasetSpec(name, str(root / 'HR' / 'x{scale}'), lr))
    config = QualityConfig([parse_model_spec('bicubic')], datasets, [4], str(tmp_path))
    rows, _ = run_quality(config, show_progress=False)
    for row in rows:
        psnr, ssim, psnr_tol, ssim_tol = PUBLISHED[row['dataset']]
        assert row['psnr'] == pytest.approx(psnr, abs=psnr_tol), row['dataset']
        assert row['ssim'] == pytest.approx(ssim, abs=ssim_tol), row['dataset']
    assert len(rows) == 2
