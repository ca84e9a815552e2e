"""The test suite's own layout: what several test modules share lives in ``tests/helpers/`` or ``conftest.py``."""

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def imported_modules(path):
    """Every module name that ``path`` imports, absolute or relative, as written.

    Args:
        path (Path): A Python file.

    Returns:
        set[str]: E.g. ``{'torch', 'helpers.images', 'test_compare'}``.
    """
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_test_module_imports_another():
    test_modules = {path.stem for path in TESTS.glob('test_*.py')}
    offenders = {
        f'{path.relative_to(TESTS)} imports {name}'
        for path in TESTS.rglob('*.py')
        for name in imported_modules(path)
        if name.split('.')[-1] in test_modules or name.split('.')[0] in test_modules
    }
    assert not offenders, sorted(offenders)
