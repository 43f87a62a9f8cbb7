"""Shared pieces of the SQL tools (postgres, duckdb): statement splitting, the SQL source and the
result shape."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from noetl.errors import ToolError
from noetl.tools._script import load_script
from noetl.tools.base import ToolCall

# --------------------------------------------------------------------------------------------
# Splitting a script into statements
# --------------------------------------------------------------------------------------------


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _skip_line_comment(sql: str, i: int) -> int:
    end = sql.find("\n", i)
    return len(sql) if end < 0 else end + 1


def _skip_block_comment(sql: str, i: int) -> int:
    # PostgreSQL block comments nest: /* a /* b */ still a comment */
    depth = 0
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _skip_quoted(sql: str, i: int, quote: str, *, backslash_escapes: bool) -> int:
    """Index just past the string or quoted identifier opening at ``i`` (doubled quotes escape)."""
    i += 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if backslash_escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _dollar_tag_at(sql: str, i: int) -> str | None:
    """The ``$tag$`` opening a dollar-quoted body at ``i``, or None (``$1`` is a parameter)."""
    j = i + 1
    n = len(sql)
    if j < n and sql[j] == "$":
        return "$$"
    if j >= n or not _is_ident_start(sql[j]):
        return None
    while j < n and (sql[j].isalnum() or sql[j] == "_"):
        j += 1
    if j < n and sql[j] == "$":
        return sql[i : j + 1]
    return None


class _Splitter:
    """A small lexer that knows just enough SQL to find the semicolons that end statements.

    It skips quoted strings (``'..'``, ``E'..'``), quoted identifiers, ``--`` and nested ``/* */``
    comments, dollar-quoted bodies (``$$..$$``, ``$fn$..$fn$``) and ``BEGIN ATOMIC .. END``
    function bodies, whose inner semicolons do not end the statement.
    """

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.statements: list[str] = []
        self.start = 0
        self.has_code = False  # anything but whitespace and comments since ``start``
        self.words: list[str] = []  # leading and latest keywords of the current statement
        self.atomic_depth = 0
        self.numbered_parameters = False  # a `$1` outside strings, comments and bodies was seen

    def split(self) -> list[str]:
        sql = self.sql
        i = 0
        n = len(sql)
        while i < n:
            ch = sql[i]
            if sql.startswith("--", i):
                i = _skip_line_comment(sql, i)
            elif sql.startswith("/*", i):
                i = _skip_block_comment(sql, i)
            elif ch.isspace():
                i += 1
            elif ch == ";" and self.atomic_depth == 0:
                self._end_statement(i)
                i += 1
            else:
                self.has_code = True
                i = self._skip_token(i)
        self._end_statement(n)
        return self.statements

    def _skip_token(self, i: int) -> int:
        sql = self.sql
        ch = sql[i]
        if ch == "'":
            return _skip_quoted(sql, i, "'", backslash_escapes=False)
        if ch == '"':
            return _skip_quoted(sql, i, '"', backslash_escapes=False)
        if ch == "$":
            tag = _dollar_tag_at(sql, i)
            if tag is None:
                if i + 1 < len(sql) and sql[i + 1].isdigit() and (i == 0 or not _is_ident_char(sql[i - 1])):
                    self.numbered_parameters = True
                return i + 1
            close = sql.find(tag, i + len(tag))
            return len(sql) if close < 0 else close + len(tag)
        if _is_ident_start(ch):
            end = i + 1
            while end < len(sql) and _is_ident_char(sql[end]):
                end += 1
            word = sql[i:end]
            if word in ("E", "e") and end < len(sql) and sql[end] == "'":
                # E'...' strings honour backslash escapes, so \' does not close them.
                return _skip_quoted(sql, end, "'", backslash_escapes=True)
            self._track_keyword(word.upper())
            return end
        return i + 1

    def _track_keyword(self, word: str) -> None:
        # SQL-standard function bodies (CREATE FUNCTION ... BEGIN ATOMIC ...; ...; END) hold
        # semicolons that belong to the function, like psql we keep them in one statement.
        previous = self.words[-1] if self.words else ""
        is_create = bool(self.words) and self.words[0] == "CREATE"
        opens_body = is_create and previous == "BEGIN" and word == "ATOMIC"
        opens_case = self.atomic_depth > 0 and word == "CASE"
        if opens_body or opens_case:
            self.atomic_depth += 1
        elif self.atomic_depth and word == "END":
            self.atomic_depth -= 1
        self.words.append(word)

    def _end_statement(self, end: int) -> None:
        if self.has_code:
            self.statements.append(self.sql[self.start : end].strip())
        self.start = end + 1
        self.has_code = False
        self.words = []
        self.atomic_depth = 0


def uses_numbered_parameters(sql: str) -> bool:
    """Whether a statement has PostgreSQL's own ``$1``, ``$2`` placeholders outside strings,
    comments and dollar-quoted bodies (a function body's ``$1`` is the function's argument)."""
    splitter = _Splitter(sql)
    splitter.split()
    return splitter.numbered_parameters


def split_sql_statements(sql: str) -> list[str]:
    """Split a script on the semicolons that end statements; comment-only pieces are dropped."""
    return _Splitter(sql).split()


# --------------------------------------------------------------------------------------------
# Where the SQL comes from
# --------------------------------------------------------------------------------------------

_SQL_KEYS = ("command", "query", "sql")


async def load_sql_text(config: dict[str, Any], call: ToolCall, tool: str) -> str:
    """The SQL of a postgres/duckdb tool: ``script`` > ``*_b64`` > ``command``/``query``/``sql``."""
    script = config.get("script")
    if script:
        return await load_script(script, call)
    for key in _SQL_KEYS:
        encoded = config.get(f"{key}_b64")
        if encoded:
            return _decode_b64(encoded, f"{key}_b64")
    for key in _SQL_KEYS:
        text = config.get(key)
        if isinstance(text, str) and text.strip():
            return text
        if text is not None and not isinstance(text, str):
            raise ToolError(f"{tool} tool: `{key}` must be a string of SQL", kind="config")
    raise ToolError(f"{tool} tool needs `command`, `query`, `sql` or `script`", kind="config")


async def load_statements(
    config: dict[str, Any], call: ToolCall, tool: str
) -> tuple[list[str], dict[str, Any] | list[Any] | None]:
    """The statements of a postgres/duckdb tool's SQL (at least one) and its ``params``."""
    statements = split_sql_statements(await load_sql_text(config, call, tool))
    if not statements:
        raise ToolError(f"{tool} tool: the SQL holds no statement", kind="config")
    return statements, normalize_params(config.get("params"), tool)


