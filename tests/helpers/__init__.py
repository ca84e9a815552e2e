"""Test-only helpers: tiny data sets, option files and subprocess runs for the workflow tests."""
