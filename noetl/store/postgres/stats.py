"""Step statistics for ``/metrics``: how many step runs finished, by status, and how long they took.

A step run is one tool call: a step's command, or one iteration of a loop. The process that records
the report counts it in memory (:meth:`StepStats.observe`, after the decision committed) and adds
its counts to its own rows of ``noetl.step_stats`` every few seconds (:meth:`StepStats.flush`), so
the decision path never waits on a counter row shared with other processes. Counts not yet flushed
when a process is killed are lost: the figures are for monitoring, not accounting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from noetl.store.postgres.store import PostgresStore

# Upper bounds (seconds) of the step duration histogram's buckets; above the last: +Inf.
STEP_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(slots=True)
class StepTotals:
    """Counts for one status. ``bucket_counts[i]``: runs within bucket i (not cumulative); the last
    element counts runs above every bound. Runs without a duration count in ``count`` only."""

    count: int = 0
    duration_sum: float = 0.0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(STEP_DURATION_BUCKETS) + 1))

    def add(self, other: StepTotals) -> None:
        self.count += other.count
        self.duration_sum += other.duration_sum
        self.bucket_counts = [a + b for a, b in zip(self.bucket_counts, other.bucket_counts, strict=True)]

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs as Prometheus exposes a histogram."""
        pairs, total = [], 0
        for bound, count in zip([*map(str, STEP_DURATION_BUCKETS), "+Inf"], self.bucket_counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


def bucket_index(seconds: float) -> int:
    for index, bound in enumerate(STEP_DURATION_BUCKETS):
        if seconds <= bound:
            return index
    return len(STEP_DURATION_BUCKETS)


class StepStats:
    """This process's counts since the last flush."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._pending: dict[str, StepTotals] = {}

    def observe(self, status: str, duration: float | None) -> None:
        totals = self._pending.setdefault(status, StepTotals())
        totals.count += 1
        if duration is not None:
            totals.duration_sum += duration
            totals.bucket_counts[bucket_index(duration)] += 1

    async def flush(self, store: PostgresStore, now: datetime) -> None:
        """Add the pending counts to the database; on failure they stay pending for the next flush."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        deltas = [{"status": status, "count": t.count, "duration_sum": t.duration_sum, "bucket_counts": t.bucket_counts}
                  for status, t in pending.items()]
        try:
            await store.read_write("recording step statistics", "add_step_stats",
                                   {"owner": self.owner, "now": now, "deltas": json.dumps(deltas)})
        except BaseException:
            for status, totals in pending.items():
                self._pending.setdefault(status, StepTotals()).add(totals)
            raise


async def read_step_stats(store: PostgresStore) -> dict[str, StepTotals]:
    """Every process's flushed counts, summed per status."""
    totals = {}
    for status, count, duration_sum, bucket_counts in await store.read("reading step statistics", "step_stats", {}):
        buckets = [int(b) for b in bucket_counts][:len(STEP_DURATION_BUCKETS) + 1]
        buckets += [0] * (len(STEP_DURATION_BUCKETS) + 1 - len(buckets))
        totals[status] = StepTotals(int(count), float(duration_sum), buckets)
    return totals
