"""The messages of bad network options, wherever they are given, compared with those of the code before issue #25.

One checker and one ``key=value`` parser replaced three checkers and two parsers; every message that existed names
the file (or flag) and the key as it did, and each deliberate change is listed in ``docs/drafts/netopts.md``. The
cases: ``network_*`` blocks of a BasicSR options file (the start-up check, through BasicSR's own
``parse_options``), ``networks:`` entries of a study file, ``--network-opt`` values of the four tools that take it,
and the ``NAME=type:ARCH,key:value`` specs and ``models:`` blocks of the quality benchmark.
"""

import sys

import pytest
import torch
import yaml
from basicsr.archs.rcan_arch import RCAN
from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.utils import options as basicsr_options
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import load_tool

import san_plugin  # noqa: F401  (registers the archs, fixes BasicSR's parse_options)
from san_plugin.archs.san_arch import SAN
from san_plugin.benchmark.models import model_spec_from_value, parse_model_spec
from san_plugin.study.options import check_network
from san_plugin.utils.arch_arguments import constructor_arguments

TINY_SAN = {'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4, 'upscale': 2}
SAN_OPTIONS = list(constructor_arguments(SAN)[0])
RCAN_OPTIONS = list(constructor_arguments(RCAN)[0])
# Long lists in the messages, filled in when the test runs: archs added later must not break the comparison.
PLACEHOLDERS = {
    'san_options': ', '.join(SAN_OPTIONS),
    'rcan_options': ', '.join(RCAN_OPTIONS),
    'registered': str(sorted(ARCH_REGISTRY.keys())),
}


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Tiny SAN x2 and MSRResNet weights, an empty input folder for tools/inference.py."""
    root = tmp_path_factory.mktemp('network_option_messages')
    torch.save({'params': SAN(**TINY_SAN).state_dict()}, root / 'san.pth')
    torch.save({'params': MSRResNet(num_feat=8, num_block=1, upscale=2).state_dict()}, root / 'msrresnet.pth')
    (root / 'images').mkdir()
    return root


def startup_message(root, monkeypatch, sections):
    """What BasicSR's ``parse_options`` (with the plugin's start-up check) says of ``sections``; None if they pass."""
    path = root / 'options.yml'
    path.write_text(
        yaml.safe_dump({'name': 'bad', 'num_gpu': 0, 'manual_seed': 0, 'datasets': {}, 'path': {}, **sections})
    )
    monkeypatch.setattr(sys, 'argv', ['test.py', '-opt', str(path)])
    try:
        basicsr_options.parse_options(str(root), is_train=False)
    except ValueError as error:
        return str(error)
    return None


STARTUP_CASES = {
    'unknown key': (
        {'network_g': {'type': 'SAN', 'num_feats': 16}},
        "{options}: network_g.num_feats: SAN has no option 'num_feats' (options: {san_options})",
    ),
    'unknown keys': (
        {'network_g': {'type': 'SAN', 'num_feats': 16, 'groups': 2}},
        "{options}: network_g.groups: SAN has no option 'groups', nor 'num_feats' (options: {san_options})",
    ),
    'missing required': (
        {'network_g': {'type': 'RCAN'}},
        '{options}: network_g: missing option(s) num_in_ch, num_out_ch (RCAN has no default for them)',
    ),
    'unknown and missing': (
        {'network_g': {'type': 'RCAN', 'num_feats': 16}},
        "{options}: network_g.num_feats: RCAN has no option 'num_feats' (options: {rcan_options})",
    ),
    'missing type': ({'network_g': {'num_feat': 16}}, '{options}: network_g.type: missing (the arch name, e.g. SAN)'),
    'other section': (
        {'network_d': {'type': 'SAN', 'scale': 2}},
        "{options}: network_d.scale: SAN has no option 'scale' (options: {san_options})",
    ),
    # Projects may register their archs after the options are parsed; BasicSR accepts such options, so must we.
    'unregistered type': ({'network_g': {'type': 'RegisteredLater', 'any_key': 1}}, None),
    'type not a name': ({'network_g': {'type': 5}}, '{options}: network_g.type: expected an arch name, got 5'),
    'not a mapping': ({'network_g': 'SAN'}, None),
    'valid': ({'network_g': {'type': 'SAN', **TINY_SAN}, 'network_x': None}, None),
    'valid with required options': ({'network_g': {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3}}, None),
}


@pytest.mark.parametrize('case', STARTUP_CASES)
def test_startup_messages(tmp_path, monkeypatch, case):
    sections, expected = STARTUP_CASES[case]
    message = startup_message(tmp_path, monkeypatch, sections)
    assert message == expected_message(expected, options=tmp_path / 'options.yml')


def study_message(opt):
    try:
        check_network('SAN', opt, 'study.yml')
    except ValueError as error:
        return str(error)
    return None


# Missing type, unregistered type, type not a name, unknown key and upscale set are cases of
# tests/data/study_messages.yml (through parse_study, which checks each network with check_network).
STUDY_CASES = {
    'not a mapping': (5, 'study.yml: networks.SAN: expected a network_g mapping with a type key, got int'),
    'unknown keys': (
        {'type': 'SAN', 'num_feats': 8, 'groups': 2},
        "study.yml: networks.SAN.num_feats: SAN has no option 'num_feats', nor 'groups' (options: {san_options})",
    ),
    'missing required': (
        {'type': 'RCAN'},
        'study.yml: networks.SAN: missing option(s) num_in_ch, num_out_ch (RCAN has no default for them)',
    ),
    'valid': ({'type': 'SAN', 'num_feat': 16}, None),
    'BasicSR name without its suffix': ({'type': 'SRVGGNetCompact', 'num_feat': 4, 'num_conv': 1}, None),
}


@pytest.mark.parametrize('case', STUDY_CASES)
def test_study_messages(case):
    opt, expected = STUDY_CASES[case]
    assert study_message(opt) == expected_message(expected)


def tool_argv(tool, files, network_opts, weights='san.pth'):
    """The command line of ``tool`` on ``weights`` with ``--network-opt`` values; outputs go under ``files/out``."""
    flags = [arg for value in network_opts for arg in ('--network-opt', value)]
    weights, out = str(files / weights), str(files / 'out')
    return {
        'convert_checkpoint': [weights, f'{out}.pth', *flags],
        'inference': ['-i', str(files / 'images'), '-o', out, '-w', weights, *flags],
        'export_onnx': [weights, f'{out}.onnx', *flags],
        'benchmark': ['quality', '--model', f'n={weights}', '--scale', '2', '--out', out, *flags],
    }[tool]


NETWORK_OPT_CASES = {
    'no separator': (['img_range'], "error: --network-opt 'img_range': expected key=value, e.g. img_range=1."),
    'no key': (['=1'], "error: --network-opt '=1': expected key=value, e.g. img_range=1."),
    'bad YAML': (
        ['img_range=[1,'],
        "error: --network-opt 'img_range=[1,': the value is not valid YAML (expected the node content, but found "
        "'<stream end>' at line 1, column 4)",
    ),
    'given twice': (['img_range=1', 'img_range=2'], 'error: --network-opt img_range: given twice'),
    'unknown key': (
        ['num_feats=3'],
        "error: {model}--network-opt num_feats: SAN has no option 'num_feats' (options: {san_options})",
    ),
    'contradicts the tensors': (
        ['num_feat=32'],
        'error: {model}--network-opt num_feat=32: the tensors of weights file {weights} show 16',
    ),
}
# Exit status of each tool for these errors; the benchmark names the model whose weights the value is for.
TOOLS = {'convert_checkpoint': (1, ''), 'inference': (1, ''), 'export_onnx': (1, ''), 'benchmark': (1, '--model n: ')}


def tool_message(tool, argv, capsys):
    """Exit status and the last line that ``tool`` writes to stderr."""
    code = load_tool(tool).main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    return code, lines[-1] if lines else None


@pytest.mark.filterwarnings('ignore::san_plugin.convert.network_config.AssumedSettingWarning')
@pytest.mark.parametrize('tool', TOOLS)
@pytest.mark.parametrize('case', NETWORK_OPT_CASES)
def test_network_opt_messages(files, capsys, tool, case):
    values, expected = NETWORK_OPT_CASES[case]
    code, model = TOOLS[tool]
    message = tool_message(tool, tool_argv(tool, files, values), capsys)
    assert message == (code, expected_message(expected, weights=files / 'san.pth', model=model))
    assert not (files / 'out').exists() and not list(files.glob('out.*'))


def test_network_opt_for_an_unrecognised_network(files, capsys):
    argv = tool_argv('convert_checkpoint', files, ['upscale=2'], weights='msrresnet.pth')
    expected = 'error: --network-opt: the network of weights file {weights} is not recognised'
    assert tool_message('convert_checkpoint', argv, capsys) == (
        1,
        expected_message(expected, weights=files / 'msrresnet.pth'),
    )


def model_message(spec, scale=2):
    """What the quality benchmark says of a model spec (a string or a ``models:`` block), parsed then built."""
    try:
        if isinstance(spec, str):
            parse_model_spec(spec).build(scale)
        else:
            model_spec_from_value('n', spec, 'models:').build(scale)
    except ValueError as error:
        return str(error)
    return None


MODEL_CASES = {
    'item without separator': ('n=type:SAN,num_feat', "--model n 'num_feat': expected key:value, e.g. img_range:1."),
    'unregistered type': (
        'n=type:NoSuchNet',
        "--model n type: unknown network type 'NoSuchNet' (registered: {registered})",
    ),
    'unknown key': (
        'n=type:SAN,num_feats:3',
        "--model n num_feats: SAN has no option 'num_feats' (options: {san_options})",
    ),
    'bad YAML': (
        'n=type:SAN,num_feat:[1,',
        "--model n 'num_feat:[1,': the value is not valid YAML (expected the node content, but found '<stream end>' "
        'at line 1, column 4)',
    ),
    'missing required': (
        'n=type:RCAN',
        '--model n: missing option(s) num_in_ch, num_out_ch (RCAN has no default for them)',
    ),
    'given twice': ('n=type:SAN,num_feat:16,num_feat:8', '--model n num_feat: given twice'),
    'list value': ('n=type:SAN,num_feat:16,rgb_mean:[0.5,0.5,0.5]', None),
    'block with unknown key': (
        {'type': 'SAN', 'num_feats': 3},
        "models: n.num_feats: SAN has no option 'num_feats' (options: {san_options})",
    ),
    'block without type': ({'num_feat': 4}, 'models: n.type: missing (the arch name, e.g. SAN)'),
    'block with unregistered type': (
        {'type': 'NoSuchNet'},
        "models: n.type: unknown network type 'NoSuchNet' (registered: {registered})",
    ),
}


@pytest.mark.parametrize('case', MODEL_CASES)
def test_benchmark_model_messages(case):
    spec, expected = MODEL_CASES[case]
    assert model_message(spec) == expected_message(expected)


def expected_message(expected, **values):
    """``expected`` with its ``{placeholder}`` fields (only those: messages may hold braces) filled in."""
    if expected is None:
        return None
    for name, value in {**PLACEHOLDERS, **values}.items():
        expected = expected.replace(f'{{{name}}}', str(value))
    return expected
