"""Reading a step's result back whole: `noetl result ID STEP` and `GET /api/executions/{id}/results/{step}`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.errors import InputError, NotFoundError
from noetl.results.codec import dumps
from noetl.results.refs import REF_KEY, is_ref
from noetl.results.storage import storage_for
from noetl.store.base import Store

PAGE = 1000
# A step's result is on its step.exit (a loop's aggregate also on loop.done): a 100,000-item loop's
# call reports are never read to answer (PostgreSQL filters by type in the query).
RESULT_EVENTS = (ev.STEP_EXIT, ev.LOOP_DONE)


async def step_result(store: Store, execution_id: str, step: str, *, index: int | None = None) -> Any:
    """The latest result of ``step`` (a loop's aggregate, or with ``index`` one iteration's result),
    with a reference resolved to the full result."""
    result = await _located(store, execution_id, step, index=index)
    return await storage_for(store).fetch(result[REF_KEY]["uri"]) if is_ref(result) else result


async def step_result_json(store: Store, execution_id: str, step: str, *, index: int | None = None) -> bytes:
    """:func:`step_result` as JSON bytes. A result stored by reference is passed on as stored, never
    decoded: it costs its size in memory once, not the several times of its Python objects, and with
    ``index`` only that iteration's result is read."""
    result = await _located(store, execution_id, step, index=index)
    if is_ref(result):
        return await storage_for(store).fetch_bytes(result[REF_KEY]["uri"])
    return dumps(result)


async def _located(store: Store, execution_id: str, step: str, *, index: int | None) -> Any:
    """The step's recorded result (perhaps a reference); with ``index``, that iteration's entry."""
    if await store.get_execution(execution_id) is None:
        raise NotFoundError(f"execution {execution_id} not found", execution_id=execution_id)
    found = False
    result: Any = None
    async for event in _result_events(store, execution_id):
        if event.node_name == step:
            found, result = True, event.result
    if not found:
        raise NotFoundError(f"execution {execution_id} has no result for step {step!r} (not run, or still running)",
                            execution_id=execution_id)
    if index is None:
        return result
    if is_ref(result):
        result = await storage_for(store).fetch(result[REF_KEY]["uri"])
    items = result.get("results") if isinstance(result, dict) else None
    if not isinstance(items, list):
        raise InputError(f"step {step!r} is not a loop step: --index needs a loop's results")
    if not -len(items) <= index < len(items):
        raise InputError(f"step {step!r} has {len(items)} results: index {index} is out of range")
    return items[index]


async def _result_events(store: Store, execution_id: str) -> AsyncIterator[Event]:
    iter_events = getattr(store, "iter_events", None)
    if iter_events is not None:  # PostgreSQL reads only the event types asked for, a page at a time
        async for page in iter_events(execution_id, types=RESULT_EVENTS):
            for event in page:
                yield event
        return
    after = 0
    while True:
        page = await store.list_events(execution_id, after_id=after, limit=PAGE)
        for event in page:
            if event.event_type in RESULT_EVENTS:
                yield event
        if len(page) < PAGE:
            return
        after = page[-1].event_id
