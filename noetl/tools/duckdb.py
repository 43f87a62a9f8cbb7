"""``duckdb``: run SQL on an embedded DuckDB database.

Config: ``database`` (a file path; ``:memory:`` for a throwaway database; default: one file per
execution, ``$NOETL_HOME/data/duckdb/<execution_id>.duckdb``, so steps of one execution share
tables), ``command`` / ``query`` / ``sql`` / ``command_b64`` / ``script``, ``params`` (a list for
``?`` / ``$1``, a mapping for ``$name``).

PostgreSQL can be attached from credentials: ``auth: pg_local`` (attached under the credential's
name, or ``alias``) and/or ``credentials: {alias: {key: credential_name}}`` run
``ATTACH '<conninfo>' AS alias (TYPE postgres)`` before the SQL, and the unified-auth mapping
``auth: {alias: {type: postgres, key: name[, secret_name: s]}, ...}`` attaches each alias too.
Each alias is also a DuckDB secret (named ``secret_name``, default the alias), so v1 SQL that
attaches it itself (``ATTACH '' AS alias (TYPE postgres, SECRET alias)``) works; NoETL then leaves
that alias to the SQL. The postgres extension is loaded
without network access when a matching ``duckdb-extension-postgres`` package is installed (see
docs/tools.md, "DuckDB extensions offline").

DuckDB is synchronous, so the statements run in a worker thread. Result shape as the postgres
tool: ``{status, rows, row_count, columns, statement_count, command_0, ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
from psycopg import conninfo as pg_conninfo

from noetl.errors import ToolError
from noetl.jsonconv import parse_json_text
from noetl.sandbox import confine
from noetl.secrets import Redactor
from noetl.settings import load_settings
from noetl.tools._auth import fetch_credential, resolve_auth
from noetl.tools._sql import (
    build_sql_result,
    load_statements,
    preview,
    statement_result,
    statement_where,
)
from noetl.tools._sqlconv import rows_to_dicts
from noetl.tools.base import ToolCall
from noetl.tools.postgres import clean_message, conninfo_from_fields

MEMORY = ":memory:"
POSTGRES_EXTENSION_PACKAGE = "duckdb_extension_postgres"
_DML_TYPES = frozenset({"INSERT", "UPDATE", "DELETE", "COPY"})
_STATUS_COLUMNS = (["Count"], ["Success"])
_EXTENSION_STATEMENT = re.compile(
    r"^\s*(FORCE\s+)?(INSTALL|LOAD)\s+['\"]?postgres(_scanner)?['\"]?\s*$", re.I
)
_USES_POSTGRES = re.compile(
    r"\bpostgres_(scan|query|execute|attach|scan_pushdown)\b|\bTYPE\s+postgres\b|['\"]postgres(ql)?:", re.I
)
_TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# As a last resort the extension is downloaded (DuckDB's INSTALL). A failed download is not
# retried in the same process: offline it costs seconds per call. Set False to never download.
ALLOW_EXTENSION_DOWNLOAD = True
_download_failure: str | None = None

_database_locks: dict[str, threading.Lock] = {}
_database_locks_guard = threading.Lock()


# --------------------------------------------------------------------------------------------
# The database file
# --------------------------------------------------------------------------------------------


def default_database_path(execution_id: str) -> Path:
    safe_id = re.sub(r"[^A-Za-z0-9_.\-]", "_", execution_id) or "default"
    return load_settings().data_dir / "duckdb" / f"{safe_id}.duckdb"


def resolve_database(config: dict[str, Any], call: ToolCall) -> str:
    """``:memory:`` or an absolute file path whose directory exists."""
    database = config.get("database") or config.get("db")
    if database == MEMORY:
        return MEMORY
    path = Path(str(database)).expanduser() if database else default_database_path(call.execution_id)
    path = path if path.is_absolute() else Path.cwd() / path
    path = confine(path, what="duckdb database", extra_roots=[call.playbook_dir])
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def _lock_for(database: str) -> threading.Lock:
    with _database_locks_guard:
        return _database_locks.setdefault(database, threading.Lock())


def _use_utc(connection: duckdb.DuckDBPyConnection) -> None:
    # Timestamps are UTC everywhere in NoETL; without ICU there are no zones to set, nothing to do.
    with contextlib.suppress(duckdb.Error):
        connection.execute("SET TimeZone = 'UTC'")


def _connect(database: str) -> duckdb.DuckDBPyConnection:
    try:
        connection = duckdb.connect(database)
    except duckdb.Error as exc:
        raise ToolError(
            f"cannot open DuckDB database {database}: {exc}", kind="connection", retryable=True
        ) from exc
    _use_utc(connection)
    return connection


@contextlib.contextmanager
def open_database(database: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to ``database``; one user at a time per file, so parallel steps of one
    execution queue instead of failing on DuckDB's write-write conflicts."""
    lock = contextlib.nullcontext() if database == MEMORY else _lock_for(database)
    with lock:
        connection = _connect(database)
        try:
            yield connection
        finally:
            connection.close()


