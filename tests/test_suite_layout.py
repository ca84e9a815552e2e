"""The test suite's own layout: what several test modules share lives in ``tests/helpers/`` or ``conftest.py``."""

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def imported_modules(path):
    """Every module name that ``path`` imports, absolute or relative, as written.

    Args:
        path (Path): A Python file.

    Returns:
        set[str]: Each module and each name imported from one, e.g. ``{'torch', 'helpers', 'helpers.images',
        'tests.test_compare'}`` for ``import torch``, ``from helpers import images``, ``from tests import
        test_compare``; a relative ``from . import test_x`` gives ``test_x``.
    """
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = f'{node.module}.' if node.module else ''
            names.update(f'{prefix}{alias.name}' for alias in node.names)
            if node.module:
                names.add(node.module)
    return names


def imports_a_test_module(name, test_modules):
    """Whether the imported ``name`` (as :func:`imported_modules` gives it) is one of ``test_modules``."""
    return any(part in test_modules for part in name.split('.'))


@pytest.mark.parametrize(
    'source, caught',
    [
        ('import test_compare', True),
        ('from test_compare import tiny_study', True),
        ('from tests import test_compare', True),
        ('from tests.test_compare import tiny_study', True),
        ('from . import test_compare', True),
        ('from helpers.study import record', False),
        ('import conftest', False),
    ],
)
def test_every_way_of_importing_a_test_module_is_seen(tmp_path, source, caught):
    path = tmp_path / 'module.py'
    path.write_text(source + '\n')
    assert any(imports_a_test_module(name, {'test_compare'}) for name in imported_modules(path)) is caught


def test_no_test_module_imports_another():
    test_modules = {path.stem for path in TESTS.glob('test_*.py')}
    offenders = {
        f'{path.relative_to(TESTS)} imports {name}'
        for path in TESTS.rglob('*.py')
        for name in imported_modules(path)
        if imports_a_test_module(name, test_modules)
    }
    assert not offenders, sorted(offenders)
