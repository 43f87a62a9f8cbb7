"""Runtimes: the shells around the pure engine (local in-process; distributed server + workers)."""