# --------------------------------------------------------------------------------------------
# The postgres extension, offline first
# --------------------------------------------------------------------------------------------


def _postgres_loaded(connection: duckdb.DuckDBPyConnection) -> bool:
    row = connection.execute(
        "SELECT loaded FROM duckdb_extensions() WHERE extension_name IN ('postgres_scanner', 'postgres')"
    ).fetchone()
    return bool(row and row[0])


def packaged_postgres_extension() -> Path | None:
    """The extension binary shipped by the ``duckdb-extension-postgres`` wheel for this duckdb."""
    spec = importlib.util.find_spec(POSTGRES_EXTENSION_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    version_dir = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}"
    for name in ("postgres_scanner.duckdb_extension", "postgres.duckdb_extension"):
        if (version_dir / name).is_file():
            return version_dir / name
    return None


def _staged_extension(packaged: Path) -> Path:
    """A copy named ``postgres_scanner.duckdb_extension``: DuckDB derives the extension's entry
    point from the file name, and the wheel names the file ``postgres``."""
    target_dir = load_settings().data_dir / "duckdb" / "extensions" / f"v{duckdb.__version__}"
    target = target_dir / "postgres_scanner.duckdb_extension"
    if not target.is_file() or target.stat().st_size != packaged.stat().st_size:
        target_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        shutil.copyfile(packaged, partial)
        os.replace(partial, target)
    return target


def _load_installed_postgres(connection: duckdb.DuckDBPyConnection) -> bool:
    """LOAD an extension already installed in DuckDB's extension directory, never downloading
    (with auto-install on, a plain LOAD would quietly try the network first)."""
    row = connection.execute("SELECT current_setting('autoinstall_known_extensions')").fetchone()
    autoinstall = bool(row and row[0])
    connection.execute("SET autoinstall_known_extensions = false")
    try:
        connection.execute("LOAD postgres")
        return True
    except duckdb.Error:
        return False
    finally:
        connection.execute(f"SET autoinstall_known_extensions = {'true' if autoinstall else 'false'}")


def ensure_postgres_extension(connection: duckdb.DuckDBPyConnection) -> None:
    """Load the postgres extension: already installed, else the packaged copy, else download."""
    if _postgres_loaded(connection):
        return
    if _load_installed_postgres(connection):
        return
    packaged = packaged_postgres_extension()
    if packaged is not None:
        try:
            connection.execute(f"LOAD '{_staged_extension(packaged)}'")
            return
        except duckdb.Error as exc:
            raise ToolError(
                f"cannot load the packaged DuckDB postgres extension: {exc}", kind="config"
            ) from exc
    _download_postgres_extension(connection)


def _download_postgres_extension(connection: duckdb.DuckDBPyConnection) -> None:
    global _download_failure
    if ALLOW_EXTENSION_DOWNLOAD and _download_failure is None:
        try:
            connection.execute("INSTALL postgres")
            connection.execute("LOAD postgres")
            return
        except duckdb.Error as exc:
            _download_failure = str(exc).splitlines()[0]
    reason = _download_failure or "downloading extensions is disabled"
    raise ToolError(
        f"the DuckDB postgres extension is not available for duckdb {duckdb.__version__} ({reason}). "
        "To work offline install a duckdb release with a packaged extension, e.g. "
        "pip install duckdb==1.5.5 duckdb-extension-postgres==1.5.5",
        kind="config",
    )


