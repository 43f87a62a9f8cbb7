"""`noetl`: run, validate and inspect playbooks; manage the catalog, credentials and the runtime.

This module only assembles the command modules onto the click group of `noetl.cli.app`.
"""

from __future__ import annotations

from noetl.cli import catalog, checks, control, demo, distributed, running  # noqa: F401  (register commands)
from noetl.cli.app import cli, fail
from noetl.errors import PlaybookError

catalog.install(cli)
distributed.install(cli)
demo.install(cli)


def main() -> None:
    try:
        cli.main(prog_name="noetl", standalone_mode=True)
    except PlaybookError as exc:  # pragma: no cover - handled per command
        fail(str(exc))


if __name__ == "__main__":
    main()
