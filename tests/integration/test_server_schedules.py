"""Schedules and rerun through the REST API (the app in-process on a real PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from test_server_api import served, start, url  # noqa: F401 - url is a fixture

from noetl.store.postgres import PostgresStore


async def events_of(app: FastAPI, execution_id: str) -> list[Any]:
    store: PostgresStore = app.state.noetl.store
    return await store.list_events(execution_id)


def test_schedules_through_the_api(url: str) -> None:  # noqa: F811
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        bad = await client.post("/api/schedules", json={"path": "tests/api_loop", "cron": "61 * * * *"})
        assert bad.status_code == 400 and "invalid cron expression" in bad.text
        # the body's field, not the command line's --cron
        assert bad.json()["error"].startswith("cron: invalid cron expression '61 * * * *'"), bad.text
        bad_zone = await client.post("/api/schedules", json={"path": "tests/api_loop", "cron": "0 6 * * *",
                                                              "timezone": "Mars/Olympus"})
        assert bad_zone.status_code == 400 and bad_zone.json()["error"].startswith("timezone: unknown time zone")
        missing = await client.post("/api/schedules", json={"path": "no/such", "cron": "0 6 * * *"})
        assert missing.status_code == 404
        assert (await client.get("/api/schedules")).json() == []

        added = await client.post("/api/schedules", json={
            "path": "tests/api_loop", "cron": "0 6 * * *", "timezone": "Europe/Berlin", "payload": {"n": 2},
            "overlap": "allow", "catchup": "none"})
        assert added.status_code == 200, added.text
        assert added.json()["name"] == "tests/api_loop" and added.json()["next_fire"]
        assert [s["name"] for s in (await client.get("/api/schedules")).json()] == ["tests/api_loop"]
        paused = await client.post("/api/schedules/tests/api_loop/pause")
        assert paused.json()["enabled"] is False
        assert (await client.post("/api/schedules/tests/api_loop/resume")).json()["enabled"] is True

        backfill = await client.post("/api/schedules/tests/api_loop/backfill",
                                     json={"from": "2026-06-01T00:00:00Z", "to": "2026-06-02T23:00:00Z"})
        assert backfill.status_code == 200, backfill.text
        rows = backfill.json()
        assert [r["scheduled_for"] for r in rows] == ["2026-06-01T04:00:00+00:00", "2026-06-02T04:00:00+00:00"]
        for row in rows:
            first = (await events_of(app, row["execution_id"]))[0]
            assert first.meta["scheduled_for"] == row["scheduled_for"]
            assert first.meta["schedule"] == "tests/api_loop" and first.result["n"] == 2
        again = await client.post("/api/schedules/tests/api_loop/backfill",
                                  json={"from": "2026-06-01T00:00:00Z", "to": "2026-06-02T23:00:00Z"})
        assert [r["execution_id"] for r in again.json()] == [None, None]  # each fire time runs once
        # A daily schedule over 30 years is more than one backfill walks: refused whole, nothing run.
        too_long = await client.post("/api/schedules/tests/api_loop/backfill",
                                     json={"from": "1990-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"})
        assert too_long.status_code == 400 and "holds more than 10,000 fire times" in too_long.json()["error"]
        fires = (await client.get("/api/schedules/tests/api_loop/fires")).json()
        assert [f["execution_id"] for f in fires] == [rows[1]["execution_id"], rows[0]["execution_id"]]

        # "Run now": one execution at once, even while paused, listed first among the fire times.
        await client.post("/api/schedules/tests/api_loop/pause")
        now = await client.post("/api/schedules/tests/api_loop/trigger")
        assert now.status_code == 200, now.text
        ran = now.json()
        assert (ran["schedule"], ran["status"]) == ("tests/api_loop", "started")
        first = (await events_of(app, ran["execution_id"]))[0]
        assert first.meta["manual"] is True and first.meta["scheduled_for"] == ran["scheduled_for"]
        assert first.result["n"] == 2
        fires = (await client.get("/api/schedules/tests/api_loop/fires")).json()
        assert fires[0]["execution_id"] == ran["execution_id"]
        assert (await client.get("/api/schedules/tests/api_loop")).json()["enabled"] is False
        # The console's Run now button on the server: the same, on the workers.
        button = await client.post("/console/actions/trigger-schedule", json={"name": "tests/api_loop"},
                                   headers={"X-NoETL-Console": "1"})
        assert button.status_code == 200, button.text
        assert (await events_of(app, button.json()["execution_id"]))[0].meta["manual"] is True
        page = (await client.get("/schedules")).text
        assert 'class="run-now" data-schedule="tests/api_loop"' in page and button.json()["execution_id"] in page
        gone = await client.post("/api/schedules/nope/trigger")
        assert gone.status_code == 404 and gone.json()["error"] == "schedule 'nope' not found"

        assert (await client.delete("/api/schedules/tests/api_loop")).json()["deleted"] is True
        assert (await client.get("/api/schedules/tests/api_loop")).status_code == 404
        assert (await client.post("/api/schedules/nope/pause")).status_code == 404

    served(url, scenario)


def test_rerun_through_the_api(url: str) -> None:  # noqa: F811
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        original = await start(client, n=3)
        response = await client.post(f"/api/executions/{original}/rerun", json={"payload": {"n": 4}})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["execution_id"] != original and body["rerun_of"] == original
        first = (await events_of(app, body["execution_id"]))[0]
        assert first.meta["rerun_of"] == original and first.result["n"] == 4
        bad = await client.post(f"/api/executions/{original}/rerun", json={"from_step": "nope"})
        assert bad.status_code == 400 and "from_step 'nope'" in bad.text and "no step of that name" in bad.text
        # `from`, as the CLI's --from and the backfill body spell it, is the same field.
        bad_from = await client.post(f"/api/executions/{original}/rerun", json={"from": "nope"})
        assert bad_from.status_code == 400 and "no step of that name" in bad_from.text
        both = await client.post(f"/api/executions/{original}/rerun", json={"from": "start", "from_step": "nope"})
        assert both.status_code == 422 and "not both" in both.text
        misspelt = await client.post(f"/api/executions/{original}/rerun", json={"from_stp": "start"})
        assert misspelt.status_code == 422 and "from_stp" in misspelt.text
        unknown = await client.post("/api/executions/123456/rerun", json={})
        assert unknown.status_code == 404

    served(url, scenario)


DECLARED = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: nightly, path: tests/nightly}
schedules:
  - {cron: "0 2 * * *", timezone: Europe/Berlin, catchup: all}
workflow:
  - step: start
"""