# --------------------------------------------------------------------------------------------
# Attaching PostgreSQL from credentials
# --------------------------------------------------------------------------------------------


def _alias(name: str) -> str:
    alias = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return alias if _IDENTIFIER.match(alias) else f"db_{alias}"


def _reference_name(reference: Any) -> str | None:
    if isinstance(reference, str):
        return reference
    if isinstance(reference, dict):
        for key in ("key", "credential", "name", "auth"):
            if isinstance(reference.get(key), str):
                return str(reference[key])
    return None


def _postgres_conninfo(credential: dict[str, Any]) -> str:
    cred_type = str(credential.get("type") or "postgres").lower()
    if cred_type not in ("postgres", "postgresql", "pg", "generic"):
        raise ToolError(
            f"duckdb can attach PostgreSQL credentials only; {credential.get('name')!r} has type {cred_type!r}",
            kind="config",
        )
    return conninfo_from_fields(dict(credential.get("data") or {}))


def _unified_aliases(auth: Any) -> dict[str, dict[str, Any]] | None:
    """The unified-auth mapping of aliases (``{pg_db: {type: postgres, key: pg_local, secret_name:
    pg_main}}``, several aliases or one with a ``secret_name``), or None for any other spelling of
    ``auth`` (one alias alone names the credential, attached under its own name as before)."""
    if not isinstance(auth, dict) or not auth or any(key in auth for key in ("type", "credential", "key")):
        return None
    if not all(isinstance(spec, dict) and spec.get("type") for spec in auth.values()):
        return None
    if len(auth) == 1 and not next(iter(auth.values())).get("secret_name"):
        return None
    return {str(alias): spec for alias, spec in auth.items()}


async def _unified_attachments(aliases: dict[str, dict[str, Any]], call: ToolCall,
                               attachments: dict[str, str], secrets: dict[str, str]) -> None:
    """Each alias's PostgreSQL credential, attached under the alias and a DuckDB secret named
    ``secret_name`` (default: the alias) for the SQL's own ``ATTACH '' AS pg_db (TYPE postgres,
    SECRET pg_main)``."""
    for alias, spec in aliases.items():
        if str(spec.get("type")).lower() not in ("postgres", "postgresql", "pg"):
            raise ToolError(f"duckdb tool: auth.{alias} has type {spec.get('type')!r}; "
                            "only postgres credentials can be attached", kind="config", details={"field": "auth"})
        credential = await resolve_auth({k: v for k, v in spec.items() if k != "secret_name"}, call)
        if credential is None:
            raise ToolError(f"duckdb tool: auth.{alias} names no credential", kind="config", details={"field": "auth"})
        conninfo = _postgres_conninfo(credential)
        secrets[_alias(str(spec.get("secret_name") or alias))] = conninfo
        attachments[_alias(alias)] = conninfo


async def resolve_attachments(config: dict[str, Any], call: ToolCall) -> tuple[list[tuple[str, str]],
                                                                              list[tuple[str, str]]]:
    """``([(alias, conninfo)], [(secret name, conninfo)])`` from ``auth`` and ``credentials``."""
    attachments: dict[str, str] = {}
    secrets: dict[str, str] = {}
    aliases = _unified_aliases(config.get("auth"))
    credential = None if aliases else await resolve_auth(config.get("auth"), call)
    if aliases:
        await _unified_attachments(aliases, call, attachments, secrets)
    if credential is not None:
        alias = config.get("alias") or config.get("db_alias") or credential.get("name") or "pg"
        attachments[_alias(str(alias))] = _postgres_conninfo(credential)
    credentials = config.get("credentials") or {}
    if not isinstance(credentials, dict):
        raise ToolError("duckdb tool: `credentials` must map an alias to a credential", kind="config")
    for alias, reference in credentials.items():
        name = _reference_name(reference)
        if not name:
            raise ToolError(f"duckdb tool: credentials.{alias} must name a credential", kind="config")
        conninfo = _postgres_conninfo(await fetch_credential(name, call, f"credentials.{alias}"))
        attachments[_alias(str(alias))] = secrets[_alias(str(alias))] = conninfo  # the v1 plugin's secret per alias
    return list(attachments.items()), list(secrets.items())


