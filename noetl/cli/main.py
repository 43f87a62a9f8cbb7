"""`noetl`: run, validate and inspect playbooks; manage the catalog, credentials and the runtime.

This module only assembles: it says which module registers each command on the click group of
`noetl.cli.app`. A command's module is imported when that command is used (see LazyGroup), so
adding a command here costs `noetl run` nothing.
"""

from __future__ import annotations

from noetl.cli.app import cli, fail
from noetl.errors import PlaybookError

COMMAND_MODULES = {
    "noetl.cli.running": ("run", "exec"),
    "noetl.cli.checks": ("validate", "migrate", "schema"),
    "noetl.cli.control": ("status", "events", "cancel"),
    "noetl.cli.catalog": ("catalog", "register", "credential", "playbooks", "execute"),
    "noetl.cli.distributed": ("server", "worker", "db", "query"),
    "noetl.cli.demo": ("demo",),
    "noetl.cli.ui": ("ui",),
    "noetl.cli.watching": ("executions", "logs"),
    "noetl.cli.result": ("result",),
    "noetl.cli.prune": ("prune",),
    "noetl.cli.recovery": ("rerun", "resume"),
    "noetl.cli.schedules": ("schedule", "scheduler"),
    "noetl.cli.hooks": ("hook",),
    "noetl.cli.triggers": ("trigger",),
}
for _module, _names in COMMAND_MODULES.items():
    cli.lazy.update(dict.fromkeys(_names, _module))  # type: ignore[attr-defined]


def main() -> None:
    try:
        cli.main(prog_name="noetl", standalone_mode=True)
    except PlaybookError as exc:  # pragma: no cover - handled per command
        fail(str(exc))


if __name__ == "__main__":
    main()
