"""The console's live streams are counted: past the limit a new one tells its browser to come back
later instead of polling the store for as long as it stays open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from noetl.server.console.live import BUSY_RETRY_MS, LiveStreams


async def forever(name: str) -> AsyncIterator[str]:
    """A live page's updates: one per poll, for as long as the page stays open."""
    while True:
        yield f"event: update\ndata: {name}\n\n"
        await asyncio.sleep(0)


def test_past_the_limit_a_live_stream_asks_its_browser_to_retry_later() -> None:
    async def scenario() -> None:
        live = LiveStreams(limit=2)
        first: Any = live.response(forever("first")).body_iterator
        second: Any = live.response(forever("second")).body_iterator
        assert await anext(first) == "event: update\ndata: first\n\n"
        assert await anext(second) == "event: update\ndata: second\n\n"
        assert live.open == 2
        turned_away: Any = live.response(forever("third")).body_iterator
        assert [message async for message in turned_away] == [f"retry: {BUSY_RETRY_MS}\n\n"]
        await first.aclose()  # its page was closed
        assert live.open == 1
        fourth: Any = live.response(forever("fourth")).body_iterator
        assert await anext(fourth) == "event: update\ndata: fourth\n\n"
        assert live.open == 2
        await second.aclose()
        await fourth.aclose()
        assert live.open == 0

    asyncio.run(scenario())
