"""Alias package (seed 002's ``noetl.core.dsl.v2``): the DSL lives in :mod:`noetl.dsl`."""
