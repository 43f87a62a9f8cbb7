"""Older import paths of the server's routes (seed 002): ``noetl.server.api.events_v2``."""
