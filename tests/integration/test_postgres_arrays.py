"""The typed column arrays of the decision statements arrive in PostgreSQL as the values they hold."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from noetl.store.postgres.arrays import BigintArray, BoolArray, IntArray, TextArray

TEXTS = ["plain", "", None, 'a "quoted" {brace}, comma \\ backslash', "ünïcødé ✓ 𝄞", '{"json":[1,null]}']


@pytest.fixture(scope="module")
def conn(pg_cluster: dict[str, Any]) -> Any:
    with psycopg.connect(pg_cluster["url"], autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize(("values", "sql_type"), [
    (TextArray(TEXTS), "text[]"),
    (TextArray([]), "text[]"),
    (TextArray([None, None]), "text[]"),
    (BigintArray([0, -1, 2**63 - 1, -(2**63), 7]), "bigint[]"),
    (BigintArray([]), "bigint[]"),
    (IntArray([0, 3, -(2**31), 2**31 - 1]), "integer[]"),
    (BoolArray([True, False, True]), "boolean[]"),
    (BoolArray([]), "boolean[]"),
])
def test_a_typed_array_reads_back_equal_element_by_element(conn: Any, values: list[Any], sql_type: str) -> None:
    # No cast: the type is the one the parameter declares.
    assert conn.execute("SELECT pg_typeof(%b)::text, cardinality(%b)", [values, values]).fetchone() == (
        sql_type, len(values))
    rows = conn.execute("SELECT n, v FROM unnest(%b) WITH ORDINALITY AS u(v, n) ORDER BY n", [values]).fetchall()
    assert [v for _, v in rows] == list(values)


@pytest.mark.parametrize("values", [IntArray([2**31]), BigintArray([2**63]), IntArray(["1"]), TextArray(["a", 1])],
                         ids=["int-range", "bigint-range", "int-of-text", "text-of-int"])
def test_an_element_of_the_wrong_type_or_range_is_refused_before_anything_is_sent(conn: Any,
                                                                                  values: list[Any]) -> None:
    with pytest.raises(psycopg.DataError):
        conn.execute("SELECT %b", [values])


def test_a_nul_character_in_text_is_refused_by_postgresql(conn: Any) -> None:
    with pytest.raises(psycopg.DataError):
        conn.execute("SELECT %b::text[]", [TextArray(["a\x00b"])])
