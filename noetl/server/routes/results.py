"""A step's full result, with references resolved (SPEC section 19)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from noetl.errors import InputError
from noetl.results.codec import dumps
from noetl.results.read import step_result_chunks
from noetl.results.refs import LOOP_PREFIX
from noetl.results.storage import DB_PREFIX, loop_json, prefetched, storage_for
from noetl.server.auth import requires
from noetl.server.guard import ParsedBodyRoute
from noetl.server.state import State

router = APIRouter(tags=["executions"], route_class=ParsedBodyRoute)
MAX_SLICE = 10_000  # items of a loop's results one request may ask for
MAX_PIECE = 64 * 1024 * 1024  # bytes of a stored result one request may ask for


@router.get("/executions/{execution_id}/results/{step}",
            summary="A step's result in full (`?index=` for one iteration of a loop)")
@requires("read")
async def get_step_result(execution_id: str, step: str, state: State, index: int | None = None) -> Response:
    # A result stored by reference is sent as stored, without decoding it first; a loop's results
    # by reference a page at a time.
    chunks = await step_result_chunks(state.store, execution_id, step, index=index)
    return StreamingResponse(chunks, media_type="application/json")


@router.get("/results", summary="A result stored by reference in the result table, by its uri "
            "(`noetl://result/...`; with `offset` and `length` only those bytes), or a loop's results by "
            "reference (`noetl://loop/...`, with `start` and `stop` for a slice), for workers without database access")
@requires("read")
async def get_result_by_uri(uri: str, state: State, start: int | None = None, stop: int | None = None,
                            offset: int | None = None, length: int | None = None) -> Response:
    # Only the result table and loops: a `file://` uri names a file on whichever machine stored it,
    # and the server must never read its own files for a caller.
    storage = storage_for(state.store)
    if uri.startswith(LOOP_PREFIX):
        if start is None and stop is None:
            return StreamingResponse(loop_json(state.store, uri), media_type="application/json")
        low, high = start or 0, stop if stop is not None else (start or 0) + 1
        if low < 0 or high < low or high - low > MAX_SLICE:
            raise InputError(f"start/stop: a slice of at most {MAX_SLICE} items with 0 <= start <= stop")
        return Response(content=dumps(await asyncio.to_thread(storage.read_items, uri, low, high)),
                        media_type="application/json")
    if not uri.startswith(DB_PREFIX):
        raise InputError(f"only {DB_PREFIX}... results can be read through the server, not {uri.split(':', 1)[0]}:")
    if offset is not None or length is not None:  # a piece its layout names (results/layout.py)
        low, size = offset or 0, length if length is not None else MAX_PIECE
        if low < 0 or not 0 <= size <= MAX_PIECE:
            raise InputError(f"offset/length: at most {MAX_PIECE} bytes with 0 <= offset")
        return Response(content=await asyncio.to_thread(storage.read_piece, uri, low, low + size),
                        media_type="application/octet-stream")
    return StreamingResponse(await prefetched(storage.stream_bytes(uri)), media_type="application/json")
