"""Reading a step's result back whole: `noetl result ID STEP` and `GET /api/executions/{id}/results/{step}`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.errors import InputError, NotFoundError
from noetl.results.codec import dumps
from noetl.results.loops import fetch_item
from noetl.results.refs import REF_KEY, is_loop_ref, is_ref
from noetl.results.storage import loop_json, prefetched, storage_for
from noetl.store.base import Store

PAGE = 1000
# A step's result is on its step.exit (a loop's aggregate also on loop.done): a 100,000-item loop's
# call reports are never read to answer (PostgreSQL filters by type in the query).
RESULT_EVENTS = (ev.STEP_EXIT, ev.LOOP_DONE)


async def step_result(store: Store, execution_id: str, step: str, *, index: int | None = None) -> Any:
    """The latest result of ``step`` (a loop's aggregate, or with ``index`` one iteration's result),
    with a reference resolved to the full result."""
    result = await _located(store, execution_id, step, index=index)
    storage = storage_for(store)
    if loop_results_ref(result) is not None:
        return {**result, "results": await storage.fetch(result["results"][REF_KEY]["uri"])}
    return await storage.fetch(result[REF_KEY]["uri"]) if is_ref(result) else result


async def step_result_json(store: Store, execution_id: str, step: str, *, index: int | None = None) -> bytes:
    """:func:`step_result` as JSON bytes (see :func:`step_result_chunks`)."""
    return b"".join([chunk async for chunk in await step_result_chunks(store, execution_id, step, index=index)])


async def step_result_chunks(store: Store, execution_id: str, step: str, *,
                             index: int | None = None) -> AsyncIterator[bytes]:
    """:func:`step_result` as JSON text, in chunks: found (or refused) before the first chunk, so a
    missing step is an error, not a broken stream. A result stored by reference is passed on as
    stored, never decoded (from PostgreSQL a slice at a time, never whole in memory); a loop's
    results by reference are written a page at a time; with ``index`` only that iteration's result
    is read."""
    result = await _located(store, execution_id, step, index=index)
    if loop_results_ref(result) is None and is_ref(result):
        # Read before the first chunk too: a pruned result, or a reference naming what is not a
        # result, is an error answer, not a stream broken after its headers.
        return await prefetched(storage_for(store).stream_bytes(result[REF_KEY]["uri"]))
    return _chunks(store, result)


async def _chunks(store: Store, result: Any) -> AsyncIterator[bytes]:
    loop_uri = loop_results_ref(result)
    if loop_uri is not None:
        rest = dumps({k: v for k, v in result.items() if k != "results"})
        yield b'{"results":'
        async for chunk in loop_json(store, loop_uri):
            yield chunk
        yield (b"," + rest[1:]) if rest != b"{}" else b"}"
    else:
        yield dumps(result)


def loop_results_ref(result: Any) -> str | None:
    """The uri of a loop aggregate's results by reference; None for any other result."""
    inner = result.get("results") if isinstance(result, dict) and not is_ref(result) else None
    return str(inner[REF_KEY]["uri"]) if inner is not None and is_loop_ref(inner) else None


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
        from noetl.runtime.execution_steps import check_execution_step

        # A step the playbook does not have: say so, with the steps it has.
        await check_execution_step(store, execution_id, step, f"execution {execution_id} has no result for step")
        raise NotFoundError(f"execution {execution_id} has no result for step {step!r} (not run, or still running)",
                            execution_id=execution_id)
    if index is None:
        return result
    loop_uri = loop_results_ref(result)
    if loop_uri is not None:
        count = int(result["results"][REF_KEY].get("count") or 0)
        _check_index(step, index, count)
        return await fetch_item(store, loop_uri, index, count)
    if is_ref(result):
        result = await storage_for(store).fetch(result[REF_KEY]["uri"])
    items = result.get("results") if isinstance(result, dict) else None
    if not isinstance(items, list):
        raise InputError(f"step {step!r} is not a loop step: --index needs a loop's results")
    _check_index(step, index, len(items))
    return items[index]


def _check_index(step: str, index: int, count: int) -> None:
    if not -count <= index < count:
        raise InputError(f"step {step!r} has {count} results: index {index} is out of range")


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
