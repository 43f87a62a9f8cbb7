"""Big bodies sent to a server: a playbook too big to validate in time stops being validated (the
server's CPU returns to idle), and a playbook validated in a process of its own registers as any
other, in a process that never holds the server's environment."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.waiting import until
from test_distributed_cluster import Cluster, create_database

from noetl.server.validating import IN_PROCESS_BYTES


@pytest.fixture(scope="module")
def server(pg_cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(create_database(pg_cluster), tmp_path_factory.mktemp("heavy"))
    try:
        cluster.start_server()
        yield cluster
    finally:
        cluster.close()


def _playbook(steps: int, path: str) -> str:
    body = "".join(
        f"  - step: s{i}\n"
        f"    tool: {{kind: python, input: {{a: \"{{{{ s{max(i - 1, 0)}.x }}}} {{{{ workload.y | default('z') }}}}\"}},"
        f" code: \"result = 1\"}}\n"
        f"    next: [{{step: s{i + 1}}}]\n" for i in range(steps))
    return (f"apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {{name: heavy, path: {path}}}\nworkflow:\n"
            f"{body}  - step: s{steps}\n    tool: {{kind: noop}}\n")


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            found += [int(child) for child in children]
            queue += [int(child) for child in children]
    return found


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by ``pid`` and the processes it started (gone ones included)."""
    total = 0.0
    for each in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return total


def _idle(pid: int) -> bool:
    before = _cpu_seconds(pid)
    time.sleep(2)
    return _cpu_seconds(pid) - before < 0.5  # a core kept busy spends 2 s in 2 s


@pytest.mark.slow
def test_a_playbook_that_takes_too_long_to_validate_stops_being_validated(server: Cluster) -> None:
    text = _playbook(40_000, "tests/heavy")  # ~6 MB: minutes of validation
    response = server.client.post("/api/catalog/register", json={"content": text}, timeout=120)
    assert response.status_code == 400, response.text
    assert "validating the playbook took longer than 10 s" in response.text
    assert server.server is not None
    until("the server's CPU to return to idle", lambda: _idle(server.server.pid), seconds=30)
    assert server.client.get("/api/health").status_code == 200


def test_a_big_playbook_is_validated_in_a_process_without_the_servers_environment(server: Cluster) -> None:
    text = "# " + "padding " * (IN_PROCESS_BYTES // 8) + "\n" + _playbook(20, "tests/big_valid")
    assert len(text) > IN_PROCESS_BYTES
    response = server.client.post("/api/catalog/register", json={"content": text}, timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "tests/big_valid"
    broken = text.replace("kind: noop", "kind: nope")
    refused = server.client.post("/api/catalog/register", json={"content": broken}, timeout=120)
    assert refused.status_code == 422 and "unknown tool kind 'nope'" in refused.text, refused.text
    assert server.server is not None
    validators = [pid for pid in _descendants(server.server.pid)
                  if b"serve_validator" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert validators, "no validator process kept for the next registration"
    for pid in validators:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except PermissionError:  # hidden from other processes as well (only root reads it)
            continue
        names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
        assert names <= {"PATH", "HOME", "LANG", "TZ"}, names


def test_a_big_body_is_parsed_once_and_never_on_the_event_loop(
        pg_cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI parsed every JSON body again on the event loop, after the guard had checked it (a
    parse holds the interpreter: no other client is answered meanwhile); the routes read the body
    the guard parsed. Figures: bench/results/big_payload.md."""
    import json
    import threading

    from test_hostile_input_properties import LiveApp

    live = LiveApp(create_database(pg_cluster))
    on_the_loop: list[int] = []
    real_loads = json.loads

    def loads(text: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is live.thread and len(text) > 64 * 1024:
            on_the_loop.append(len(text))
        return real_loads(text, *args, **kwargs)

    try:
        registered = live.post("/api/catalog/register", json={"content": _playbook(2, "tests/heavy_payload")})
        assert registered.status_code == 200, registered.text
        monkeypatch.setattr(json, "loads", loads)
        items = list(range(200_000))
        started = live.post("/api/execute", json={"path": "tests/heavy_payload", "payload": {"items": items}})
        assert started.status_code == 200, started.text
        execution = live.get(f"/api/executions/{started.json()['execution_id']}")
        assert execution.status_code == 200, execution.text
        assert on_the_loop == [], on_the_loop
    finally:
        monkeypatch.undo()
        live.close()


def test_a_credential_sent_as_yaml_is_bounded_in_size(server: Cluster) -> None:
    """A credential's YAML text was composed on the event loop, whatever its size (10 MB: most of a
    minute in which no other client was answered)."""
    small = "name: heavy_cred\ntype: bearer\ndata: {token: tok-123}\n"
    stored = server.client.post("/api/credentials", json=small)
    assert stored.status_code == 200 and stored.json()["name"] == "heavy_cred", stored.text
    huge = small + "description: |\n" + "  padding line\n" * 80_000
    refused = server.client.post("/api/credentials", json=huge, timeout=120)
    assert refused.status_code == 400, refused.text
    assert f"the YAML text has {len(huge):,} characters; a credential's may have 1,048,576 at most" in refused.text
