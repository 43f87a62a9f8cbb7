"""The tool kinds a playbook can name: the one list of them.

For each kind: where its implementation lives, the fields it takes, the fields it cannot run
without, the fields that are never rendered as templates, and how its pooled resources are closed
at shutdown. The validator, the runner, the tool loader, `noetl schema` and shutdown all read this
table, so adding a tool means adding one entry here.

It is plain data (no imports of the tools themselves): the DSL checks stay pure, and a tool's heavy
client library is only imported when a playbook runs it.
"""

from __future__ import annotations

from typing import NamedTuple


class ToolKind(NamedTuple):
    kind: str
    # "module:function" of the implementation; None when the runner or the engine handles the kind.
    runner: str | None
    fields: frozenset[str]
    # A task needs at least one of these (empty: nothing required).
    required: tuple[str, ...] = ()
    # "module:function" of an async closer for pooled clients / processes, called at shutdown.
    closer: str | None = None
    # The pip extra that provides an optional client library, named in "not installed" errors.
    extra: str | None = None
    # Fields the tool renders itself, as the runner would not (shell quotes values into commands).
    self_rendered: frozenset[str] = frozenset()
    # `name` is the tool's own field (the entry, artifact or secret it names), not the task's name.
    takes_name: bool = False


# Keys every task may carry, whatever its kind.
COMMON_TOOL_KEYS = frozenset({"kind", "type", "name", "spec", "desc", "description", "timeout", "input", "args",
                              "with", "auth", "retry", "set", "output"})

# Not templates at all: python code reaches values through `input`, never through rendering.
CODE_FIELDS = frozenset({"code", "code_b64"})
# Not rendered before a task runs: `spec` holds policies and `set` values evaluated after the task.
UNRENDERED_FIELDS = CODE_FIELDS | {"spec", "kind", "name", "set"}

_SQL_FIELDS = ("command", "query", "sql", "command_b64", "script", "commands")  # commands: v1's name

TOOL_KINDS: dict[str, ToolKind] = {k.kind: k for k in (
    ToolKind("noop", "noetl.tools.noop:run_noop", frozenset({"result", "data"})),
    ToolKind("python", "noetl.tools.python:run_python",
             frozenset({"code", "code_b64", "script", "libs", "data", "isolation", "credentials", "env"}),
             required=("code", "code_b64", "script"), closer="noetl.tools.python:shutdown_python_pool"),
    ToolKind("shell", "noetl.tools.shell:run_shell", frozenset({"cmds", "command", "command_b64", "env", "cwd"}),
             required=("cmds", "command", "command_b64", "args"), self_rendered=frozenset({"command", "cmds"})),
    ToolKind("http", "noetl.tools.http:run_http",
             frozenset({"method", "url", "endpoint", "headers", "params", "json", "body", "data", "verify_ssl",
                        "follow_redirects", "payload", "credential", "timeout_seconds"}),
             required=("url", "endpoint"), closer="noetl.tools.http:close_http_clients"),
    ToolKind("postgres", "noetl.tools.postgres:run_postgres",
             frozenset({"connection", *_SQL_FIELDS, "params", "credentials", "credential", "database"}),
             required=_SQL_FIELDS, closer="noetl.tools.postgres:close_postgres_pools"),
    ToolKind("duckdb", "noetl.tools.duckdb:run_duckdb",
             frozenset({"database", *_SQL_FIELDS, "credentials", "credential", "params"}), required=_SQL_FIELDS),
    ToolKind("secrets", "noetl.tools.secrets:run_secrets",
             frozenset({"provider", "secret_name", "key", "project", "project_id", "version", "region", "field",
                        "url", "mount_point", "token"}),
             required=("secret_name", "name", "key"), takes_name=True),
    ToolKind("artifact", "noetl.tools.artifact:run_artifact", frozenset({"action", "data", "path", "result_ref"}),
             takes_name=True),
    ToolKind("transfer", "noetl.tools.transfer:run_transfer", frozenset({"source", "target", "chunk_size"})),
    # Handled by the runner / engine rather than a tool function:
    ToolKind("playbook", None, frozenset({"path", "version", "payload", "return_step", "data", "result_step",
                                          "return_result"}),
             required=("path",)),
    ToolKind("workbook", None, frozenset({"data", "task"}), required=("name",), takes_name=True),  # task: alias of name
    ToolKind("sink", None, frozenset({"tool", "table", "mode", "key", "data", "database", "create", "columns",
                                      "connection", "credentials"})),
)}

KNOWN_KINDS = frozenset(TOOL_KINDS)

# Older playbooks name a tool with `type:` on the step; these names are read that way (`playbooks`,
# `iterator` and `router` (a routing-only step) are legacy spellings normalised elsewhere, `snowflake`
# is recognised so that it gets a clear "unknown tool kind" error rather than being taken for a step field).
ROUTER_KIND = "router"  # older playbooks' name for a routing-only step (`tool: router`)
# Every name older playbooks give a routing-only step: `type: start` / `type: end` mark the ends
# of a v1 workflow and call no tool either.
ROUTING_KINDS = frozenset({ROUTER_KIND, "start", "end"})
LEGACY_TYPE_NAMES = KNOWN_KINDS - {"sink"} | {"playbooks", "iterator", "snowflake"} | ROUTING_KINDS
# A v1 `save:` whose storage is the event log writes nowhere else: its data is recorded as a result.
EVENT_LOG_STORAGE = frozenset({"event_log", "event"})

# The kinds of a `keychain:` entry (noetl/secrets.py resolves them; `secret` is an older name of
# `secret_manager`). An entry without `kind` (or `type`) is `static`.
KEYCHAIN_KINDS = ("credential", "bearer", "static", "secret_manager", "oauth2")
KEYCHAIN_KIND_ALIASES = frozenset({"secret"})