def test_schedules_declared_in_a_registered_playbook(url: str) -> None:  # noqa: F811
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        registered = await client.post("/api/catalog/register", json={"content": DECLARED})
        assert registered.status_code == 200, registered.text
        assert registered.json()["schedules"] == ["tests/nightly"]
        schedule = (await client.get("/api/schedules/tests/nightly")).json()
        assert (schedule["cron"], schedule["timezone"], schedule["catchup"], schedule["source"]) == (
            "0 2 * * *", "Europe/Berlin", "all", "playbook")
        bad = await client.post("/api/catalog/register", json={"content": DECLARED.replace("0 2 * * *", "0 25 * * *")})
        assert bad.status_code in (400, 422) and "invalid cron expression" in bad.text

    served(url, scenario)


def test_a_fire_listing_limit_out_of_range_is_a_422(url: str) -> None:  # noqa: F811
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        added = await client.post("/api/schedules", json={"path": "tests/api_loop", "cron": "0 6 * * *"})
        assert added.status_code == 200, added.text
        for limit in ("-1", "0", "9" * 30):
            answer = await client.get("/api/schedules/tests/api_loop/fires", params={"limit": limit})
            assert answer.status_code == 422, (limit, answer.status_code, answer.text)
            assert "limit" in answer.text
        assert (await client.get("/api/schedules/tests/api_loop/fires", params={"limit": 5})).json() == []

    served(url, scenario)
