"""SqliteStore against the conformance suite, plus what only SQLite has (pragmas, files, locks)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from store_conformance import Clock, StoreConformance, event, started

import noetl
from noetl.errors import InputError, StoreError
from noetl.settings import load_settings
from noetl.store.base import Store
from noetl.store.factory import open_local_store, store_from_url
from noetl.store.memory import MemoryStore
from noetl.store.sqlite import SqliteStore


class TestSqliteStore(StoreConformance):
    @pytest.fixture(autouse=True)
    def _database_file(self, tmp_path: Path) -> None:
        self.db_path = tmp_path / "home" / "noetl.db"

    async def make_store(self, *, clock: Clock | None = None) -> Store:
        store = SqliteStore(self.db_path, clock=clock) if clock else SqliteStore(self.db_path)
        await store.open()
        return store


def run_with_store(path: Path, *, busy_timeout_ms: int = 5000) -> SqliteStore:
    store = SqliteStore(path, busy_timeout_ms=busy_timeout_ms)
    asyncio.run(store.open())
    return store


def test_connection_settings(tmp_path: Path) -> None:
    store = run_with_store(tmp_path / "noetl.db")
    try:
        conn = store._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    finally:
        asyncio.run(store.close())


def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "noetl.db"
    for _ in range(2):
        asyncio.run(run_with_store(path).close())
    with sqlite3.connect(path) as conn:
        applied = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        views = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    conn.close()
    assert applied == [(1, "init"), (2, "results"), (3, "execution_owner"), (4, "schedules"), (5, "hooks"),
                       (6, "triggers"), (7, "seed_event_columns"), (8, "event_view"), (9, "loop_reports"), (10, "logs"),
                       (11, "loop_report_index_loops_only")]
    assert {"execution", "event_log", "catalog", "credential", "result", "schema_migrations"} <= tables
    assert "event" in views


def test_missing_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "noetl.db"
    asyncio.run(run_with_store(path).close())
    assert path.is_file()


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "noetl.db"
    path.write_bytes(b"this is not a database at all, just some text " * 100)
    with pytest.raises(StoreError) as caught:
        run_with_store(path)
    message = str(caught.value)
    assert str(path) in message and "not a database" in message
    assert "\n" not in message


def test_a_locked_database_is_a_store_error_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "noetl.db"
    store = run_with_store(path, busy_timeout_ms=50)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        asyncio.run(started(store))
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreError, match="locked"):
            asyncio.run(store.append_events("exec-1", [event("step.enter", "a")]))
        other.execute("ROLLBACK")
        stamped = asyncio.run(store.append_events("exec-1", [event("step.enter", "a")]))
        assert stamped[0].event_id == 2
    finally:
        other.close()
        asyncio.run(store.close())


def test_open_local_store_uses_the_settings_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    settings = load_settings()

    async def scenario() -> None:
        store = await open_local_store(settings)
        try:
            await started(store)
            assert await store.get_execution("exec-1") is not None
        finally:
            await store.close()

    asyncio.run(scenario())
    assert (tmp_path / "home" / "noetl.db").is_file()


def test_store_from_url_picks_the_backend(tmp_path: Path) -> None:
    store = store_from_url(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "x.db"
    relative = store_from_url("sqlite:///data/x.db")
    assert isinstance(relative, SqliteStore) and relative.path == Path("data/x.db")
    assert isinstance(store_from_url("sqlite:///:memory:"), SqliteStore)
    assert isinstance(store_from_url("memory://"), MemoryStore)


def test_store_from_url_rejects_what_it_cannot_serve() -> None:
    with pytest.raises(InputError, match="mysql"):
        store_from_url("mysql://localhost/db")
    with pytest.raises(InputError, match="sqlite"):
        store_from_url("sqlite://relative.db")


def test_postgres_url_without_backend_is_a_clear_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Hide the module whether or not it exists yet: None in sys.modules makes the import fail.
    monkeypatch.setitem(__import__("sys").modules, "noetl.store.postgres", None)
    with pytest.raises(StoreError, match="PostgreSQL"):
        store_from_url("postgresql://localhost/noetl")


def test_in_memory_sqlite_database_works() -> None:
    async def scenario() -> None:
        store = SqliteStore(":memory:")
        await store.open()
        try:
            stamped = await started(store)
            assert stamped[0].event_id == 1
            record = await store.get_execution("exec-1")
            assert record is not None and record.path == "examples/hello"
        finally:
            await store.close()

    asyncio.run(scenario())


WRITER_PROCESS = """
import asyncio, sys
from noetl.engine.events import Event
from noetl.store.sqlite import SqliteStore

