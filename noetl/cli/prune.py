"""`noetl prune [--older-than AGE]`: remove old data from the store.

Today it removes results stored by reference (SPEC section 19): every result created more than AGE
ago, and every result whose `output.store.ttl` has passed, from the store's result table and the
disk result folder. It acts on PostgreSQL when ``NOETL_DATABASE_URL`` is set, else on the local
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


PRUNERS: dict[str, Pruner] = {"results": prune_results}


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
    """Remove results past their ttl, and with --older-than everything older than AGE."""
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
