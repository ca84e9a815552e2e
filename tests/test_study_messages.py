"""The messages of bad study files, each compared in full with the one the study runner gave before its refactor
(issue 25: every message keeps naming the file and the key), except those changed on purpose: a study that is not a
mapping (its message had an empty key, ``study: : ...``); ``out``, ``data_root`` or ``train.data`` that is not a
path (a TypeError that named neither the file nor the key); and three ``networks`` entries that the one network-option
checker (``san_plugin/utils/network_options.py``) names more precisely (the missing key, the value given). The keys
added since (``gan``, ``test.metrics``, ``min_effect``) are in the lists of known keys and have cases of their own. A
case is a valid tiny study with edits: (path, value), the path () replacing the whole mapping and the value ...
removing the key; ``{tmp}`` in a value or a message is the test's folder, where ``empty`` is an empty folder and
``set/HR/x2``, ``set/LR/x2`` hold one image each."""

import copy
from pathlib import Path

import pytest
import yaml
from basicsr.utils.registry import ARCH_REGISTRY
from helpers.study import changed, study_options, write_images

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.study.options import StudyError, override_max_parallel, parse_study, read_study

# The cases (edits, error type, message) are data: tests/data/study_messages.yml.
CASES = [
    (name, [(tuple(edit['at']), ... if edit.get('remove') else edit['value']) for edit in case['edits']],
     case['error'], case['message'])
    for name, case in yaml.safe_load((Path(__file__).parent / 'data' / 'study_messages.yml').read_text()).items()
]  # fmt: skip


def filled(value, tmp):
    """``value`` with ``{tmp}`` in its strings replaced by the test's folder."""
    if isinstance(value, str):
        return value.replace('{tmp}', str(tmp))
    if isinstance(value, dict):
        return {key: filled(item, tmp) for key, item in value.items()}
    return copy.deepcopy(value)


def edited(study, edits, tmp):
    for path, value in edits:
        study = (
            filled(value, tmp) if path == () else changed(study, path, value if value is ... else filled(value, tmp))
        )
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
