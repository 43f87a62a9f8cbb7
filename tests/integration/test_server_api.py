"""The REST server in-process (the ASGI app behind httpx, on a real PostgreSQL): /metrics, the
events listing, and POST /api/events with good and malformed bodies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from test_distributed_cluster import create_database

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.runtime.distributed import DecisionCore
from noetl.server.app import create_app
from noetl.server.state import ServerConfig
from noetl.store.postgres import PostgresStore
from noetl.store.postgres.queue import CommandQueue, LeasedCommand

LOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: loop, path: tests/api_loop}
workload: {n: 5}
workflow:
  - step: start
    loop: {in: "{{ range(workload.n) | list }}", iterator: i, spec: {mode: parallel, max_in_flight: 10}}
    tool: {kind: noop}
"""


@pytest.fixture
def url(pg_cluster: dict[str, Any]) -> str:
    return create_database(pg_cluster)


Scenario = Callable[[httpx.AsyncClient, FastAPI], Awaitable[None]]


def served(url: str, scenario: Scenario) -> None:
    """Run ``scenario(client, app)`` against a started app (lifespan included) with LOOP registered."""

    async def main() -> None:
        app = create_app(ServerConfig(database_url=url, reap_interval=0.05))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://noetl.test") as client:
            response = await client.post("/api/catalog/register", json={"content": LOOP})
            assert response.status_code == 200, response.text
            await scenario(client, app)

    asyncio.run(main())


async def start(client: httpx.AsyncClient, n: int = 5) -> str:
    response = await client.post("/api/execute", json={"path": "tests/api_loop", "payload": {"n": n}})
    assert response.status_code == 200, response.text
    return str(response.json()["execution_id"])


@contextlib.asynccontextmanager
async def core_on(url: str, owner: str = "test-worker") -> AsyncIterator[DecisionCore]:
    async with PostgresStore(url) as store:
        yield DecisionCore(store, owner=owner)


async def lease(url: str, n: int) -> list[LeasedCommand]:
    async with core_on(url) as core:
        return await CommandQueue(core.store).lease(owner="ext", limit=n, lease_seconds=30, now=core.now())


