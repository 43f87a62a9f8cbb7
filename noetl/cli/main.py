"""`noetl`: run, validate and inspect playbooks; manage the catalog, credentials and the runtime.

This module only assembles: it says which module registers each command on the click group of
`noetl.cli.app`. A command's module is imported when that command is used (see LazyGroup), so
adding a command here costs `noetl run` nothing.
"""

from __future__ import annotations

import atexit
import gc
import sys
from typing import TYPE_CHECKING

from noetl.cli.startup import long_lived_imports

with long_lived_imports():  # click and the modules every command uses (see noetl.cli.startup)
    from noetl.cli.app import EXIT_FAILED, cli, fail
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
if TYPE_CHECKING:
    import click

for _module, _names in COMMAND_MODULES.items():
    cli.lazy.update(dict.fromkeys(_names, _module))  # type: ignore[attr-defined]


def main() -> None:
    import click

    # On exit the interpreter tears every module down and then collects the reference cycles left:
    # about 30 M instructions (10 ms, a fifteenth) of a short `noetl run`, spent on objects the
    # process drops anyway. Freezing the heap in an exit handler skips that collection. Threads are
    # still waited for, every exit handler runs, stdout and stderr are flushed and objects freed by
    # reference count are finalized; only objects in a cycle at exit are not (Python does not
    # promise finalizers at exit for objects alive then).
    atexit.register(gc.freeze)
    try:
        code = cli.main(prog_name="noetl", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `noetl`, `noetl schedule`: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # a bad option or argument: one line, like every other error
        fail(usage_error_line(exc))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl-C at a prompt
        fail("interrupted", EXIT_FAILED)
    except PlaybookError as exc:  # pragma: no cover - handled per command
        fail(str(exc))
    sys.exit(code if isinstance(code, int) else 0)  # --help and --version return their exit code


def usage_error_line(exc: click.UsageError) -> str:
    """Click's message without its usage block, with the command whose --help says more."""
    message = " ".join(exc.format_message().split())
    if exc.ctx is None:
        return message
    return f"{message} (see {exc.ctx.command_path} --help)"


if __name__ == "__main__":
    main()
