"""The metrics of a study: which direction is better for each, which ones a study evaluates, and what they need before
any training (ImageNet weights, images large enough for NIQE).

Every run is evaluated with PSNR and SSIM (higher is better) and with the perceptual metrics of
:func:`resolve_metrics` (LPIPS, DISTS, NIQE: lower is better), computed by the quality benchmark's code
(:mod:`san_plugin.benchmark.metrics`). A metric listed in ``test.metrics`` must work: its weights are found (or
downloaded as the libraries would) and its networks built before anything is trained, else the study stops naming the
key and the file. Without ``test.metrics`` a study with a ``gan`` block evaluates NIQE (BasicSR ships its parameters)
and LPIPS and DISTS where their weights are found, and its report says why a metric was left out.
"""

from dataclasses import dataclass
from pathlib import Path

from san_plugin.benchmark.metrics import QUALITY_METRICS, metric_spec, prepare_metrics
from san_plugin.data.images import ImageError, list_images, read_image
from san_plugin.metrics.backbones import MissingWeightsError, WeightsFileError, perceptual_loss_request
from san_plugin.study.options import MIN_EFFECT, StudyError

# name -> (label, better, digits of the report, unit)
METRIC_FACTS = {
    'psnr': ('PSNR', 'higher', 2, 'dB'),
    'ssim': ('SSIM', 'higher', 4, ''),
    'lpips': ('LPIPS', 'lower', 4, ''),
    'dists': ('DISTS', 'lower', 4, ''),
    'niqe': ('NIQE', 'lower', 3, ''),
}
ALWAYS = ('psnr', 'ssim')
# BasicSR's NIQE cuts the image into 96x96 blocks and needs two of them (the covariance of one block is undefined).
NIQE_BLOCK = 96
NIQE_MIN_BLOCKS = 2


@dataclass(frozen=True)
class Metric:
    """One metric of a report.

    Attributes:
        name (str): Key in the run records (``psnr``, ``niqe``, ...).
        label (str): Its name in tables and figures.
        better (str): 'higher' or 'lower'.
        digits (int): Decimals of its values in the report.
        unit (str): Its unit ('' for none).
        min_effect (float): The difference the seeds-for-power column is sized for.
    """

    name: str
    label: str
    better: str
    digits: int
    unit: str
    min_effect: float

    def is_better(self, a, b):
        """Whether value ``a`` is better than value ``b``."""
        return a > b if self.better == 'higher' else a < b

    def record(self):
        """Its entry in report.json's ``metrics``."""
        return {'name': self.name, 'label': self.label, 'better': self.better, 'unit': self.unit,
                'min_effect': self.min_effect}  # fmt: skip


def report_metrics(extra, min_effect_db, min_effect):
    """PSNR, SSIM and the ``extra`` metrics as :class:`Metric`s.

    Args:
        extra (Iterable[str]): Names of the perceptual metrics reported.
        min_effect_db (float): PSNR's effect for the seeds-for-power column.
        min_effect (dict[str, float]): The other metrics' (``Study.min_effect``).

    Returns:
        list[Metric]: In the order PSNR, SSIM, then ``extra``.
    """
    effects = {**min_effect, 'psnr': min_effect_db}
    return [Metric(name, *METRIC_FACTS[name], effects[name]) for name in (*ALWAYS, *extra)]


# PSNR and SSIM with the studies' default effects (a report without perceptual metrics).
DEFAULT_METRICS = report_metrics((), 0.05, MIN_EFFECT)


@dataclass
class StudyMetrics:
    """The perceptual metrics a study evaluates, and those it leaves out.

    Attributes:
        specs (list[MetricSpec]): Evaluated on every run (and bicubic).
        skipped (dict[str, str]): Metric name -> why it is left out (named in the report).
    """

    specs: list
    skipped: dict


def resolve_metrics(study):
    """The perceptual metrics of a study: those of ``test.metrics``, else (with a ``gan`` block) NIQE and the LPIPS
    and DISTS whose weights are found. Nothing is downloaded here.

    Args:
        study (Study): The study.

    Returns:
        StudyMetrics: The metrics.
    """
    if study.metrics is not None:
        return StudyMetrics(list(study.metrics), {})
    if study.gan is None:
        return StudyMetrics([], {})
    specs, skipped = [], {}
    for name in QUALITY_METRICS:
        spec = metric_spec(name, {}, f'test.metrics.{name}', None)
        if spec.use is None or spec.use.request.existing_file() is not None:
            specs.append(spec)
        else:
            problem = spec.use.request.problem()
            skipped[name] = (
                f'left out, its weights are missing: {problem}; or list {name} in test.metrics to download them'
            )
    return StudyMetrics(specs, skipped)


def check_weights(study, metrics):
    """Stop the study before any training when a metric's or the perceptual loss's ImageNet weights are missing or
    bad (:mod:`san_plugin.metrics.backbones`: found, else downloaded into torchvision's cache as the libraries would;
    the metric networks are built from them). The missing files are named together in one message.

    Args:
        study (Study): The study.
        metrics (StudyMetrics): Its metrics.

    Raises:
        StudyError: Naming the study file, each missing file, the key that asked for it and where to put it.
    """
    with_loss = study.gan is not None and study.gan['perceptual_weight']
    loss = [perceptual_loss_request('gan.perceptual_weight')] if with_loss else []
    try:
        prepare_metrics(metrics.specs, loss)
    except (MissingWeightsError, WeightsFileError) as error:
        hint = (
            ' (gan.perceptual_weight: 0 trains without the perceptual loss)' if 'gan.perceptual' in str(error) else ''
        )
        raise StudyError(f'{study.source}: {error}{hint}') from error


def niqe_blocks(height, width, crop_border):
    """How many 96x96 blocks BasicSR's NIQE takes from an image of ``height`` x ``width`` with ``crop_border``."""
    return ((height - 2 * crop_border) // NIQE_BLOCK) * ((width - 2 * crop_border) // NIQE_BLOCK)


def _hr_images(test_set, scale):
    """(file, height, width) of the HR images a test set is evaluated on at ``scale`` (``images`` sets: the input,
    modcropped as they are prepared)."""
    folder = test_set.images or test_set.hr.format(scale=scale)
    for path in list_images(folder):
        height, width = read_image(path).shape[:2]
        if test_set.images is not None:
            height, width = height - height % scale, width - width % scale
        yield path, height, width


def check_niqe_sizes(study, metrics):
    """Stop the study before any training when a test image is too small for NIQE at a scale of the study.

    Args:
        study (Study): The study.
        metrics (StudyMetrics): Its metrics (nothing is checked without NIQE).

    Raises:
        StudyError: Naming the study file, the test set's key, the image and its size.
    """
    if 'niqe' not in [spec.name for spec in metrics.specs]:
        return
    for test_set in study.test_sets:
        for scale in study.scales:
            key = f'test.datasets.{test_set.name}'
            try:
                images = list(_hr_images(test_set, scale))
            except ImageError as error:
                raise StudyError(f'{study.source}: {key}: {error}') from error
            for path, height, width in images:
                if niqe_blocks(height, width, scale) < NIQE_MIN_BLOCKS:
                    raise StudyError(
                        f'{study.source}: {key}: {Path(path)} is {width}x{height} at x{scale}, too small for NIQE, '
                        f'which needs two {NIQE_BLOCK}x{NIQE_BLOCK} blocks once {scale} pixels are cropped from each '
                        f'edge (at least {NIQE_BLOCK + 2 * scale}x{2 * NIQE_BLOCK + 2 * scale}); use larger test '
                        'images, or test.metrics without niqe'
                    )
