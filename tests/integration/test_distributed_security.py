"""SPEC section 20 on a real deployment (server + workers + PostgreSQL): tool environments, logs,
graceful shutdown and child-call policy."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.security import FIXTURES, assert_nothing_contains, assert_tools_saw_only_what_the_playbook_passed
from test_distributed_cluster import Cluster, clusters, create_database

API_TOKEN = "cluster-api-token-value"


@pytest.fixture
def cluster_factory(pg_cluster: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    yield from clusters(pg_cluster, tmp_path)


@pytest.fixture(scope="module")
def plain_cluster(pg_cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A deployment with default settings (server and one worker) shared by the module's tests that need
    nothing else: each registers its own playbooks and looks only at its own executions."""
    for make in clusters(pg_cluster, tmp_path_factory.mktemp("security")):
        cluster = make()
        cluster.start_server()
        cluster.start_worker("w1")
        yield cluster


def _secrets(cluster: Cluster, pg_cluster: dict[str, Any]) -> list[str]:
    return [cluster.env["NOETL_SECRET_KEY"], API_TOKEN, pg_cluster["password"]]


def test_worker_tools_see_only_the_safe_list_and_settings_are_redacted(
    cluster_factory: Any, pg_cluster: dict[str, Any]
) -> None:
    cluster = cluster_factory(env={"NOETL_API_TOKEN": API_TOKEN})
    cluster.start_server()
    cluster.start_worker("w1")
    cluster.register((FIXTURES / "tool_environment.yaml").read_text())
    execution_id = cluster.execute("tests/security/tool_environment")
    doc = cluster.wait(execution_id)
    assert_tools_saw_only_what_the_playbook_passed(doc)
    assert "NOETL_DATABASE_URL=***" in doc["steps"]["python_thread"]["result"]["child"]
    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    rows = cluster.sql("select result::text, error::text from noetl.event where execution_id = %s",
                       int(execution_id))
    assert_nothing_contains(_secrets(cluster, pg_cluster), doc, events, [list(r) for r in rows],
                            cluster.log("w1"), cluster.log("server"))


LOGGING_KEY = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: logging_key, path: tests/security/logging_key}
workflow:
  - step: start
    tool:
      kind: python
      input: {key: "{{ secret.PARTNER_API_KEY }}"}
      code: |
        import logging
        # what a partner SDK's logger does with the URL it was given
        logging.getLogger("partner.sdk").warning("GET https://partner.example/v1?api_key=%s", key)
        logging.getLogger("partner.sdk").warning("retrying with key " + key)
        result = {"called": True}
"""


def test_library_log_records_are_redacted_in_the_worker_log(cluster_factory: Any) -> None:
    api_key = "partner-key-for-the-log-test"
    cluster = cluster_factory(env={"PARTNER_API_KEY": api_key})
    cluster.start_server()
    cluster.start_worker("w1")
    cluster.register(LOGGING_KEY)
    doc = cluster.wait(cluster.execute("tests/security/logging_key"))
    assert doc["status"] == "completed", doc["error"]
    log = cluster.log("w1")
    assert "partner.sdk: GET https://partner.example/v1?api_key=***" in log, log
    assert "retrying with key ***" in log
    assert api_key not in log


LONG_STEP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: long_step, path: tests/security/long_step}
workload: {marker: ""}
workflow:
  - step: start
    tool:
      kind: python
      input: {marker: "{{ workload.marker }}"}
      code: |
        import time
        with open(marker, "a") as runs:
            runs.write("run\\n")
        time.sleep(8)
        result = {"slept": True}
"""


def test_sigterm_during_a_long_step_keeps_its_lease_so_it_runs_once(cluster_factory: Any, tmp_path: Path) -> None:
    # A 3 s lease renewed every second: a 1 s one could lapse while a loaded machine stalls the
    # heartbeat, and w2 would run the step again. The step still outlasts the lease more than twice.
    cluster = cluster_factory(lease_seconds=3)
    cluster.start_server()
    cluster.start_worker("w1")
    cluster.register(LONG_STEP)
    marker = tmp_path / "runs.txt"
    execution_id = cluster.execute("tests/security/long_step", {"marker": str(marker)})
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, cluster.log("w1")
        time.sleep(0.05)
    cluster.start_worker("w2")  # ready to take over any lease that lapses
    worker = cluster.workers.pop("w1")
    worker.send_signal(signal.SIGTERM)  # w1 drains: the step has ~8 s to go, the lease is 3 s
    doc = cluster.wait(execution_id)
    assert worker.wait(timeout=30) == 0, cluster.log("w1")
    assert doc["status"] == "completed", doc["error"]
    assert marker.read_text() == "run\n"
    events = cluster.client.get(f"/api/executions/{execution_id}/events").json()
    calls = [e for e in events if e["event_type"] == "call.done" and e["node_name"] == "start"]
    assert [(e["meta"]["worker"], e["meta"]["attempt"]) for e in calls] == [("w1", 1)]


