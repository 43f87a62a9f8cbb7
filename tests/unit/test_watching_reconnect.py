"""A watcher of an execution on a server (`status --watch`, `logs --follow`, `exec --wait`) waits
for a server that went away, and gives up with one line once the wait is over."""

from __future__ import annotations

import asyncio

import pytest
from support.pgcluster import free_port

from noetl.cli.remote import ServerUnreachable
from noetl.cli.watching import RemoteFeed


def test_a_server_that_stays_away_is_given_up_with_one_warning_and_one_error(capsys: pytest.CaptureFixture[str]) -> None:
    feed = RemoteFeed(f"http://127.0.0.1:{free_port()}", "42", reconnect_seconds=0.5)  # nothing listens there
    with pytest.raises(ServerUnreachable, match="cannot reach the NoETL server at http://127.0.0.1:"):
        asyncio.run(feed.status())
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: cannot reach the NoETL server")
    assert warnings[0].endswith("trying again for 0.5 s")
