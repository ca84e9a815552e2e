"""YAML errors on one line, for messages that name the file or flag first."""

import yaml


def describe_yaml_error(error):
    """``error``'s problem and where it is (``line L, column C``), on one line.

    PyYAML's own message spans several lines (context, problem, a copy of the line with a caret).

    Args:
        error (yaml.YAMLError): The error.

    Returns:
        str: E.g. ``expected ',' or ']', but got '<stream end>' at line 1, column 4``.
    """
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
        return f'{error.problem}{where}'
    return ' '.join(str(error).split())
