"""Checkpoint conversion between the authors' formats and san_plugin's networks."""

from san_plugin.convert.original import convert_original_state, from_original  # noqa: F401
