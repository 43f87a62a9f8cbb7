"""Cursor loops in the fold: what frames reported, and the aggregate.

A cursor loop has no list of elements up front. Each **frame** is one command: a worker runs the
loop's claim (SQL that claims rows with ``FOR UPDATE SKIP LOCKED ... RETURNING``), then the step's
tool on what it claimed, and reports the frame as one ``call.done`` whose result is
``{frame, rows, items, results, failed}``. The decider keeps up to ``max_in_flight`` frames
issued; the first frame whose claim returned no rows (or that failed) drains the cursor: no new
frame is issued, and ``loop.done`` follows once every issued frame has reported. The fold only
records what the reports say (see ``noetl.engine.decide.issued_count`` for the window).

Nothing here does I/O: the claim runs on a worker and its outcome arrives as an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from noetl.engine import events as ev
from noetl.engine.aggregate import AggregateByRef, looks_like_error
from noetl.engine.events import Event


@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class CursorRun:
    """The state of one entry of a cursor loop step."""

    max_in_flight: int
    reported: set[int] = field(default_factory=set)
    drained: bool = False
    # Frames that reported while the cursor was still open: each of them let the next frame out.
    open_reports: int = 0
    # Past this many iterations the aggregate is by reference (None: always inline, as in logs from
    # before step.enter recorded it): the frames' results are then read back from their reports.
    inline_max_items: int | None = None
    # frame number -> the results of its iterations, in claim order (a failed one holds its error)
    frame_results: dict[int, list[Any]] = field(default_factory=dict)
    by_ref: AggregateByRef | None = None
    success: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.success + self.failed

    def keep(self, frame: int, results: list[Any], failed: set[int]) -> None:
        """A frame's results: held until the loop passes ``inline_max_items``, then only a preview."""
        self.frame_results[frame] = results
        if self.by_ref is None and self.inline_max_items is not None and self.total > self.inline_max_items:
            self.by_ref = AggregateByRef(frames=True)
            kept, self.frame_results = self.frame_results, {}
            position = 0
            for number in sorted(kept):
                for result in kept[number]:
                    self.by_ref.record(position, result, ok=not looks_like_error(result))
                    position += 1
        elif self.by_ref is not None:
            self.frame_results.pop(frame)
            if frame == 0:
                for position, result in enumerate(results):
                    self.by_ref.record(position, result, ok=position not in failed)
            else:  # where its items fall is known when it is read back; only its failure counts here
                errors = [results[i] for i in sorted(failed) if i < len(results)]
                if errors and self.by_ref.first_error is None:
                    self.by_ref.first_error = errors[0]

    def aggregate(self, *, execution_id: str, step: str, entry: int) -> dict[str, Any]:
        stats = {"total": self.total, "success": self.success, "failed": self.failed}
        if self.by_ref is not None:
            return {"results": self.by_ref.ref(execution_id, step, entry, self.total), "stats": stats}
        results = [r for frame in sorted(self.frame_results) for r in self.frame_results[frame]]
        return {"results": results, "stats": stats}

    def first_error(self) -> Any:
        if self.by_ref is not None:
            return self.by_ref.first_error
        return next((r for frame in sorted(self.frame_results) for r in self.frame_results[frame]
                     if looks_like_error(r)), None)


def fold_frame_report(run: CursorRun, event: Event) -> None:
    """Account for one frame's report (a duplicate one is ignored)."""
    frame = event.meta.get("loop_index")
    if not isinstance(frame, int) or frame < 0 or frame in run.reported:
        return
    run.reported.add(frame)
    report = event.result if isinstance(event.result, dict) else {}
    if event.event_type != ev.CALL_DONE:
        # The claim itself failed (or the frame's worker gave up): claiming again would most likely
        # fail the same way, so the cursor ends here and the failure counts as one iteration.
        run.drained = True
        run.failed += 1
        run.keep(frame, [event.error], {0})
    elif not report.get("rows"):
        run.drained = True
    else:
        results = list(report.get("results") or [])
        failed = set(report.get("failed") or [])
        run.failed += len(failed)
        run.success += len(results) - len(failed)
        run.keep(frame, results, failed)
    if not run.drained:
        run.open_reports += 1


def iterations(event: Event, process: str) -> list[tuple[int, Any, Any]]:
    """The successful iterations of a frame report as ``(index, item, result)``: what a loop step's
    ``set`` is applied to, one by one. ``item`` is the row (``process: row``) or the frame's rows."""
    if event.event_type != ev.CALL_DONE or not isinstance(event.result, dict):
        return []
    report = event.result
    items = list(report.get("items") or [])
    results = list(report.get("results") or [])
    failed = set(report.get("failed") or [])
    if process == "frame":
        return [(0, items, results[0])] if results and 0 not in failed else []
    return [(i, items[i] if i < len(items) else None, result) for i, result in enumerate(results) if i not in failed]
