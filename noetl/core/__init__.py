"""Older import paths of NoETL's integration guides (seed 002), kept as thin aliases of the real
modules: ``noetl.core.dsl.v2.parser``, ``noetl.core.dsl.v2.migration``."""
