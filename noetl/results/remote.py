"""Reading results stored by reference through the server, for workers without database access
(``noetl worker start --server-url URL``): ``GET /api/results?uri=`` returns the stored JSON (with
``start`` and ``stop``, that slice of a loop's results by reference; with ``offset`` and ``length``,
those bytes of a stored result)."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from noetl.errors import NotFoundError, StoreError, ToolError
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

    def read_piece(self, uri: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a stored result: only those travel."""
        return self._fetch(uri, {"uri": uri, "offset": start, "length": max(end - start, 0)})

    def _get(self, uri: str, params: dict[str, Any]) -> Any:
        return loads(self._fetch(uri, params))

    def _fetch(self, uri: str, params: dict[str, Any]) -> bytes:
        try:
            with self._lock:
                response = self._client.get("/api/results", params=params)
        except httpx.HTTPError as exc:
            raise StoreError(f"result {uri}: server unreachable ({type(exc).__name__})") from None
        if response.status_code == 404:
            raise NotFoundError(f"result {uri} not found (pruned?)")
        if response.status_code != 200:
            raise StoreError(f"result {uri}: the server answered {response.status_code}")
        return response.content

    def close(self) -> None:
        self._client.close()


class ServerResultUploader:
    """Where a worker without database credentials stores big results: the server's result table,
    through ``POST /api/workers/results`` (the worker's token, like its other calls; the body at most
    the server's ``NOETL_MAX_BODY_BYTES``). The runner shapes results through it exactly as through
    :class:`noetl.results.storage.ResultStorage`, so the report carries a reference, not the data."""

    def __init__(self, client: httpx.AsyncClient, *, execution_id: str, command_id: str) -> None:
        self._client = client
        self._execution_id = execution_id
        self._command_id = command_id

    async def put(self, data: bytes, *, sha256: str, kind: str = "auto", execution_id: str | None = None,
                  step: str | None = None, name: str | None = None, ttl_seconds: float | None = None,
                  preview: str = "", now: Any = None) -> dict[str, Any]:
        """Every kind goes to the server's table: the disk, memory or bucket of this worker is not
        where the server and the other workers read."""
        params: dict[str, Any] = {"execution_id": execution_id or self._execution_id,
                                  "command_id": self._command_id, "sha256": sha256}
        if ttl_seconds:
            params["ttl_seconds"] = ttl_seconds
        try:
            response = await self._client.post("/api/workers/results", params=params, content=data,
                                               headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise StoreError(f"storing a result of {len(data)} bytes: server unreachable ({type(exc).__name__})") \
                from None
        if response.status_code == 413:
            raise ToolError(f"the result is {len(data)} bytes: larger than the server accepts (NOETL_MAX_BODY_BYTES)",
                            kind="result_too_large")
        if response.status_code != 200:
            raise StoreError(f"storing a result of {len(data)} bytes: the server answered {response.status_code}")
        ref: dict[str, Any] = response.json()
        return ref
