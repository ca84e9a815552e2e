"""BasicSR's PairedImageDataset with errors that name the dataset, the option key and the file at fault."""

from os import path as osp

from basicsr.data.data_util import paths_from_lmdb
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils import FileClient, scandir
from basicsr.utils.registry import DATASET_REGISTRY

from san_plugin.data.images import ImageError, decode_image


@DATASET_REGISTRY.register()
class CheckedPairedImageDataset(PairedImageDataset):
    """Paired LQ/GT image dataset: ``PairedImageDataset`` with clear errors for data problems.

    Takes the same options and has the same three modes (lmdb, meta_info_file, folder) and the same samples as
    BasicSR's ``PairedImageDataset``; only the failures differ. Checked when it is built: each of ``dataroot_gt`` and
    ``dataroot_lq`` exists (an LMDB with its ``meta_info.txt`` in lmdb mode), ``meta_info_file`` exists, the two roots
    hold the same image names (names the first unmatched one), and there is at least one pair. Checked when a pair is
    read: both images decode, and the GT is ``scale`` times the LQ (in train phase exactly, and the LQ at least
    ``gt_size / scale``; in val phase up to ``scale - 1`` pixels more, which BasicSR crops away).

    Args:
        opt (dict): ``PairedImageDataset``'s options, e.g. ``name``, ``dataroot_gt``, ``dataroot_lq``,
            ``io_backend``, ``meta_info_file``, ``filename_tmpl``, ``gt_size``, ``use_hflip``, ``use_rot``, ``scale``,
            ``phase``.
    """

    def __init__(self, opt):
        self._where = f"dataset '{opt.get('name', type(self).__name__)}'"
        is_lmdb = opt['io_backend']['type'] == 'lmdb'
        for key in ('dataroot_gt', 'dataroot_lq'):
            self._check_root(opt, key, is_lmdb)
        meta_info_file = opt.get('meta_info_file')
        if is_lmdb:
            self._check_same_names(opt, paths_from_lmdb(opt['dataroot_gt']), paths_from_lmdb(opt['dataroot_lq']))
        elif meta_info_file is not None:
            if not osp.isfile(meta_info_file):
                raise FileNotFoundError(f"{self._where}: meta_info_file '{meta_info_file}' does not exist")
        else:
            gt_names = sorted(scandir(opt['dataroot_gt']))
            template = opt.get('filename_tmpl', '{}')
            lq_names = sorted(scandir(opt['dataroot_lq']))
            expected_lq = [template.format(osp.splitext(name)[0]) + osp.splitext(name)[1] for name in gt_names]
            self._check_same_names(opt, gt_names, lq_names, expected_lq)
        super().__init__(opt)
        if not self.paths:
            raise ValueError(f"{self._where}: no images found in dataroot_gt '{opt['dataroot_gt']}'")

    def _check_root(self, opt, key, is_lmdb):
        root = opt.get(key)
        if root is None:
            raise ValueError(f'{self._where}: option {key} is not set')
        if not osp.exists(root):
            raise FileNotFoundError(f"{self._where}: {key} '{root}' does not exist")
        if is_lmdb:
            if not root.endswith('.lmdb'):
                raise ValueError(
                    f"{self._where}: {key} '{root}' must be an LMDB folder ending with .lmdb (io_backend lmdb)"
                )
            for name in ('data.mdb', 'meta_info.txt'):
                if not osp.isfile(osp.join(root, name)):
                    raise FileNotFoundError(f"{self._where}: {key} '{root}' has no {name}; it is not a complete LMDB")
        elif not osp.isdir(root):
            raise NotADirectoryError(f"{self._where}: {key} '{root}' is not a folder")

    def _check_same_names(self, opt, gt_names, lq_names, expected_lq=None):
        """Raise naming the first GT without its LQ partner, or the first LQ without a GT partner."""
        expected_lq = gt_names if expected_lq is None else expected_lq
        available = set(lq_names)
        for gt_name, lq_name in zip(gt_names, expected_lq):
            if lq_name not in available:
                raise ValueError(
                    f"{self._where}: '{gt_name}' in dataroot_gt '{opt['dataroot_gt']}' has no partner '{lq_name}' in "
                    f"dataroot_lq '{opt['dataroot_lq']}' ({len(gt_names)} GT, {len(lq_names)} LQ images)"
                )
        unmatched = sorted(available - set(expected_lq))
        if unmatched:
            raise ValueError(
                f"{self._where}: '{unmatched[0]}' in dataroot_lq '{opt['dataroot_lq']}' has no partner in dataroot_gt "
                f"'{opt['dataroot_gt']}' ({len(gt_names)} GT, {len(lq_names)} LQ images)"
            )

    def __getitem__(self, index):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        if self.opt['phase'] != 'train':
            self._check_pair(index)  # BasicSR would crop a GT of the wrong size without a word
            return super().__getitem__(index)
        try:
            return super().__getitem__(index)
        except Exception:
            self._check_pair(index)  # raises the clear error when the data is at fault
            raise

    def _read(self, path, client_key):
        root = f"dataroot_{client_key} '{self.opt[f'dataroot_{client_key}']}'"
        try:
            content = self.file_client.get(path, client_key)
        except OSError as error:
            raise FileNotFoundError(f"{self._where}: cannot read '{path}' of {root}: {error}") from error
        if content is None:
            raise ValueError(f"{self._where}: key '{path}' is in the meta_info.txt of {root} but not in its data.mdb")
        try:
            return decode_image(content, f"'{path}' of {root}")
        except ImageError as error:
            raise ValueError(f'{self._where}: {error}') from None

    def _check_pair(self, index):
        """Raise a clear error if the pair at ``index`` does not decode or its sizes do not match ``scale``."""
        gt_path, lq_path = self.paths[index]['gt_path'], self.paths[index]['lq_path']
        (gt_h, gt_w), (lq_h, lq_w) = self._read(gt_path, 'gt').shape[:2], self._read(lq_path, 'lq').shape[:2]
        scale = self.opt['scale']
        if self.opt['phase'] == 'train':
            fits = (gt_h, gt_w) == (lq_h * scale, lq_w * scale)
        else:
            fits = 0 <= gt_h - lq_h * scale < scale and 0 <= gt_w - lq_w * scale < scale
        if not fits:
            raise ValueError(
                f"{self._where}: GT '{gt_path}' is {gt_w}x{gt_h} but LQ '{lq_path}' is {lq_w}x{lq_h}; with scale "
                f'{scale} the GT must be {lq_w * scale}x{lq_h * scale}'
            )
        lq_size = self.opt.get('gt_size', 0) // scale
        if self.opt['phase'] == 'train' and min(lq_h, lq_w) < lq_size:
            raise ValueError(
                f"{self._where}: LQ '{lq_path}' is {lq_w}x{lq_h}, smaller than gt_size {self.opt['gt_size']} / scale "
                f'{scale} = {lq_size}; lower gt_size or remove the pair'
            )
