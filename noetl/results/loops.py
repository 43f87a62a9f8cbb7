"""A loop's results by reference, read back from its iterations' own reports (SPEC section 19).

A loop with more iterations than its step keeps inline ends with ``{results: {_ref: {uri:
noetl://loop/<execution>/<entry>/<step>, count, preview}}, stats}`` (see noetl.engine.aggregate):
nothing is stored twice, the ``call.done`` (or ``call.error``) of iteration ``i`` is its result
(its error). The stores find them by (execution, step, loop_index) through an index, so one item
costs one indexed read and walking them costs one read per page, whatever the size of the loop.
A cursor loop's uri ends in ``?frames``: its reports are frames, each holding the results of the
rows it claimed, and positions count across frames in frame order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from noetl.engine import events as ev
from noetl.errors import NotFoundError, StoreError
from noetl.results.refs import deciding_reports, parse_loop_uri
from noetl.store.common import NO_BOUND, LoopReport

PAGE = 2000  # iterations (or frames) read at once
FRAMES = "?frames"

SyncReports = Callable[[str, str, int, int, int], list[LoopReport]]


def _target(uri: str) -> tuple[str, int, str, bool]:
    frames = uri.endswith(FRAMES)
    try:
        execution_id, entry, step = parse_loop_uri(uri[: -len(FRAMES)] if frames else uri)
    except ValueError:
        raise NotFoundError(f"unknown loop results reference {uri!r}") from None
    return execution_id, entry, step, frames


def _value(report: LoopReport) -> Any:
    _, event_type, result, error = report
    return result if event_type == ev.CALL_DONE else error


def _frame_items(report: LoopReport) -> list[Any]:
    """The iteration results of one frame report (a failed frame counts as one failed iteration)."""
    _, event_type, result, error = report
    if event_type != ev.CALL_DONE:
        return [error]
    return list(result.get("results") or []) if isinstance(result, dict) and result.get("rows") else []


def _checked(reports: list[LoopReport], start: int, stop: int, uri: str) -> list[Any]:
    values = []
    for position, report in enumerate(reports, start):
        if report[0] != position:
            break
        values.append(_value(report))
    expected = stop - start if stop != NO_BOUND else len(reports)
    if len(values) != expected:
        missing = start + len(values)
        raise NotFoundError(f"loop results {uri}: iteration {missing} has no recorded report "
                            "(pruned, or read while the loop's last report is being decided)")
    return values


class _FrameWalk:
    """Positions across a cursor loop's frames, for one read of [start, stop)."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop, self.position = start, stop, 0
        self.out: list[Any] = []

    def take(self, reports: list[LoopReport]) -> bool:
        """Account for one page of frames; True once ``stop`` is reached."""
        for report in reports:
            items = _frame_items(report)
            low, high = max(self.start - self.position, 0), min(self.stop - self.position, len(items))
            if low < high:
                self.out.extend(items[low:high])
            self.position += len(items)
            if self.position >= self.stop:
                return True
        return False


def _with_deciding(reports: SyncReports) -> SyncReports:
    """``reports`` and the reports being decided in this process (newer than any stored one)."""

    def read(execution_id: str, step: str, entry: int, low: int, high: int) -> list[LoopReport]:
        stored = reports(execution_id, step, entry, low, high)
        deciding = deciding_reports(execution_id, step, entry)
        if not deciding:
            return stored
        merged = {report[0]: report for report in stored}
        merged.update({i: (i, *report) for i, report in deciding.items() if low <= i < high})
        return [merged[i] for i in sorted(merged)]

    return read


def read_items(reports: SyncReports, uri: str, start: int, stop: int) -> list[Any]:
    """Items [start, stop) of the loop results at ``uri`` (synchronous: templates render so)."""
    reports = _with_deciding(reports)
    execution_id, entry, step, frames = _target(uri)
    if not frames:
        out: list[Any] = []
        for low in range(start, stop, PAGE) if stop != NO_BOUND else _unbounded(start):
            high = min(low + PAGE, stop)
            page = _checked(reports(execution_id, step, entry, low, high), low, high if stop != NO_BOUND else NO_BOUND,
                            uri)
            out.extend(page)
            if stop == NO_BOUND and len(page) < PAGE:
                break
        return out
    walk = _FrameWalk(start, stop)
    for low in _unbounded(0):
        page = reports(execution_id, step, entry, low, low + PAGE)
        if walk.take(page) or len(page) < PAGE:
            break
    return walk.out


async def fetch_pages(store: Any, uri: str) -> AsyncIterator[list[Any]]:
    """Every item of the loop results at ``uri``, a page at a time (for the CLI and the API)."""
    get = getattr(store, "get_loop_reports", None)
    if get is None:
        raise StoreError(f"result {uri}: this store cannot read a loop's results")
    execution_id, entry, step, frames = _target(uri)
    for low in _unbounded(0):
        reports = await get(execution_id, step, entry, low, low + PAGE)
        if frames:
            items = [item for report in reports for item in _frame_items(report)]
        else:
            items = _checked(reports, low, NO_BOUND, uri)
        if items:
            yield items
        if len(reports) < PAGE:
            return


async def fetch_item(store: Any, uri: str, index: int, count: int) -> Any:
    """Item ``index`` (negative: from the end) of the loop results at ``uri``, ``count`` long."""
    position = index + count if index < 0 else index
    _, _, _, frames = _target(uri)
    if not frames:
        execution_id, entry, step, _ = _target(uri)
        return _checked(await store.get_loop_reports(execution_id, step, entry, position, position + 1),
                        position, position + 1, uri)[0]
    seen = 0
    async for page in fetch_pages(store, uri):
        if position < seen + len(page):
            return page[position - seen]
        seen += len(page)
    raise NotFoundError(f"loop results {uri}: iteration {index} has no recorded report")


def _unbounded(start: int) -> Iterator[int]:
    low = start
    while True:
        yield low
        low += PAGE
