"""Alias package: the DSL lives in :mod:`noetl.dsl`."""
