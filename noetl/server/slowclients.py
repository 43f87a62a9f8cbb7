"""A deadline for a request's head: clients that send their headers a byte at a time (slowloris).

uvicorn bounds the size of a request's head (h11: 16 KiB, then 400) and the idle time between two
requests (keep-alive, 5 s), but not the time a client takes to send a head it has begun: a client
that sends one header line a second kept its connection, and an open file, for as long as it
liked, and a few thousand of them would take every file the server may open. The server's protocol
here closes a connection on which no request began within ``NOETL_REQUEST_TIMEOUT_SECONDS`` of its
opening or of its last response. The body has its deadline in the request guard (408).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers."""

    head_seconds: float = 10.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(self.head_seconds, self._head_overdue, self.cycle)

    def _head_overdue(self, cycle: Any) -> None:
        """Close the connection when no request began since the deadline was set (a request that
        began, and may still be running, has a new cycle)."""
        finished = cycle is None or cycle.response_complete
        if self.cycle is cycle and finished and not self.transport.is_closing():
            self.transport.close()


def protocol_with_deadline(seconds: float) -> type[HeadDeadlineProtocol]:
    """The protocol class for ``uvicorn.run(http=...)``, with a head deadline of ``seconds``."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_seconds": float(seconds)})
