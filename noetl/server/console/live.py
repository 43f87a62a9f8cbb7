"""The console's live streams (server-sent events), counted.

Each open live page polls the store every half second for as long as it stays open, and costs its
client nothing but an idle connection: a client that opened thousands of them would have the store answer
thousands of queries a second, ahead of the decisions of every execution. Past ``MAX_LIVE_STREAMS``
a new stream asks its browser to come back later (the SSE ``retry`` field, which every
``EventSource`` obeys) and ends at once; the page stays as it was loaded and turns live once a
stream has closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

MAX_LIVE_STREAMS = 100  # per console (server or `noetl ui`)
BUSY_RETRY_MS = 30_000  # when a browser turned away tries again


class LiveStreams:
    def __init__(self, limit: int = MAX_LIVE_STREAMS) -> None:
        self.limit = limit
        self.open = 0

    def response(self, updates: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(self._counted(updates), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _counted(self, updates: AsyncIterator[str]) -> AsyncIterator[str]:
        # Checked and counted as the stream starts, with no await between: streams that start
        # together are counted one by one.
        if self.open >= self.limit:
            yield f"retry: {BUSY_RETRY_MS}\n\n"
            return
        self.open += 1
        try:
            async for message in updates:
                yield message
        finally:
            self.open -= 1
