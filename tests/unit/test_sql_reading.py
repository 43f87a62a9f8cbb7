"""Which statements the SQL endpoint lets through when read-only (noetl.server.sqlapi.check_reading)."""

from __future__ import annotations

import pytest

from noetl.server.sqlapi import SqlRefused, check_reading


@pytest.mark.parametrize("statement", [
    "SELECT 1",
    "-- how many runs\nSELECT count(*) FROM noetl.execution",
    "/* the last hour */ SELECT 1",
    "/* outer /* nested */ still a comment */\n  -- and a line\n(SELECT 1)",
])
def test_reading_statements_pass_with_comments_before_them(statement: str) -> None:
    check_reading(statement)


@pytest.mark.parametrize("statement", [
    "DELETE FROM noetl.event",
    "-- SELECT\nDELETE FROM noetl.event",
    "/* SELECT */ DELETE FROM noetl.event",
    "/* /* */ SELECT */ DELETE FROM noetl.event",  # PostgreSQL nests block comments: the DELETE runs
    "/* never closed SELECT",
    "-- only a comment",
])
def test_a_comment_never_hides_what_the_statement_does(statement: str) -> None:
    with pytest.raises(SqlRefused):
        check_reading(statement)
