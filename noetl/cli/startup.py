"""Imports whose objects live as long as the `noetl` process, kept out of the collector's way.

Importing asyncio, click and the modules every command uses creates about 26,000 objects the
garbage collector tracks (classes, functions, their dicts and the like), and they live until the
process exits. While they are made, the collector runs after about every 700 new ones and scans
them (the older ones every tenth time), finding nothing to free: about 11 M instructions of a short
`noetl run`, 2.5 % of it.
:func:`long_lived_imports` pauses the collector around such imports and then moves every object
made so far to the permanent generation (``gc.freeze``), which later collections skip. Garbage made
afterwards, by the run and the playbook's code, is collected as always.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived_imports() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
