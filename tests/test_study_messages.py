"""The messages of bad study files, each compared in full with the one the study runner gave before its refactor
(issue 25: every message keeps naming the file and the key), except three changed on purpose: a study that is not a
mapping (its message had an empty key, ``study: : ...``) and ``out``, ``data_root`` or ``train.data`` that is not a
path (a TypeError that named neither the file nor the key); the keys added since (``gan``, ``test.metrics``,
``min_effect``) are in the lists of known keys and have cases of their own. A case is a valid tiny study with edits:
(path, value), the path () replacing the whole mapping and the value ... removing the key; ``{tmp}`` in a value or a
message is the test's folder, where ``empty`` is an empty folder and ``set/HR/x2``, ``set/LR/x2`` hold one image
each."""

import copy

import pytest
import yaml
from basicsr.utils.registry import ARCH_REGISTRY
from helpers.study import study_options, write_images

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.study.options import StudyError, override_max_parallel, parse_study, read_study

SLURM = (('executor',), 'slurm')
SET_HR = '{tmp}/set/HR/x{scale}'
SET_LR = '{tmp}/set/LR/x{scale}'
CASES = [
    ('top_list', [((), ['a'])], 'StudyError', 'study: expected a mapping, got list'),
    ('top_empty', [((), None)], 'StudyError', 'study: expected a mapping, got NoneType'),
    (
        'top_unknown_key',
        [(('epochs',), 3)],
        'StudyError',
        'study: epochs: unknown key (known: name, out, data_root, scales, seeds, threads, param_tolerance, networks, train, test, alpha, min_effect_db, min_effect, gan, executor, max_parallel, gpus_per_run, runs_per_gpu, evaluate, slurm)',  # noqa: E501
    ),
    ('name_missing', [(('name',), ...)], 'StudyError', 'study: name: missing'),
    ('networks_missing', [(('networks',), ...)], 'StudyError', 'study: networks: missing'),
    ('train_missing', [(('train',), ...)], 'StudyError', 'study: train: missing'),
    ('test_missing', [(('test',), ...)], 'StudyError', 'study: test: missing'),
    (
        'name_space',
        [(('name',), 'a b')],
        'StudyError',
        "study: name: expected a name without spaces or slashes, got 'a b'",
    ),
    (
        'name_slash',
        [(('name',), 'a/b')],
        'StudyError',
        "study: name: expected a name without spaces or slashes, got 'a/b'",
    ),
    ('name_int', [(('name',), 7)], 'StudyError', 'study: name: expected a name without spaces or slashes, got 7'),
    ('name_empty', [(('name',), '')], 'StudyError', "study: name: expected a name without spaces or slashes, got ''"),
    ('out_int', [(('out',), 5)], 'StudyError', 'study: out: expected a folder path, got 5'),
    ('data_root_list', [(('data_root',), ['a'])], 'StudyError', "study: data_root: expected a folder path, got ['a']"),
    (
        'scales_unsupported',
        [(('scales',), [5])],
        'StudyError',
        'study: scales: scale 5 is not supported; choose from (2, 3, 4, 8)',
    ),
    (
        'scales_text',
        [(('scales',), 'two')],
        'StudyError',
        "study: scales: expected a non-empty list of integers, got 'two'",
    ),
    ('scales_empty', [(('scales',), [])], 'StudyError', 'study: scales: expected a non-empty list of integers, got []'),
    ('scales_repeated', [(('scales',), [2, 2])], 'StudyError', 'study: scales: repeated values in [2, 2]'),
    (
        'scales_float',
        [(('scales',), [2.0])],
        'StudyError',
        'study: scales: expected a non-empty list of integers, got [2.0]',
    ),
    (
        'scales_bool',
        [(('scales',), [True])],
        'StudyError',
        'study: scales: expected a non-empty list of integers, got [True]',
    ),
    ('seeds_text', [(('seeds',), 'a')], 'StudyError', "study: seeds: expected a non-empty list of integers, got 'a'"),
    ('seeds_repeated', [(('seeds',), [0, 0])], 'StudyError', 'study: seeds: repeated values in [0, 0]'),
    (
        'seeds_nested',
        [(('seeds',), [[0]])],
        'StudyError',
        'study: seeds: expected a non-empty list of integers, got [[0]]',
    ),
    ('threads_zero', [(('threads',), 0)], 'StudyError', 'study: threads: expected a positive integer, got 0'),
    ('threads_text', [(('threads',), 'one')], 'StudyError', "study: threads: expected a positive integer, got 'one'"),
    ('threads_bool', [(('threads',), True)], 'StudyError', 'study: threads: expected a positive integer, got True'),
    (
        'param_tolerance_negative',
        [(('param_tolerance',), -0.1)],
        'StudyError',
        'study: param_tolerance: expected a number >= 0, got -0.1',
    ),
    (
        'param_tolerance_text',
        [(('param_tolerance',), 'ten')],
        'StudyError',
        "study: param_tolerance: expected a number >= 0, got 'ten'",
    ),
    (
        'alpha_zero',
        [(('alpha',), 0)],
        'StudyError',
        'study: alpha: expected a significance level between 0 and 1 (exclusive), got 0',
    ),
    (
        'alpha_one',
        [(('alpha',), 1.0)],
        'StudyError',
        'study: alpha: expected a significance level between 0 and 1 (exclusive), got 1.0',
    ),
    ('alpha_text', [(('alpha',), '0.05')], 'StudyError', "study: alpha: expected a number, got '0.05'"),
    ('alpha_bool', [(('alpha',), True)], 'StudyError', 'study: alpha: expected a number, got True'),
    ('alpha_list', [(('alpha',), [0.05])], 'StudyError', 'study: alpha: expected a number, got [0.05]'),
    (
        'min_effect_zero',
        [(('min_effect_db',), 0)],
        'StudyError',
        'study: min_effect_db: expected a PSNR difference > 0 dB, got 0',
    ),
    (
        'min_effect_negative',
        [(('min_effect_db',), -0.1)],
        'StudyError',
        'study: min_effect_db: expected a PSNR difference > 0 dB, got -0.1',
    ),
    (
        'min_effect_text',
        [(('min_effect_db',), 'big')],
        'StudyError',
        "study: min_effect_db: expected a number, got 'big'",
    ),
    (
        'networks_list',
        [(('networks',), ['SAN'])],
        'StudyError',
        'study: networks: expected a mapping NAME: network_g block',
    ),
    (
        'networks_empty',
        [(('networks',), {})],
        'StudyError',
        'study: networks: expected a mapping NAME: network_g block',
    ),
    (
        'network_name_space',
        [
            (
                ('networks', 'SAN x'),
                {
                    'type': 'SAN',
                    'num_feat': 8,
                    'num_group': 1,
                    'num_block': 1,
                    'squeeze_factor': 4,
                    'nonlocal_reduction': 2,
                },
            )
        ],
        'StudyError',
        'study: networks.SAN x: names may hold letters, digits, - and _ only',
    ),
    (
        'network_name_int',
        [
            (
                ('networks', 2),
                {
                    'type': 'SAN',
                    'num_feat': 8,
                    'num_group': 1,
                    'num_block': 1,
                    'squeeze_factor': 4,
                    'nonlocal_reduction': 2,
                },
            )
        ],
        'StudyError',
        'study: networks.2: names may hold letters, digits, - and _ only',
    ),
    (
        'network_not_mapping',
        [(('networks', 'SAN'), 'SAN')],
        'StudyError',
        'study: networks.SAN: expected a network_g mapping with a type key',
    ),
    (
        'network_without_type',
        [(('networks', 'SAN', 'type'), ...)],
        'StudyError',
        'study: networks.SAN: expected a network_g mapping with a type key',
    ),
    (
        'network_type_unknown',
        [(('networks', 'SAN', 'type'), 'SANX')],
        'StudyError',
        "study: networks.SAN.type: unknown network type 'SANX' (registered: {registered})",
    ),
    (
        'network_type_int',
        [(('networks', 'SAN', 'type'), 5)],
        'StudyError',
        'study: networks.SAN.type: unknown network type 5 (registered: {registered})',
    ),
    (
        'network_option_unknown',
        [(('networks', 'SAN', 'num_feats'), 8)],
        'StudyError',
        "study: networks.SAN.num_feats: SAN has no option 'num_feats' (options: num_in_ch, num_out_ch, num_feat, num_group, num_block, squeeze_factor, upscale, img_range, rgb_mean, nonlocal_reduction, nonlocal_grid, soca_crop, soca_iter, channel_attention, use_nonlocal, share_source_skip, attention_placement)",  # noqa: E501
    ),
    (
        'network_rcan_option_unknown',
        [(('networks', 'RCAN', 'n_resgroups'), 2)],
        'StudyError',
        "study: networks.RCAN.n_resgroups: RCAN has no option 'n_resgroups' (options: num_in_ch, num_out_ch, num_feat, num_group, num_block, squeeze_factor, upscale, res_scale, img_range, rgb_mean)",  # noqa: E501
    ),
    (
        'network_upscale',
        [(('networks', 'SAN', 'upscale'), 2)],
        'StudyError',
        'study: networks.SAN.upscale: set by the study for each of its scales; remove it',
    ),
    ('train_text', [(('train',), 'fast')], 'StudyError', 'study: train: expected a mapping, got str'),
    (
        'train_unknown_key',
        [(('train', 'iterations'), 3)],
        'StudyError',
        'study: train.iterations: unknown key (known: data, crop_size, step, gt_size, batch_size, total_iter, lr, eta_min, val_freq, print_freq, save_checkpoint_freq)',  # noqa: E501
    ),
    (
        'train_data_missing',
        [(('train', 'data'), ...)],
        'StudyError',
        'study: train.data: missing: give a folder of HR training images',
    ),
    (
        'train_data_nonexistent',
        [(('train', 'data'), '/nonexistent/hr')],
        'StudyError',
        'study: train.data: input folder /nonexistent/hr does not exist or is not a folder',
    ),
    (
        'train_data_empty',
        [(('train', 'data'), '{tmp}/empty')],
        'StudyError',
        'study: train.data: no images (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp, .ppm, .pgm) in input folder {tmp}/empty',  # noqa: E501
    ),
    ('train_data_int', [(('train', 'data'), 5)], 'StudyError', 'study: train.data: expected a folder path, got 5'),
    (
        'train_crop_size_zero',
        [(('train', 'crop_size'), 0)],
        'StudyError',
        'study: train.crop_size: expected a positive integer, got 0',
    ),
    (
        'train_crop_size_text',
        [(('train', 'crop_size'), 'big')],
        'StudyError',
        "study: train.crop_size: expected a positive integer, got 'big'",
    ),
    (
        'train_crop_size_float',
        [(('train', 'crop_size'), 48.0)],
        'StudyError',
        'study: train.crop_size: expected a positive integer, got 48.0',
    ),
    (
        'train_crop_size_bool',
        [(('train', 'crop_size'), True)],
        'StudyError',
        'study: train.crop_size: expected a positive integer, got True',
    ),
    (
        'train_step_negative',
        [(('train', 'step'), -1)],
        'StudyError',
        'study: train.step: expected a positive integer, got -1',
    ),
    (
        'train_batch_size_none',
        [(('train', 'batch_size'), None)],
        'StudyError',
        'study: train.batch_size: expected a positive integer, got None',
    ),
    (
        'train_total_iter_zero',
        [(('train', 'total_iter'), 0)],
        'StudyError',
        'study: train.total_iter: expected a positive integer, got 0',
    ),
    (
        'train_save_checkpoint_freq_text',
        [(('train', 'save_checkpoint_freq'), 'often')],
        'StudyError',
        "study: train.save_checkpoint_freq: expected a positive integer, got 'often'",
    ),
    ('train_lr_negative', [(('train', 'lr'), -1)], 'StudyError', 'study: train.lr: expected a number >= 0, got -1'),
    ('train_lr_text', [(('train', 'lr'), 'fast')], 'StudyError', "study: train.lr: expected a number >= 0, got 'fast'"),
    (
        'train_eta_min_none',
        [(('train', 'eta_min'), None)],
        'StudyError',
        'study: train.eta_min: expected a number >= 0, got None',
    ),
    (
        'train_val_freq_not_multiple',
        [(('train', 'val_freq'), 3)],
        'StudyError',
        'study: train.val_freq: must be a multiple of train.print_freq (2)',
    ),
    (
        'train_gt_size_not_multiple',
        [(('train', 'gt_size'), 33)],
        'StudyError',
        'study: train.gt_size: 33 is not a multiple of scale 2',
    ),
    ('test_text', [(('test',), 'Set5')], 'StudyError', 'study: test: expected a mapping, got str'),
    (
        'test_unknown_key',
        [(('test', 'sets'), {})],
        'StudyError',
        'study: test.sets: unknown key (known: datasets, val_dataset, flops_input, memory_input, metrics)',
    ),
    (
        'datasets_missing',
        [(('test', 'datasets'), ...)],
        'StudyError',
        'study: test.datasets: expected a mapping NAME: {hr: DIR, lr: DIR} or NAME: {images: DIR}',
    ),
    (
        'datasets_empty',
        [(('test', 'datasets'), {})],
        'StudyError',
        'study: test.datasets: expected a mapping NAME: {hr: DIR, lr: DIR} or NAME: {images: DIR}',
    ),
    (
        'datasets_list',
        [(('test', 'datasets'), ['Set5'])],
        'StudyError',
        'study: test.datasets: expected a mapping NAME: {hr: DIR, lr: DIR} or NAME: {images: DIR}',
    ),
    (
        'dataset_not_mapping',
        [(('test', 'datasets', 'Tiny'), 'folder')],
        'StudyError',
        'study: test.datasets.Tiny: expected a mapping, got str',
    ),
    (
        'dataset_unknown_key',
        [(('test', 'datasets', 'Tiny', 'colour'), 'y')],
        'StudyError',
        'study: test.datasets.Tiny.colour: unknown key (known: hr, lr, images)',
    ),
    (
        'dataset_images_and_hr',
        [(('test', 'datasets', 'Tiny', 'hr'), SET_HR)],
        'StudyError',
        'study: test.datasets.Tiny: give either hr (and optionally lr) or images',
    ),
    (
        'dataset_neither',
        [(('test', 'datasets', 'Tiny'), {})],
        'StudyError',
        'study: test.datasets.Tiny: give either hr (and optionally lr) or images',
    ),
    (
        'dataset_lr_without_hr',
        [(('test', 'datasets', 'Tiny', 'lr'), SET_LR)],
        'StudyError',
        'study: test.datasets.Tiny.lr: needs hr beside it',
    ),
    (
        'dataset_images_nonexistent',
        [(('test', 'datasets', 'Tiny', 'images'), '/nonexistent/b100')],
        'StudyError',
        'study: test.datasets.Tiny.images: input folder /nonexistent/b100 does not exist or is not a folder',
    ),
    (
        'dataset_images_empty',
        [(('test', 'datasets', 'Tiny', 'images'), '{tmp}/empty')],
        'StudyError',
        'study: test.datasets.Tiny.images: no images (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp, .ppm, .pgm) in input folder {tmp}/empty',  # noqa: E501
    ),
    (
        'dataset_hr_scale_missing',
        [(('test', 'datasets', 'Set'), {'hr': SET_HR, 'lr': SET_LR}), (('scales',), [2, 4])],
        'StudyError',
        'study: test.datasets.Set.hr: folder {tmp}/set/HR/x4 for scale 4 does not exist',
    ),
    (
        'dataset_hr_empty',
        [(('test', 'datasets', 'Set'), {'hr': '{tmp}/empty', 'lr': SET_LR})],
        'StudyError',
        'study: test.datasets.Set.hr: folder {tmp}/empty for scale 2 is empty',
    ),
    (
        'dataset_lr_empty',
        [(('test', 'datasets', 'Set'), {'hr': SET_HR, 'lr': '{tmp}/empty'})],
        'StudyError',
        'study: test.datasets.Set.lr: folder {tmp}/empty for scale 2 is empty',
    ),
    (
        'val_dataset_unknown',
        [(('test', 'val_dataset'), 'Set5')],
        'StudyError',
        "study: test.val_dataset: 'Set5' is not one of test.datasets",
    ),
    (
        'val_dataset_without_lr',
        [(('test', 'datasets', 'Set'), {'hr': SET_HR}), (('test', 'val_dataset'), 'Set')],
        'StudyError',
        'study: test.datasets.Set: the data set validated during training needs an lr folder',
    ),
    (
        'flops_input_one',
        [(('test', 'flops_input'), [16])],
        'StudyError',
        'study: test.flops_input: expected [height, width], got [16]',
    ),
    (
        'flops_input_text',
        [(('test', 'flops_input'), '16x16')],
        'StudyError',
        "study: test.flops_input: expected [height, width], got '16x16'",
    ),
    (
        'flops_input_float',
        [(('test', 'flops_input'), [16.0, 16])],
        'StudyError',
        'study: test.flops_input: expected [height, width], got [16.0, 16]',
    ),
    (
        'memory_input_zero',
        [(('test', 'memory_input'), 0)],
        'StudyError',
        'study: test.memory_input: expected a positive integer, got 0',
    ),
    (
        'memory_input_text',
        [(('test', 'memory_input'), 'big')],
        'StudyError',
        "study: test.memory_input: expected a positive integer, got 'big'",
    ),
    (
        'executor_unknown',
        [(('executor',), 'kubernetes')],
        'StudyError',
        "study: executor: unknown executor 'kubernetes' (known: local, slurm)",
    ),
    ('executor_int', [(('executor',), 1)], 'StudyError', 'study: executor: unknown executor 1 (known: local, slurm)'),
    (
        'max_parallel_zero',
        [(('max_parallel',), 0)],
        'StudyError',
        'study: max_parallel: expected an integer >= 1, got 0',
    ),
    (
        'max_parallel_text',
        [(('max_parallel',), 'two')],
        'StudyError',
        "study: max_parallel: expected an integer >= 1, got 'two'",
    ),
    (
        'gpus_per_run_negative',
        [(('gpus_per_run',), -1)],
        'StudyError',
        'study: gpus_per_run: expected an integer >= 0, got -1',
    ),
    (
        'runs_per_gpu_zero',
        [(('runs_per_gpu',), 0)],
        'StudyError',
        'study: runs_per_gpu: expected an integer >= 1, got 0',
    ),
    (
        'evaluate_unknown',
        [(('evaluate',), 'nowhere')],
        'StudyError',
        "study: evaluate: expected one of job, local, got 'nowhere'",
    ),
    (
        'slurm_block_with_local',
        [(('slurm',), {'partition': 'gpu'})],
        'StudyError',
        'study: slurm: read by executor: slurm only (executor is local)',
    ),
    (
        'max_parallel_with_slurm',
        [SLURM, (('max_parallel',), 2)],
        'StudyError',
        'study: max_parallel: read by executor: local only; with executor: slurm set slurm.max_parallel instead',
    ),
    (
        'gpus_per_run_with_slurm',
        [SLURM, (('gpus_per_run',), 1)],
        'StudyError',
        'study: gpus_per_run: read by executor: local only; with executor: slurm set slurm.gpus_per_run instead',
    ),
    (
        'runs_per_gpu_with_slurm',
        [SLURM, (('runs_per_gpu',), 2)],
        'StudyError',
        'study: runs_per_gpu: read by executor: local only; with executor: slurm set slurm.runs_per_gpu instead',
    ),
    ('slurm_text', [SLURM, (('slurm',), 'gpu')], 'StudyError', 'study: slurm: expected a mapping, got str'),
    ('slurm_list', [SLURM, (('slurm',), ['gpu'])], 'StudyError', 'study: slurm: expected a mapping, got list'),
    (
        'slurm_unknown_key',
        [SLURM, (('slurm',), {'partitions': 'gpu'})],
        'StudyError',
        'study: slurm.partitions: unknown key (known: partition, account, qos, time, gpus_per_run, tasks_per_run, cpus_per_run, mem, max_parallel, max_retries, folder, poll_s, sbatch)',  # noqa: E501
    ),
    (
        'slurm_time_text',
        [SLURM, (('slurm',), {'time': 'soon'})],
        'StudyError',
        "study: slurm.time: expected minutes (an integer > 0) or 'H:MM:SS', got 'soon'",
    ),
    (
        'slurm_time_zero',
        [SLURM, (('slurm',), {'time': 0})],
        'StudyError',
        "study: slurm.time: expected minutes (an integer > 0) or 'H:MM:SS', got 0",
    ),
    (
        'slurm_time_zero_clock',
        [SLURM, (('slurm',), {'time': '0:00:00'})],
        'StudyError',
        "study: slurm.time: expected minutes (an integer > 0) or 'H:MM:SS', got '0:00:00'",
    ),
    (
        'slurm_time_short_clock',
        [SLURM, (('slurm',), {'time': '1:30'})],
        'StudyError',
        "study: slurm.time: expected minutes (an integer > 0) or 'H:MM:SS', got '1:30'",
    ),
    (
        'slurm_time_bool',
        [SLURM, (('slurm',), {'time': True})],
        'StudyError',
        "study: slurm.time: expected minutes (an integer > 0) or 'H:MM:SS', got True",
    ),
    (
        'slurm_max_parallel_zero',
        [SLURM, (('slurm',), {'max_parallel': 0})],
        'StudyError',
        'study: slurm.max_parallel: expected an integer >= 1, got 0',
    ),
    (
        'slurm_max_retries_negative',
        [SLURM, (('slurm',), {'max_retries': -1})],
        'StudyError',
        'study: slurm.max_retries: expected an integer >= 0, got -1',
    ),
    (
        'slurm_gpus_per_run_text',
        [SLURM, (('slurm',), {'gpus_per_run': 'two'})],
        'StudyError',
        "study: slurm.gpus_per_run: expected an integer >= 0, got 'two'",
    ),
    (
        'slurm_tasks_per_run_zero',
        [SLURM, (('slurm',), {'tasks_per_run': 0})],
        'StudyError',
        'study: slurm.tasks_per_run: expected an integer >= 1, got 0',
    ),
    (
        'slurm_cpus_per_run_zero',
        [SLURM, (('slurm',), {'cpus_per_run': 0})],
        'StudyError',
        'study: slurm.cpus_per_run: expected an integer >= 1, got 0',
    ),
    (
        'slurm_cpus_per_run_float',
        [SLURM, (('slurm',), {'cpus_per_run': 2.5})],
        'StudyError',
        'study: slurm.cpus_per_run: expected an integer >= 1, got 2.5',
    ),
    (
        'slurm_partition_list',
        [SLURM, (('slurm',), {'partition': ['gpu']})],
        'StudyError',
        "study: slurm.partition: expected a string, got ['gpu']",
    ),
    (
        'slurm_mem_float',
        [SLURM, (('slurm',), {'mem': 3.5})],
        'StudyError',
        'study: slurm.mem: expected a string, got 3.5',
    ),
    (
        'slurm_folder_mapping',
        [SLURM, (('slurm',), {'folder': {}})],
        'StudyError',
        'study: slurm.folder: expected a string, got {}',
    ),
    (
        'slurm_poll_s_zero',
        [SLURM, (('slurm',), {'poll_s': 0})],
        'StudyError',
        'study: slurm.poll_s: expected a number of seconds > 0, got 0',
    ),
    (
        'slurm_poll_s_text',
        [SLURM, (('slurm',), {'poll_s': 'often'})],
        'StudyError',
        "study: slurm.poll_s: expected a number of seconds > 0, got 'often'",
    ),
    (
        'slurm_poll_s_bool',
        [SLURM, (('slurm',), {'poll_s': True})],
        'StudyError',
        'study: slurm.poll_s: expected a number of seconds > 0, got True',
    ),
    (
        'slurm_sbatch_list',
        [SLURM, (('slurm',), {'sbatch': ['--exclusive']})],
        'StudyError',
        "study: slurm.sbatch: expected a mapping of sbatch parameters, got ['--exclusive']",
    ),
    # The GAN stage (issue 26) and the perceptual metrics: new keys, new messages.
    (
        'gan_without_discriminator',
        [(('gan',), {'total_iter': 4})],
        'StudyError',
        'study: gan.network_d: missing: give a BasicSR discriminator block, e.g. {type: UNetDiscriminatorSN, '
        'num_in_ch: 3}',
    ),
    (
        'gan_unknown_discriminator',
        [(('gan',), {'network_d': {'type': 'PatchGAN'}})],
        'StudyError',
        "study: gan.network_d.type: unknown discriminator 'PatchGAN' (registered: HiFaceGANDiscriminator, "
        'StyleGAN2Discriminator, UNetDiscriminatorSN, VGGStyleDiscriminator)',
    ),
    (
        'gan_generator_as_discriminator',
        [(('gan',), {'network_d': {'type': 'SAN'}})],
        'StudyError',
        "study: gan.network_d.type: unknown discriminator 'SAN' (registered: HiFaceGANDiscriminator, "
        'StyleGAN2Discriminator, UNetDiscriminatorSN, VGGStyleDiscriminator)',
    ),
    (
        'gan_discriminator_option',
        [(('gan',), {'network_d': {'type': 'UNetDiscriminatorSN', 'num_feats': 4}})],
        'StudyError',
        "study: gan.network_d.num_feats: UNetDiscriminatorSN has no option 'num_feats' (options: num_in_ch, "
        'num_feat, skip_connection)',
    ),
    (
        'gan_vgg_input_size',
        [(('gan',), {'network_d': {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'input_size': 96}})],
        'StudyError',
        'study: gan.network_d.input_size: VGGStyleDiscriminator takes 128 or 256 only, got 96',
    ),
    (
        'gan_vgg_patch_size',
        [(('gan',), {'network_d': {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3}})],
        'StudyError',
        'study: gan.gt_size: 32, but VGGStyleDiscriminator sees the GT patches and takes gan.network_d.input_size '
        '128: make them equal',
    ),
    (
        'gan_patch_scale',
        [(('gan',), {'network_d': {'type': 'UNetDiscriminatorSN'}, 'gt_size': 33})],
        'StudyError',
        'study: gan.gt_size: 33 is not a multiple of scale 2',
    ),
    (
        'gan_patch_crop',
        [(('gan',), {'network_d': {'type': 'UNetDiscriminatorSN'}, 'gt_size': 64})],
        'StudyError',
        'study: gan.gt_size: 64 is larger than the training sub-images (train.crop_size 48)',
    ),
    (
        'gan_unknown_key',
        [(('gan',), {'network_d': {'type': 'UNetDiscriminatorSN'}, 'lr': 1e-4})],
        'StudyError',
        'study: gan.lr: unknown key (known: network_d, total_iter, gt_size, batch_size, lr_g, lr_d, pixel_weight, '
        'perceptual_weight, perceptual_layers, gan_type, gan_weight, ema_decay, net_d_iters, net_d_init_iters)',
    ),
    (
        'gan_type',
        [(('gan',), {'network_d': {'type': 'UNetDiscriminatorSN'}, 'gan_type': 'relativistic'})],
        'StudyError',
        "study: gan.gan_type: unknown GAN loss 'relativistic' (known: vanilla, lsgan, wgan, wgan_softplus, hinge)",
    ),
    (
        'gan_vgg_layer',
        [(('gan',), {'network_d': {'type': 'UNetDiscriminatorSN'}, 'perceptual_layers': {'conv6_1': 1.0}})],
        'StudyError',
        'study: gan.perceptual_layers.conv6_1: not a VGG19 layer (layers: conv1_1, relu1_1, conv1_2, relu1_2, '
        'pool1, conv2_1, relu2_1, conv2_2, relu2_2, pool2, conv3_1, relu3_1, conv3_2, relu3_2, conv3_3, relu3_3, '
        'conv3_4, relu3_4, pool3, conv4_1, relu4_1, conv4_2, relu4_2, conv4_3, relu4_3, conv4_4, relu4_4, pool4, '
        'conv5_1, relu5_1, conv5_2, relu5_2, conv5_3, relu5_3, conv5_4, relu5_4, pool5)',
    ),
    (
        'gan_no_content_loss',
        [(('gan',), {'network_d': {'type': 'UNetDiscriminatorSN'}, 'pixel_weight': 0, 'perceptual_weight': 0})],
        'StudyError',
        "study: gan.pixel_weight: and gan.perceptual_weight are both 0: BasicSR's GAN models need one of them",
    ),
    (
        'gan_ema_decay',
        [(('gan',), {'network_d': {'type': 'UNetDiscriminatorSN'}, 'ema_decay': 1})],
        'StudyError',
        'study: gan.ema_decay: expected a number in [0, 1), got 1',
    ),
    (
        'gan_not_a_mapping',
        [(('gan',), ['UNetDiscriminatorSN'])],
        'StudyError',
        'study: gan: expected a mapping, got list',
    ),
    (
        'test_unknown_metric',
        [(('test', 'metrics'), ['niqe', 'fid'])],
        'StudyError',
        "study: test.metrics.fid: unknown metric 'fid' (known: lpips, dists, niqe)",
    ),
    (
        'test_metrics_text',
        [(('test', 'metrics'), 'niqe')],
        'StudyError',
        "study: test.metrics: expected a list of metric names or a mapping name -> options, got 'niqe'",
    ),
    (
        'test_metric_option',
        [(('test', 'metrics'), {'lpips': {'net': 'alex', 'crop_border': 4}})],
        'StudyError',
        "study: test.metrics.lpips (calculate_lpips): unknown option(s) ['crop_border']; calculate_lpips accepts "
        "['net', 'backbone_path']",
    ),
    (
        'min_effect_psnr',
        [(('min_effect',), {'psnr': 0.1})],
        'StudyError',
        "study: min_effect.psnr: PSNR's is min_effect_db",
    ),
    (
        'min_effect_unknown',
        [(('min_effect',), {'fid': 1})],
        'StudyError',
        'study: min_effect.fid: unknown metric (known: ssim, lpips, dists, niqe)',
    ),
    (
        'min_effect_zero',
        [(('min_effect',), {'niqe': 0})],
        'StudyError',
        'study: min_effect.niqe: expected a difference > 0, got 0',
    ),
]


