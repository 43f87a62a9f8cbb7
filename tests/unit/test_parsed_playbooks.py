"""Parsed playbooks of the server and workers: parsed once per text, big texts off the event loop."""

from __future__ import annotations

import asyncio

import pytest

from noetl.errors import PlaybookError
from noetl.runtime.playbooks import PARSE_ON_LOOP_BYTES, ParsedPlaybooks


def chain(steps: int) -> str:
    lines = ["apiVersion: noetl.io/v2", "kind: Playbook", "metadata: {name: big}", "workflow:"]
    for index in range(steps):
        lines.append(f"  - step: s{index}\n    tool: {{kind: noop}}")
        if index + 1 < steps:
            lines.append(f"    next: {{arcs: [{{step: s{index + 1}}}]}}")
    return "\n".join(lines) + "\n"


async def parse_while_ticking(cache: ParsedPlaybooks, text: str) -> int:
    """How many times another task of the event loop ran while ``text`` was parsed."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await cache.parsed(text, "<test>")
        return ticks
    finally:
        stop.set()
        await task


def test_a_big_playbook_is_parsed_while_the_event_loop_serves_others() -> None:
    big = chain(3000)
    assert len(big) > PARSE_ON_LOOP_BYTES
    # On the loop, the other task could not run at all until the parse returned (0 ticks).
    assert asyncio.run(parse_while_ticking(ParsedPlaybooks(), big)) > 0


def test_a_playbook_is_parsed_once_per_text_and_the_oldest_is_dropped() -> None:
    async def scenario() -> None:
        cache = ParsedPlaybooks(limit=2)
        first = await cache.parsed(chain(2), "<a>")
        assert await cache.parsed(chain(2), "<a again>") is first
        await cache.parsed(chain(3), "<b>")
        await cache.parsed(chain(4), "<c>")
        assert await cache.parsed(chain(2), "<a>") is not first  # dropped, parsed again

    asyncio.run(scenario())


def test_a_playbook_that_does_not_load_is_one_playbook_error() -> None:
    with pytest.raises(PlaybookError, match="workflow"):
        asyncio.run(ParsedPlaybooks().parsed("apiVersion: noetl.io/v2\nkind: Playbook\n", "<bad>"))
