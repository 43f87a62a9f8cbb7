"""The SQL endpoint's own PostgreSQL role: LOGIN, SELECT on NoETL's tables (and its role's in ``public``) only.

``noetl db init`` (and a server with the SQL endpoint enabled, at start) creates it once per
database, with a random password kept in ``noetl.sql_reader``, a table only NoETL's own role can
read. The endpoint connects *as* this role, so a query runs with none of the server role's rights:
no superuser functions (``pg_read_file``, ``COPY ... TO PROGRAM``), no writes, no way back to the
server's role through ``SET ROLE`` or ``set_config('role', ...)`` (the session user is the reader).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import sql

# What the reader must never read: encrypted credential data, and its own password.
_HIDDEN_TABLES = ("credential", "sql_reader")
_LOCK_KEY = 0x4E4F45544C5251  # serialises concurrent set-ups of the role


@dataclass(frozen=True, slots=True)
class Reader:
    role: str
    password: str

    def conninfo(self, server_url: str) -> str:
        """The server's own connection target, logging in as the reader instead."""
        return pg_conninfo.make_conninfo(server_url, user=self.role, password=self.password)


def reader_role_name(database: str) -> str:
    # Roles are cluster-wide; one per database keeps two NoETL databases on a cluster apart.
    return ("noetl_sql_" + re.sub(r"[^a-z0-9_]", "_", database.lower()))[:63]


async def ensure_reader(conn: psycopg.AsyncConnection) -> Reader:
    """Create (or repair) the reader role and its grants; needs CREATEROLE (or superuser)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute("CREATE TABLE IF NOT EXISTS noetl.sql_reader ("
                           " role TEXT PRIMARY KEY, password TEXT NOT NULL)")
        await conn.execute("REVOKE ALL ON noetl.sql_reader FROM PUBLIC")
        database = str((await (await conn.execute("SELECT current_database()")).fetchone() or [""])[0])
        role = reader_role_name(database)
        stored = await (await conn.execute("SELECT password FROM noetl.sql_reader WHERE role = %s", (role,))).fetchone()
        exists = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))).fetchone()
        password = stored[0] if stored and exists else secrets.token_urlsafe(24)
        ident = sql.Identifier(role)
        if not exists:
            await conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                                       "PASSWORD {}").format(ident, sql.Literal(password)))
        elif not stored:
            await conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password)))
        await conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident))
        await conn.execute(sql.SQL("GRANT USAGE ON SCHEMA noetl TO {}").format(ident))
        await conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA noetl TO {}").format(ident))
        owner = await (await conn.execute("SELECT nspowner::regrole::text FROM pg_namespace "
                                          "WHERE nspname = 'noetl'")).fetchone()
        owner_role = sql.SQL(owner[0] if owner else "CURRENT_USER")
        # Tables NoETL's role creates later (new migrations) are readable too.
        await conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA noetl GRANT SELECT ON TABLES TO {}")
                           .format(owner_role, ident))
        await _grant_user_tables(conn, ident, owner_role)
        for table in _HIDDEN_TABLES:
            await conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier("noetl", table), ident))
        # Owned by the schema's owner (NoETL's role) even when a superuser ran the set-up.
        await conn.execute(sql.SQL("ALTER TABLE noetl.sql_reader OWNER TO {}").format(owner_role))
        await conn.execute("INSERT INTO noetl.sql_reader (role, password) VALUES (%s, %s) "
                           "ON CONFLICT (role) DO UPDATE SET password = EXCLUDED.password", (role, password))
    return Reader(role, password)


async def _grant_user_tables(conn: psycopg.AsyncConnection, reader: sql.Identifier, owner_role: sql.Composable) -> None:
    """The tables NoETL's role owns in the database's ``public`` schema (those its playbooks write)
    are readable too, so the guides' checks (``noetl query "SELECT ... FROM
    public.traveler_batch_results" --schema public``) run as printed; new ones are readable when
    NoETL's role creates them."""
    if not await (await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")).fetchone():
        return
    await conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(reader))
    # Only NoETL's role's own tables: in a database shared with other applications, theirs stay theirs.
    cursor = await conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relowner ="
                                " (SELECT nspowner FROM pg_namespace WHERE nspname = 'noetl')")
    for (table,) in await cursor.fetchall():
        await conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier("public", table), reader))
    await conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}")
                       .format(owner_role, reader))


async def find_reader(conn: psycopg.AsyncConnection) -> Reader | None:
    """The reader of this database, when ``ensure_reader`` has made it."""
    database = str((await (await conn.execute("SELECT current_database()")).fetchone() or [""])[0])
    try:
        cursor = await conn.execute("SELECT role, password FROM noetl.sql_reader WHERE role = %s",
                                    (reader_role_name(database),))
    except psycopg.errors.UndefinedTable:
        return None
    row = await cursor.fetchone()
    return Reader(row[0], row[1]) if row else None


async def server_role_is_privileged(conn: psycopg.AsyncConnection) -> bool:
    """Superuser, or a member of a role that reads or runs things on the database host."""
    cursor = await conn.execute(
        "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_server_files', 'USAGE')"
        " OR pg_has_role(current_user, 'pg_write_server_files', 'USAGE')"
        " OR pg_has_role(current_user, 'pg_execute_server_program', 'USAGE')"
        " OR pg_has_role(current_user, 'pg_signal_backend', 'USAGE')"
        " FROM pg_roles WHERE rolname = current_user")
    row = await cursor.fetchone()
    return bool(row and row[0])


async def try_ensure_reader(store: Any) -> Reader | None:
    """``ensure_reader`` on a store connection; None when this role may not create roles."""
    try:
        async with store.connection() as conn:
            return await ensure_reader(conn)
    except psycopg.errors.InsufficientPrivilege:
        return None
