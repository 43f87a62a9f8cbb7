"""`noetl query` opens the local store where it is, whatever characters its path holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from noetl.cli.local_query import query_local
from noetl.errors import InputError


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
