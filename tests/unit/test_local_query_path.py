"""`noetl query` on the local store: opened where it is, whatever characters its path holds; its
answer bounded as PostgreSQL's is."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from noetl.cli.local_query import query_local
from noetl.errors import InputError
from noetl.limits import MAX_QUERY_BYTES


@pytest.mark.parametrize("directory", ["home#1", "home?mode=rw", "home%41", "home with space"])
def test_a_store_whose_path_holds_uri_characters_is_read_read_only(tmp_path: Path, directory: str) -> None:
    store = tmp_path / directory / "noetl.db"
    store.parent.mkdir()
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE event (n INTEGER)")
        conn.execute("INSERT INTO event VALUES (7)")
    conn.close()
    assert query_local(store, "SELECT n FROM noetl.event")["rows"] == [[7]]
    with pytest.raises(InputError, match="read-only"):
        query_local(store, "DELETE FROM event")
    assert sorted(path.name for path in tmp_path.iterdir()) == [directory]  # no file made beside it


def test_an_answer_of_many_megabytes_stops_at_the_bound(tmp_path: Path) -> None:
    store = tmp_path / "noetl.db"
    sqlite3.connect(store).close()
    big_rows = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) "
                "SELECT printf('%.*c', 1048576, 'x') AS blob FROM n")
    answer = query_local(store, big_rows)
    assert answer["truncated"] is True and 0 < answer["rowcount"] <= MAX_QUERY_BYTES // 2**20
    assert query_local(store, "SELECT 1 AS one") == {"columns": ["one"], "rows": [[1]], "rowcount": 1}


def test_one_huge_value_is_not_copied_to_be_measured(tmp_path: Path) -> None:
    """A value longer than the answer's bound is not turned into JSON to learn that it is too long:
    `SELECT zeroblob(500000000)` took 73 s and 5.4 GB (the blob's text form, four times its size,
    then its JSON), past the 30 s limit of a statement, which SQLite never saw run."""
    store = tmp_path / "noetl.db"
    sqlite3.connect(store).close()
    for sql in ("SELECT 1 AS n, zeroblob(67108864) AS b", "SELECT 1 AS n, printf('%.*c', 67108864, 'x') AS t"):
        tracemalloc.start()
        try:
            answer = query_local(store, sql)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert answer["truncated"] is True and answer["rows"] == [] and answer["columns"][0] == "n", sql
        assert peak < 100 * 2**20, f"{sql}: {peak >> 20} MiB at the peak for a 64 MiB value"
