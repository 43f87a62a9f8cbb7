"""`noetl query` on the local store: opened where it is, whatever characters its path holds; its
answer bounded as PostgreSQL's is."""

from __future__ import annotations

import sqlite3
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