def attached_by_sql(statements: list[str]) -> set[str]:
    """The aliases the SQL attaches itself (``ATTACH '' AS pg_db (TYPE postgres, SECRET pg_db)``):
    NoETL does not attach those too (DuckDB refuses a second database of one name)."""
    return {match.group(1) for statement in statements for match in _ATTACH_AS.finditer(statement)}


_ATTACH_AS = re.compile(r"\bATTACH\s+(?:DATABASE\s+)?(?:IF\s+NOT\s+EXISTS\s+)?'[^']*'\s+AS\s+\"?(\w+)\"?", re.I)


# DuckDB's postgres secret parameters for libpq's keywords.
_SECRET_PARAMETERS = {"host": "HOST", "port": "PORT", "dbname": "DATABASE", "user": "USER", "password": "PASSWORD"}


def _create_secret(connection: duckdb.DuckDBPyConnection, name: str, conninfo: str, redactor: Redactor) -> None:
    ensure_postgres_extension(connection)
    fields = pg_conninfo.conninfo_to_dict(conninfo)
    parameters = ", ".join(f"{_SECRET_PARAMETERS[k]} '{str(v).replace(chr(39), chr(39) * 2)}'"
                           for k, v in fields.items() if k in _SECRET_PARAMETERS and v is not None)
    try:
        connection.execute(f'CREATE OR REPLACE TEMPORARY SECRET "{name}" (TYPE postgres, {parameters})')
    except duckdb.Error as exc:
        raise ToolError(f"cannot create the DuckDB secret {name!r}: {clean_message(str(exc), redactor)}",
                        kind="config") from None


def _attach(connection: duckdb.DuckDBPyConnection, alias: str, conninfo: str, redactor: Redactor) -> None:
    ensure_postgres_extension(connection)
    quoted = conninfo.replace("'", "''")
    try:
        connection.execute(f"ATTACH IF NOT EXISTS '{quoted}' AS \"{alias}\" (TYPE postgres)")
    except duckdb.Error as exc:
        # DuckDB echoes the whole connection string, password included.
        raise ToolError(
            f"cannot attach PostgreSQL as {alias!r}: {clean_message(str(exc), redactor)}",
            kind="connection",
            retryable=True,
        ) from None


# --------------------------------------------------------------------------------------------
# Running statements
# --------------------------------------------------------------------------------------------


def _statement_info(connection: duckdb.DuckDBPyConnection, statement: str) -> tuple[str, set[str] | None]:
    """(statement type name, the parameter names it uses, None when unknown); parse errors
    surface later from execute()."""
    try:
        parsed = connection.extract_statements(statement)
    except duckdb.Error:
        return "", None
    if len(parsed) != 1:
        return "", None
    kind = getattr(parsed[0].type, "name", str(parsed[0].type)).upper()
    return kind, set(parsed[0].named_parameters)


def _bind(params: dict[str, Any] | list[Any] | None, names: set[str] | None) -> dict[str, Any] | list[Any] | None:
    """The parameters for one statement of a script. DuckDB rejects a mapping that holds names
    the statement does not use, so a mapping shared by several statements is narrowed to each."""
    if params is None or names == set():
        return None
    if isinstance(params, dict) and names is not None:
        return {name: value for name, value in params.items() if name in names}
    return params