def filled(value, tmp):
    """``value`` with ``{tmp}`` in its strings replaced by the test's folder."""
    if isinstance(value, str):
        return value.replace('{tmp}', str(tmp))
    if isinstance(value, dict):
        return {key: filled(item, tmp) for key, item in value.items()}
    return copy.deepcopy(value)


def edited(study, edits, tmp):
    for path, value in edits:
        if path == ():
            study = filled(value, tmp)
            continue
        node = study
        for key in path[:-1]:
            node = node[key]
        if value is ...:
            del node[path[-1]]
        else:
            node[path[-1]] = filled(value, tmp)
    return study


@pytest.fixture(scope='module')
def valid(tmp_path_factory):
    """A valid tiny study and its folder (with ``empty`` and ``set``), made once for the module's cases."""
    folder = tmp_path_factory.mktemp('bad_studies')
    (folder / 'empty').mkdir()
    for role in ('HR', 'LR'):
        write_images(folder / 'set' / role / 'x2', 1, (16, 16), 2)
    return study_options(folder, str(folder / 'report'), str(folder / 'datasets')), folder


def expected_message(message, tmp):
    return message.replace('{tmp}', str(tmp)).replace('{registered}', str(sorted(ARCH_REGISTRY.keys())))


@pytest.mark.parametrize('edits, kind, message', [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_study_file_gives_the_same_message(valid, edits, kind, message):
    study, folder = valid
    with pytest.raises(Exception) as error:
        parse_study(edited(copy.deepcopy(study), edits, folder))
    assert (type(error.value).__name__, str(error.value)) == (kind, expected_message(message, folder))


def test_bad_study_files_on_disk_and_command_line_give_the_same_messages(tmp_path, tiny_study):
    with pytest.raises(StudyError) as error:
        read_study(tmp_path / 'nope.yml')
    missing = (
        f"-opt: cannot read study file {tmp_path}/nope.yml: [Errno 2] No such file or directory: '{tmp_path}/nope.yml'"
    )
    assert str(error.value) == missing
    (tmp_path / 'bad.yml').write_text('name: [unclosed\n')
    with pytest.raises(StudyError) as error:
        read_study(tmp_path / 'bad.yml')
    assert str(error.value).startswith(
        f'-opt: cannot read study file {tmp_path}/bad.yml: while parsing a flow sequence'
    )
    (tmp_path / 'empty.yml').write_text('')
    with pytest.raises(StudyError) as error:
        read_study(tmp_path / 'empty.yml')
    assert str(error.value) == f'{tmp_path}/empty.yml: expected a mapping, got NoneType'
    (tmp_path / 'study.yml').write_text(yaml.safe_dump(tiny_study))
    with pytest.raises(StudyError) as error:
        read_study(tmp_path / 'study.yml', train_data='/nonexistent/hr')
    assert str(error.value) == (
        f'{tmp_path}/study.yml: train.data: input folder /nonexistent/hr does not exist or is not a folder'
    )
    study = read_study(tmp_path / 'study.yml')
    with pytest.raises(StudyError) as error:
        override_max_parallel(study, 0)
    assert str(error.value) == '--max-parallel: expected an integer >= 1, got 0'