def test_a_worker_whose_heartbeat_dies_stops_with_an_error(pg_cluster: dict[str, Any]) -> None:
    from noetl.errors import WorkerError
    from noetl.runtime.worker import Worker, WorkerOptions

    url = create_database(pg_cluster)

    async def scenario() -> None:
        worker = Worker(url, WorkerOptions(name="w1", poll_interval=0.05, lease_seconds=0.3))

        async def heartbeat_that_dies() -> None:
            await asyncio.sleep(0.2)
            raise RuntimeError("unexpected failure in the heartbeat")

        worker._heartbeat = heartbeat_that_dies  # type: ignore[method-assign]
        await asyncio.wait_for(worker.run(), timeout=15)

    with pytest.raises(WorkerError, match="the heartbeat task died .*RuntimeError: unexpected failure"):
        asyncio.run(scenario())


def _calls(name: str, callee: str) -> str:
    return f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: {name}, path: tests/security/{name}}}
workflow:
  - step: start
    tool: {{kind: playbook, path: tests/security/{callee}}}
"""


def test_a_call_cycle_is_refused_at_once_on_the_distributed_runtime(plain_cluster: Cluster) -> None:
    cluster = plain_cluster
    cluster.register(_calls("cycle_a", "cycle_b"))
    cluster.register(_calls("cycle_b", "cycle_a"))
    doc = cluster.wait(cluster.execute("tests/security/cycle_a"))
    assert doc["status"] == "failed"
    assert ("playbook call cycle: tests/security/cycle_a -> tests/security/cycle_b -> tests/security/cycle_a"
            in str(doc["error"]))
    # A and B, nothing deeper (the deployment's other executions are other playbooks')
    assert cluster.sql("select count(*) from noetl.execution where path like 'tests/security/cycle_%'")[0][0] == 2


CLIMBING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: climbing, path: tests/security/climbing}
workflow:
  - step: start
    tool: {kind: python, script: ../outside.py}
"""


def test_workers_always_confine_paths_to_their_roots(plain_cluster: Cluster) -> None:
    cluster = plain_cluster  # no NOETL_SANDBOX_ROOT: the worker's working directory (its home) is the root
    (cluster.home.parent / "outside.py").write_text("result = {'outside': True}\n")
    cluster.register(CLIMBING)
    doc = cluster.wait(cluster.execute("tests/security/climbing"))
    assert doc["status"] == "failed"
    assert doc["steps"]["start"]["error"]["kind"] == "sandbox", doc["steps"]["start"]


def test_a_strict_execution_is_strict_in_its_child_playbooks(plain_cluster: Cluster) -> None:
    cluster = plain_cluster
    cluster.register(_calls("strict_parent", "lenient_child"))
    cluster.register("""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: lenient_child, path: tests/security/lenient_child}
workflow:
  - step: start
    tool: {kind: noop, result: "value={{ not_defined_anywhere }}"}
""")
    lenient = cluster.wait(cluster.execute("tests/security/strict_parent"))
    assert lenient["status"] == "completed" and lenient["result"] == "value="
    strict = cluster.wait(cluster.execute("tests/security/strict_parent", strict=True))
    assert strict["status"] == "failed"
    assert "'not_defined_anywhere' is undefined" in str(strict["error"])


SETTINGS_AS_SECRETS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: settings_as_secrets, path: tests/security/settings_as_secrets_NAME}
workflow:
  - step: start
    tool:
      kind: shell
      command: 'printf %s "$X" > OUT'
      env: {X: "{{ secret.NAME }}"}
"""


@pytest.mark.parametrize("name", ["NOETL_DATABASE_URL", "KEY", "key", "NOETL_SECRET_KEY"])
def test_a_playbook_cannot_read_noetl_s_own_settings_as_secrets(plain_cluster: Cluster, name: str,
                                                                 tmp_path: Path) -> None:
    """`{{ secret.NAME }}` reads the environment (NAME, then NOETL_SECRET_NAME): it gave anyone who
    may run a playbook the worker's database URL and, as secret.KEY, the key of every credential."""
    cluster, out = plain_cluster, tmp_path / "out"
    cluster.register(SETTINGS_AS_SECRETS.replace("NAME", name).replace("OUT", str(out)))
    doc = cluster.wait(cluster.execute(f"tests/security/settings_as_secrets_{name}"))
    assert doc["status"] == "failed", out.read_text() if out.exists() else doc
    assert f"secret {name!r} not found" in str(doc["error"])
    assert not out.exists()
