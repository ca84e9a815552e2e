"""Comparative studies: several networks trained side by side under one protocol and seeds, then one report."""
