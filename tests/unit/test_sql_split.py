"""Splitting SQL scripts into statements the way PostgreSQL's own lexer would."""

from __future__ import annotations

import pytest

from noetl.tools._sql import split_sql_statements


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1"]),
        ("SELECT 1; SELECT 2;;  ;", ["SELECT 1", "SELECT 2"]),
        ("", []),
        ("  \n ; ", []),
        ("-- only a comment", []),
        ("/* only */ -- comments\n;", []),
    ],
)
def test_plain_statements_and_empty_pieces(script: str, expected: list[str]) -> None:
    assert split_sql_statements(script) == expected


def test_semicolons_inside_strings_and_identifiers_do_not_split() -> None:
    script = """INSERT INTO t VALUES ('a;b', 'it''s; fine'); SELECT "odd;name" FROM "x"";y"; SELECT 3"""
    assert split_sql_statements(script) == [
        "INSERT INTO t VALUES ('a;b', 'it''s; fine')",
        'SELECT "odd;name" FROM "x"";y"',
        "SELECT 3",
    ]


def test_escape_strings_honour_backslash_quotes() -> None:
    script = r"SELECT E'a\';b'; SELECT 'c\'; SELECT 2"
    # In a standard string a backslash is an ordinary character, so 'c\' ends there.
    assert split_sql_statements(script) == [r"SELECT E'a\';b'", r"SELECT 'c\'", "SELECT 2"]


def test_comments_with_semicolons_stay_inside_their_statement() -> None:
    script = "SELECT 1 -- trailing; comment\n, 2; /* block; /* nested; */ still; */ SELECT 3"
    assert split_sql_statements(script) == [
        "SELECT 1 -- trailing; comment\n, 2",
        "/* block; /* nested; */ still; */ SELECT 3",
    ]


def test_dollar_quoted_bodies_are_one_statement() -> None:
    script = """
    CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;
    CREATE FUNCTION g() RETURNS text AS $body$ SELECT 'x;$$;y'; $body$ LANGUAGE sql;
    DO $do$ BEGIN PERFORM 1; END $do$;
    SELECT $1, $2;
    """
    assert split_sql_statements(script) == [
        "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql",
        "CREATE FUNCTION g() RETURNS text AS $body$ SELECT 'x;$$;y'; $body$ LANGUAGE sql",
        "DO $do$ BEGIN PERFORM 1; END $do$",
        "SELECT $1, $2",
    ]


def test_dollar_inside_identifiers_is_not_a_quote() -> None:
    assert split_sql_statements("SELECT a$b$ FROM t; SELECT 2") == ["SELECT a$b$ FROM t", "SELECT 2"]


def test_sql_standard_function_bodies_keep_their_semicolons() -> None:
    script = """
    CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql
    BEGIN ATOMIC
        SELECT CASE WHEN a > 0 THEN a ELSE 0 END + b;
        SELECT 1;
    END;
    SELECT add(1, 2);
    """
    statements = split_sql_statements(script)
    assert len(statements) == 2
    assert statements[0].endswith("END")
    assert statements[1] == "SELECT add(1, 2)"


def test_begin_and_end_transaction_blocks_still_split() -> None:
    assert split_sql_statements("BEGIN; UPDATE t SET a = 1; END;") == ["BEGIN", "UPDATE t SET a = 1", "END"]


def test_unterminated_quote_keeps_the_rest_as_one_statement() -> None:
    assert split_sql_statements("SELECT 1; SELECT 'oops; SELECT 2") == ["SELECT 1", "SELECT 'oops; SELECT 2"]