def report(leased: LeasedCommand, *, duration: float, ok: bool = True) -> Event:
    meta = {"command_id": leased.command_id, "attempt": leased.attempt, "worker": leased.lease_owner,
            "loop_index": leased.payload["loop_index"], "duration": duration}
    if ok:
        return Event(leased.execution_id, ev.CALL_DONE, node_name=leased.step, status="completed", result=1, meta=meta)
    return Event(leased.execution_id, ev.CALL_ERROR, node_name=leased.step, status="failed",
                 error={"kind": "boom", "message": "boom"}, meta=meta)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def metrics(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


COMPLETED, FAILED = (("status", "completed"),), (("status", "failed"),)


def test_metrics_report_executions_queue_leases_and_step_runs(url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        execution_id = await start(client)
        before = await metrics(client)
        assert before[("noetl_executions", (("status", "running"),))] == 1
        assert before[("noetl_executions", (("status", "completed"),))] == 0
        assert before[("noetl_queue_commands", (("status", "queued"),))] == 5
        assert before[("noetl_steps_total", COMPLETED)] == 0
        assert before[("noetl_database_up", ())] == 1

        leased = await lease(url, 5)
        during = await metrics(client)
        assert during[("noetl_queue_commands", (("status", "leased"),))] == 5
        assert during[("noetl_oldest_lease_age_seconds", ())] >= 0

        async with core_on(url) as core:
            for command, duration in zip(leased, [0.0005, 0.02, 0.02, 3.0], strict=False):
                assert await core.report(command, report(command, duration=duration))
            assert await core.report(leased[4], report(leased[4], duration=0.2, ok=False))
            await core.stats.flush(core.store, core.now())

        after = await metrics(client)
        assert after[("noetl_steps_total", COMPLETED)] == 4 and after[("noetl_steps_total", FAILED)] == 1
        assert after[("noetl_step_duration_seconds_count", COMPLETED)] == 4
        assert after[("noetl_step_duration_seconds_sum", COMPLETED)] == pytest.approx(3.0405)
        assert after[("noetl_step_duration_seconds_bucket", (("le", "0.001"), *COMPLETED))] == 1
        assert after[("noetl_step_duration_seconds_bucket", (("le", "0.025"), *COMPLETED))] == 3
        assert after[("noetl_step_duration_seconds_bucket", (("le", "+Inf"), *COMPLETED))] == 4
        assert after[("noetl_step_duration_seconds_bucket", (("le", "0.25"), *FAILED))] == 1
        assert after[("noetl_executions", (("status", "failed"),))] == 1  # one iteration failed
        assert after[("noetl_queue_commands", (("status", "leased"),))] == 0
        status = await client.get(f"/api/executions/{execution_id}/status")
        assert status.json()["status"] == "failed"

    served(url, scenario)


def call_done(execution_id: str, command: LeasedCommand, **extra: Any) -> dict[str, Any]:
    return {"execution_id": execution_id, "event_type": "call.done", "node_name": command.step, "result": 7,
            "meta": {"command_id": command.command_id, "attempt": command.attempt, "worker": command.lease_owner},
            **extra}


def test_events_listing_in_pages_with_after_id_and_limit(url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        execution_id = await start(client, 3)
        for command in await lease(url, 3):
            response = await client.post("/api/events", json=call_done(execution_id, command))
            assert response.json()["accepted"] is True
        app.state.noetl.store.event_page = 2  # several pages per listing

        async def listing(**params: Any) -> list[dict[str, Any]]:
            response = await client.get(f"/api/executions/{execution_id}/events", params=params)
            assert response.status_code == 200, response.text
            return list(response.json())

        everything = await listing()
        assert [e["event_id"] for e in everything] == list(range(1, len(everything) + 1))
        assert len(everything) > 6 and everything[-1]["event_type"] == "playbook.completed"
        assert await listing(after_id=2, limit=5) == everything[2:7]
        assert await listing(limit=1) == everything[:1]
        assert await listing(after_id=99) == []
        status = (await client.get(f"/api/executions/{execution_id}/status")).json()
        assert status["status"] == "completed" and status["steps"]["start"]["result"]["results"] == [7, 7, 7]

    served(url, scenario)


def test_execution_state_is_its_status_and_last_event_id_for_watchers(url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        execution_id = await start(client, 2)

        async def state() -> dict[str, Any]:
            response = await client.get(f"/api/executions/{execution_id}/state")
            assert response.status_code == 200, response.text
            return dict(response.json())

        async def last_event_id() -> int:
            events = (await client.get(f"/api/executions/{execution_id}/events")).json()
            return int(events[-1]["event_id"])

        running = await state()
        assert running == {"execution_id": execution_id, "status": "running",
                           "last_event_id": await last_event_id(), "ended_at": None}
        for command in await lease(url, 2):
            assert (await client.post("/api/events", json=call_done(execution_id, command))).json()["accepted"]
        ended = await state()
        doc = (await client.get(f"/api/executions/{execution_id}")).json()
        assert ended == {"execution_id": execution_id, "status": "completed", "last_event_id": await last_event_id(),
                         "ended_at": doc["ended_at"]} and doc["ended_at"]
        missing = await client.get("/api/executions/424242/state")
        assert missing.status_code == 404 and "424242" in missing.json()["error"]

    served(url, scenario)


def test_posted_events_are_checked_against_the_command_they_report(url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        execution_id = await start(client, 2)
        first, second = sorted(await lease(url, 2), key=lambda c: c.payload["loop_index"])
        good = call_done(execution_id, first, name="call.done")  # seed 002 spells event_type `name`
        del good["event_type"]
        good["execution_id"] = int(execution_id)  # a number is an id too
        good["meta"]["loop_index"] = 0
        bad: list[tuple[Any, int]] = [
            ("not an object", 422),
            ([good], 422),
            ({**good, "execution_id": [1]}, 422),
            ({**good, "execution_id": 1.5}, 422),
            ({**good, "meta": "x"}, 422),
            ({**good, "error": 3}, 422),
            ({"execution_id": execution_id}, 400),
            ({**good, "name": "step.exit"}, 400),
            ({**good, "meta": {**good["meta"], "attempt": True}}, 400),
            ({**good, "meta": {**good["meta"], "attempt": 0}}, 400),
            ({**good, "meta": {"command_id": first.command_id, "attempt": 1}}, 400),
            ({**good, "node_name": "elsewhere"}, 400),
            ({**good, "meta": {**good["meta"], "loop_index": 1}}, 400),
            ({**good, "meta": {**good["meta"], "command_id": "nope"}}, 404),
            ({**good, "execution_id": "123"}, 404),
            ({"name": "workflow.start"}, 400),
            ({"name": "workflow.start", "path": "no/such"}, 404),
        ]
        for body, expected in bad:
            response = await client.post("/api/events", json=body)
            assert response.status_code == expected, (body, response.text)
            assert "error" in response.json()
        nan = (b'{"execution_id": %s, "type": "call.done", "result": NaN, "meta": {"command_id": "%s", '
               b'"attempt": 1, "worker": "ext"}}') % (execution_id.encode(), first.command_id.encode())
        response = await client.post("/api/events", content=nan, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and "JSON" in response.json()["error"], response.text

        assert (await client.post("/api/events", json=good)).json()["accepted"] is True
        assert (await client.post("/api/events", json=good)).json()["accepted"] is False  # a duplicate
        stolen = call_done(execution_id, second)
        stolen["meta"]["worker"] = "someone-else"
        assert (await client.post("/api/events", json=stolen)).json()["accepted"] is False
        response = await client.post("/api/v2/events", json={"execution_id": execution_id, "type": "execution.cancelled",
                                                             "error": {"message": "enough"}})
        assert response.json()["status"] == "cancelled" and response.json()["cancelled"] is True
        events = (await client.get(f"/api/executions/{execution_id}/events")).json()
        assert [e["event_type"] for e in events].count("call.done") == 1

    served(url, scenario)


def test_worker_reports_are_checked_against_the_command_they_report(url: str) -> None:
    """A worker's report (POST /api/workers/report) files a call's outcome under the command's own
    step and iteration: another event type was a 500 (or, `execution.cancelled`, ended the
    execution), and a report naming another iteration counted that one twice and left the loop
    running for ever."""
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        execution_id = await start(client, 2)
        leased = await client.post("/api/workers/lease", json={"worker": "api-worker", "limit": 2})
        first, second = sorted(leased.json()["commands"], key=lambda c: c["payload"]["loop_index"])

        async def report(command: dict[str, Any], **event: Any) -> httpx.Response:
            body = {"execution_id": execution_id, "event_type": "call.done", "node_name": command["step"],
                    "status": "completed", "result": 1,
                    "meta": {"command_id": command["command_id"], "loop_index": command["payload"]["loop_index"]},
                    **event}
            return await client.post("/api/workers/report", json={
                "worker": "api-worker", "command_id": command["command_id"], "attempt": command["attempt"],
                "event": body})

        for wrong in ({"event_type": "execution.cancelled"}, {"event_type": "workflow.completed"},
                      {"event_type": "x.y"}, {"node_name": "elsewhere"},
                      {"meta": {"command_id": second["command_id"], "loop_index": 0}}):
            command = second if "meta" in wrong else first
            response = await report(command, **wrong)
            assert response.status_code == 400, (wrong, response.text)
            assert "\n" not in response.json()["error"]
        status = (await client.get(f"/api/executions/{execution_id}/status")).json()
        assert status["status"] == "running", status
        assert (await report(first)).json()["recorded"] is True
        assert (await report(second)).json()["recorded"] is True
        status = (await client.get(f"/api/executions/{execution_id}/status")).json()
        assert status["status"] == "completed", status
        assert status["steps"]["start"]["result"]["stats"] == {"total": 2, "success": 2, "failed": 0}

    served(url, scenario)


def test_workflow_start_event_starts_an_execution_once(url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        body = {"execution_id": "2002", "name": "workflow.start", "path": "tests/api_loop", "payload": {"n": 1}}
        started = (await client.post("/api/v2/events", json=body)).json()
        assert started["accepted"] is True and started["execution_id"] == "2002"
        assert started["status"] == "processed" and started["commands_generated"] == 1
        again = (await client.post("/api/v2/events", json=body)).json()
        assert again["accepted"] is False and again["execution_status"] == "running"
        assert again["commands_generated"] == 0
        status = (await client.get("/api/executions/2002/status")).json()
        assert status["execution_id"] == "2002" and status["steps"]["start"]["status"] == "running"
        text_id = await client.post("/api/v2/events", json={**body, "execution_id": "seed-002-run"})
        assert text_id.status_code == 400 and "not an execution id" in text_id.json()["error"]

    served(url, scenario)


TEMPLATES = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: api_templates, path: tests/api_templates}
workflow:
  - step: start
    input: {v: "{{ no_such_value }}", later: "{{ (9**9)**(9**9) if no_such_value else 1 }}"}
    tool: {kind: noop}
"""


@pytest.mark.timeout(60)
def test_templates_on_the_server_strict_lenient_and_bombs(url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        response = await client.post("/api/catalog/register", json={"content": TEMPLATES})
        assert response.status_code == 200, response.text  # validation parses, never evaluates

        lenient = await client.post("/api/execute", json={"path": "tests/api_templates"})
        doc = (await client.get(f"/api/executions/{lenient.json()['execution_id']}/status")).json()
        assert doc["warnings"] == [{"step": "start", "field": "input.v",
                                    "message": "'no_such_value' is undefined in '{{ no_such_value }}'"},
                                   {"step": "start", "field": "input.later", "message":
                                    "'no_such_value' is undefined in '{{ (9**9)**(9**9) if no_such_value else 1 }}'"}]

        strict = await client.post("/api/execute", json={"path": "tests/api_templates", "strict": True})
        assert strict.status_code == 200, strict.text
        doc = (await client.get(f"/api/executions/{strict.json()['execution_id']}/status")).json()
        assert doc["status"] == "failed"
        assert "step 'start' input.v: 'no_such_value' is undefined in '{{ no_such_value }}'" in doc["error"]

        bomb = TEMPLATES.replace("if no_such_value else 1", "").replace("api_templates", "api_bomb")
        assert (await client.post("/api/catalog/register", json={"content": bomb})).status_code == 200
        started = await client.post("/api/execute", json={"path": "tests/api_bomb"})
        doc = (await client.get(f"/api/executions/{started.json()['execution_id']}/status")).json()
        assert doc["status"] == "failed" and "bits" in doc["error"] and "\n" not in doc["error"]

    served(url, scenario)


def test_executions_listing_filters_by_path_and_time_and_pages(url: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        first, second = await start(client, 1), await start(client, 1)

        async def listing(**params: Any) -> list[str]:
            response = await client.get("/api/executions", params=params)
            assert response.status_code == 200, response.text
            return [str(row["execution_id"]) for row in response.json()]

        assert await listing(path="API_LOOP") == [second, first]
        assert await listing(path="api_loop", limit=1, offset=1) == [first]
        assert await listing(path="no/such/path") == []
        assert await listing(path="api_loop", since="2999-01-01") == []
        assert await listing(path="api_loop", since="2000-01-01T00:00:00Z") == [second, first]
        bad = await client.get("/api/executions", params={"since": "yesterday-ish"})
        assert bad.status_code == 400 and "ISO date/time" in bad.text

    served(url, scenario)