def _shape(columns: list[str], types: list[str], raw_rows: list[Any], statement_type: str) -> dict[str, Any]:
    if columns in _STATUS_COLUMNS and statement_type != "SELECT":
        # DML answers with one "Count" row and DDL with "Success"; report them like postgres does.
        count = int(raw_rows[0][0]) if columns == ["Count"] and raw_rows and raw_rows[0][0] is not None else 0
        return statement_result([], [], count)
    json_columns = {i for i, type_name in enumerate(types) if type_name.upper() == "JSON"}
    if json_columns:
        raw_rows = [
            tuple(parse_json_text(v) if i in json_columns else v for i, v in enumerate(row))
            for row in raw_rows
        ]
    return statement_result(columns, rows_to_dicts(columns, raw_rows), len(raw_rows))


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc_timestamps(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """Read TIMESTAMPTZ columns as UTC wall-clock TIMESTAMPs.

    The Python client turns TIMESTAMPTZ into aware datetimes through pytz, which is not a
    dependency; UTC timestamps are what results carry anyway (naive values are taken as UTC).
    """
    types = [str(t) for t in relation.types]
    if not any(_TIMESTAMPTZ in t for t in types):
        return relation
    expressions = []
    for name, type_name in zip(relation.columns, types, strict=True):
        column = quote_identifier(name)
        if type_name == _TIMESTAMPTZ:
            expressions.append(f"timezone('UTC', {column}) AS {column}")
        elif _TIMESTAMPTZ in type_name:  # nested in a list or struct: the session zone is UTC
            expressions.append(
                f"CAST({column} AS {type_name.replace(_TIMESTAMPTZ, 'TIMESTAMP')}) AS {column}"
            )
        else:
            expressions.append(column)
    try:
        return relation.project(", ".join(expressions))
    except duckdb.Error:  # e.g. duplicate column names: read the relation as it is
        return relation


def _run_statement(
    connection: duckdb.DuckDBPyConnection, statement: str, statement_type: str, params: Any
) -> dict[str, Any]:
    if statement_type == "SELECT":
        relation = connection.sql(statement, params=params)
        if relation is None:
            return statement_result([], [], 0)
        relation = _utc_timestamps(relation)
        return _shape(relation.columns, [str(t) for t in relation.types], relation.fetchall(), statement_type)
    cursor = connection.execute(statement, params) if params is not None else connection.execute(statement)
    if not cursor.description:
        return statement_result([], [], 0)
    columns = [column[0] for column in cursor.description]
    types = [str(column[1]) for column in cursor.description]
    return _shape(columns, types, cursor.fetchall(), statement_type)


def _duckdb_error(exc: duckdb.Error, index: int, count: int, statement: str, redactor: Redactor) -> ToolError:
    message = clean_message(str(exc).strip(), redactor)
    details = {"statement_index": index, "statement": clean_message(preview(statement), redactor)}
    where = statement_where(index, count)
    if isinstance(exc, duckdb.TransactionException):
        return ToolError(
            f"write conflict{where}: {message}", kind="sql", retryable=True, details=details
        )
    if isinstance(exc, duckdb.IOException) and _USES_POSTGRES.search(statement):
        return ToolError(f"DuckDB I/O error{where}: {message}", kind="connection", retryable=True, details=details)
    return ToolError(f"SQL error{where}: {message}", kind="sql", details=details)


def execute_statements(
    connection: duckdb.DuckDBPyConnection,
    statements: list[str],
    params: dict[str, Any] | list[Any] | None,
    redactor: Redactor,
) -> list[dict[str, Any]]:
    results = []
    for index, statement in enumerate(statements):
        if _EXTENSION_STATEMENT.match(statement):
            # `INSTALL postgres; LOAD postgres` from older playbooks: satisfied offline when possible.
            ensure_postgres_extension(connection)
            results.append(statement_result([], [], 0))
            continue
        if _USES_POSTGRES.search(statement):
            ensure_postgres_extension(connection)
        statement_type, names = _statement_info(connection, statement)
        try:
            results.append(_run_statement(connection, statement, statement_type, _bind(params, names)))
        except duckdb.Error as exc:
            raise _duckdb_error(exc, index, len(statements), statement, redactor) from None
    return results


def _run(
    database: str,
    attachments: tuple[list[tuple[str, str]], list[tuple[str, str]]],
    statements: list[str],
    params: dict[str, Any] | list[Any] | None,
    redactor: Redactor,
) -> list[dict[str, Any]]:
    attach, secrets = attachments
    with open_database(database) as connection:
        for name, conninfo in secrets:
            _create_secret(connection, name, conninfo, redactor)
        for alias, conninfo in attach:
            _attach(connection, alias, conninfo, redactor)
        return execute_statements(connection, statements, params, redactor)


async def run_duckdb(config: dict[str, Any], call: ToolCall) -> dict[str, Any]:
    statements, params = await load_statements(config, call, "duckdb")
    attach, secrets = await resolve_attachments(config, call)
    own = attached_by_sql(statements)
    attachments = ([(alias, conninfo) for alias, conninfo in attach if alias not in own], secrets)
    database = resolve_database(config, call)
    redactor = Redactor(call.secrets)
    results = await asyncio.to_thread(_run, database, attachments, statements, params, redactor)
    return build_sql_result(results)