async def main(path, steps):
    store = SqliteStore(path)
    await store.open()
    try:
        for step in range(steps):
            batch = [Event("exec-1", kind, f"s{step}", created_at="t") for kind in ("a", "b", "c")]
            await store.append_events("exec-1", batch)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_a_reader_process_and_a_writer_process_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "noetl.db"
    reader = run_with_store(path)
    try:
        asyncio.run(started(reader))
        repo_root = Path(noetl.__file__).resolve().parents[1]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")]),
        }
        writer = subprocess.Popen([sys.executable, "-c", WRITER_PROCESS, str(path), "2000"], env=env)
        try:
            while writer.poll() is None:
                ids = [e.event_id for e in asyncio.run(reader.list_events("exec-1"))]
                assert ids == list(range(1, len(ids) + 1))  # never a torn batch or a gap
                assert (len(ids) - 1) % 3 == 0
        finally:
            assert writer.wait(timeout=60) == 0
        assert len(asyncio.run(reader.list_events("exec-1"))) == 1 + 3 * 2000
    finally:
        asyncio.run(reader.close())



def test_the_checkpointer_copies_the_wal_into_the_file_on_its_thread(tmp_path: Path) -> None:
    """With the writer's automatic checkpoint off, the frames still reach the database file: the
    checkpointer's thread copies them once enough commits were counted, while the writer goes on."""
    import time

    from noetl.store.sqlite.checkpoint import Checkpointer

    path = tmp_path / "plain.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    checkpointer = Checkpointer(str(path), busy_timeout_ms=1000, every=10)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("CREATE TABLE t (v TEXT)")
        size_before = path.stat().st_size
        for i in range(9):
            writer.execute("INSERT INTO t VALUES (?)", (f"row {i}" * 200,))
            checkpointer.committed(1)
        time.sleep(0.2)
        assert path.stat().st_size == size_before  # not yet: nine commits counted
        writer.execute("INSERT INTO t VALUES ('last')")
        checkpointer.committed(1)
        deadline = time.monotonic() + 10
        while path.stat().st_size == size_before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size > size_before
    finally:
        checkpointer.stop()
        writer.close()
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 10


def test_a_file_store_checkpoints_in_the_background_with_the_writers_own_as_backstop(tmp_path: Path) -> None:
    from noetl.store.sqlite.checkpoint import BACKSTOP_PAGES

    store = run_with_store(tmp_path / "noetl.db")
    try:
        assert store._connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    finally:
        asyncio.run(store.close())


def test_the_wal_is_checkpointed_off_the_writers_thread(tmp_path: Path) -> None:
    """A long run's commits are copied into the database file by the background checkpointer,
    well before the writer's own (backstop) automatic checkpoint would fire, and none is lost."""
    import time

    from noetl.store.sqlite.checkpoint import BACKSTOP_PAGES, CHECKPOINT_EVERY

    path = tmp_path / "noetl.db"
    store = run_with_store(path)
    try:
        asyncio.run(started(store))
        size_before = path.stat().st_size
        commits = CHECKPOINT_EVERY * 2
        for i in range(commits):
            asyncio.run(store.append_events("exec-1", [event("step.enter", f"s{i}", status="running")]))
        assert path.with_name("noetl.db-wal").stat().st_size < BACKSTOP_PAGES * 4096  # backstop not reached
        deadline = time.monotonic() + 10
        while path.stat().st_size == size_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > size_before  # frames reached the database file while the store is open
        with sqlite3.connect(path) as reader:
            assert reader.execute("SELECT COUNT(*) FROM event_log").fetchone()[0] == commits + 1
    finally:
        asyncio.run(store.close())
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM event_log").fetchone()[0] == commits + 1
