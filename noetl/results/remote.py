"""Reading results stored by reference through the server, for workers without database access
(``noetl worker start --server-url URL``): ``GET /api/results?uri=`` returns the stored JSON (with
``start`` and ``stop``, that slice of a loop's results by reference)."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from noetl.errors import NotFoundError, StoreError
from noetl.results.codec import loads


class ServerResultReader:
    """The loader templates resolve references through on a remote worker (synchronous, like every
    loader: templates render synchronously). One keep-alive connection, one request per reference."""

    def __init__(self, server_url: str, token: str | None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=server_url.rstrip("/"), headers=headers, timeout=timeout)
        self._lock = threading.Lock()

    def read(self, uri: str, fresh: bool = False) -> Any:
        return self._get(uri, {"uri": uri})

    def read_items(self, uri: str, start: int, stop: int) -> list[Any]:
        """Items [start, stop) of a loop's results by reference: only those travel."""
        items: list[Any] = self._get(uri, {"uri": uri, "start": start, "stop": stop})
        return items

    def _get(self, uri: str, params: dict[str, Any]) -> Any:
        try:
            with self._lock:
                response = self._client.get("/api/results", params=params)
        except httpx.HTTPError as exc:
            raise StoreError(f"result {uri}: server unreachable ({type(exc).__name__})") from None
        if response.status_code == 404:
            raise NotFoundError(f"result {uri} not found (pruned?)")
        if response.status_code != 200:
            raise StoreError(f"result {uri}: the server answered {response.status_code}")
        return loads(response.content)

    def close(self) -> None:
        self._client.close()