def _decode_b64(encoded: Any, field: str) -> str:
    try:
        return base64.b64decode(str(encoded), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ToolError(f"`{field}` is not valid base64-encoded UTF-8: {exc}", kind="config") from exc


# --------------------------------------------------------------------------------------------
# Result shape
# --------------------------------------------------------------------------------------------


def statement_result(columns: list[str], rows: list[dict[str, Any]], row_count: int) -> dict[str, Any]:
    return {"rows": rows, "row_count": row_count, "columns": columns}


def build_sql_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    """``{status, rows, row_count, columns, statement_count, command_0, ...}``; the top-level
    rows/row_count/columns mirror the last statement."""
    last = results[-1] if results else statement_result([], [], 0)
    shaped: dict[str, Any] = {
        "status": "ok",
        "rows": last["rows"],
        "row_count": last["row_count"],
        "columns": last["columns"],
        "statement_count": len(results),
    }
    for index, result in enumerate(results):
        shaped[f"command_{index}"] = result
    return shaped


def normalize_params(params: Any, tool: str) -> dict[str, Any] | list[Any] | None:
    """``params`` as the driver wants it: a dict (named) or a list (positional), or None."""
    if params is None or params == {} or params == []:
        return None
    if isinstance(params, dict):
        return params
    if isinstance(params, list | tuple):
        return list(params)
    raise ToolError(f"{tool} tool: `params` must be a mapping or a list", kind="config")


def preview(statement: str, limit: int = 200) -> str:
    """A one-line head of a statement for error messages."""
    one_line = " ".join(statement.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def statement_where(index: int, count: int) -> str:
    """Which statement of a script failed, for error messages: nothing when the script is one
    statement (its 0-based index would only puzzle), else ``statement 2 of 3 (command_2)``, the
    index being the key of that statement's result."""
    return "" if count == 1 else f" in statement {index} of {count} (command_{index})"
