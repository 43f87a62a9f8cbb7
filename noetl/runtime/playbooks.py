"""Parsed playbooks by text, for the processes that run executions of stored playbook texts (the
server, direct and API workers).

A playbook's text is parsed and checked once per process (executions of one playbook share it).
A big text is parsed on a thread: YAML parsing and the checks of a multi-megabyte playbook take
seconds, and on the event loop every other client, heartbeat and report would wait for them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict

from noetl.dsl.model import Playbook
from noetl.dsl.parse import load_playbook_text

MAX_CACHED_PLAYBOOKS = 256
# Texts up to this size parse in well under a millisecond or two: a thread hand-off would cost more.
PARSE_ON_LOOP_BYTES = 64 * 1024


class ParsedPlaybooks:
    """Parsed playbooks, least recently used dropped first."""

    def __init__(self, limit: int = MAX_CACHED_PLAYBOOKS) -> None:
        self._limit = limit
        self._playbooks: OrderedDict[str, Playbook] = OrderedDict()

    async def parsed(self, text: str, source: str) -> Playbook:
        """The playbook of ``text``; PlaybookError (one line) when it does not load."""
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        playbook = self._playbooks.get(key)
        if playbook is not None:
            self._playbooks.move_to_end(key)
            return playbook
        if len(text) > PARSE_ON_LOOP_BYTES:
            playbook = await asyncio.to_thread(_load, text, source)
        else:
            playbook = _load(text, source)
        self._playbooks[key] = playbook
        if len(self._playbooks) > self._limit:
            self._playbooks.popitem(last=False)
        return playbook


def _load(text: str, source: str) -> Playbook:
    return load_playbook_text(text, source).require()
