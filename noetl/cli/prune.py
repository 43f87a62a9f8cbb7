"""`noetl prune [--older-than AGE]`: remove old data from the store.

It removes results stored by reference whose `output.store.ttl` has passed, and with
``--older-than AGE``: every result created more than AGE ago (from the store's result table and the
disk result folder), the per-execution DuckDB files not used for AGE, and the executions (with
their events) that ended more than AGE ago. It acts on PostgreSQL when ``NOETL_DATABASE_URL`` is set, else on the local
store. Each kind of data is one pruner below, so more can be added beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import click

from noetl.cli.app import cli, handle_errors, print_json, run_sync
from noetl.clock import utc_now
from noetl.errors import InputError, ToolError

# name -> prune(store, settings, older_than, now) -> how many items were removed
Pruner = Callable[[Any, Any, datetime | None, datetime], Awaitable[int]]


async def prune_results(store: Any, settings: Any, older_than: datetime | None, now: datetime) -> int:
    from noetl.results.storage import ResultStorage

    return await ResultStorage(store, settings=settings).prune(older_than=older_than, now=now)


async def prune_duckdb_files(store: Any, settings: Any, older_than: datetime | None, now: datetime) -> int:
    """The per-execution DuckDB files (``$NOETL_HOME/data/duckdb/<execution_id>.duckdb``) untouched
    for longer than AGE, unless their execution still runs."""
    if older_than is None:
        return 0
    folder = settings.data_dir / "duckdb"
    removed = 0
    for path in sorted(folder.glob("*.duckdb")) if folder.is_dir() else []:
        if path.stat().st_mtime >= older_than.timestamp():
            continue
        record = await store.get_execution(path.stem)
        if record is not None and record.status == "running":
            continue
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)
        removed += 1
    return removed


async def prune_executions(store: Any, settings: Any, older_than: datetime | None, now: datetime) -> int:
    """Executions that ended more than AGE ago, with their events (running ones are kept)."""
    from noetl.clock import iso

    if older_than is None:
        return 0
    return len(await store.delete_executions(ended_before=iso(older_than)))


# In this order: a DuckDB file is kept while its execution runs, so files go before executions.
PRUNERS: dict[str, Pruner] = {"results": prune_results, "duckdb_files": prune_duckdb_files,
                              "executions": prune_executions}


def parse_age(value: str | None) -> timedelta | None:
    from noetl.results.spec import parse_duration

    try:
        seconds = parse_duration(value, "--older-than")
    except ToolError as exc:
        raise InputError(str(exc)) from None
    return timedelta(seconds=seconds) if seconds is not None else None


@cli.command()
@click.option("--older-than", "older_than", default=None, metavar="AGE",
              help="Also remove what was created more than AGE ago (seconds, or 30m, 12h, 7d, 2w).")
@handle_errors
def prune(older_than: str | None) -> None:
    """Remove results past their ttl; with --older-than also results, DuckDB files and finished
    executions older than AGE."""
    age = parse_age(older_than)

    async def work() -> dict[str, int]:
        from noetl.api import open_store
        from noetl.settings import load_settings

        settings = load_settings()
        store = await open_store(settings.database_url)
        try:
            now = utc_now()
            cutoff = now - age if age is not None else None
            return {name: await pruner(store, settings, cutoff, now) for name, pruner in PRUNERS.items()}
        finally:
            await store.close()

    print_json(run_sync(work()))
