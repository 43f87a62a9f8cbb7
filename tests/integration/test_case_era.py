"""Case-era rules from the v2 design guide: pagination with `call`, `collect` and `result`."""

from __future__ import annotations

from pathlib import Path

import noetl

FIXTURE = Path(__file__).parent.parent / "fixtures" / "playbooks" / "case_pagination.yaml"


def test_case_pagination_collects_every_page(http_server) -> None:  # type: ignore[no-untyped-def]
    before = _page_requests(http_server)
    doc = noetl.run(str(FIXTURE), payload={"api": http_server.url})
    assert doc["status"] == "completed", doc["error"]
    items = doc["steps"]["start"]["result"]
    assert doc["steps"]["count"]["result"] == {"n": len(items), "same": True}
    assert len(items) > 3 and items == sorted(items, key=items.index)
    assert _page_requests(http_server) - before == 3  # one request per page, within one step entry
    assert [i["id"] for i in items] == [1, 2, 3, 4, 5, 6]


def test_case_pagination_runs_once_per_step_entry(http_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = noetl.run(str(FIXTURE), payload={"api": http_server.url})
    events = _events(doc["execution_id"])
    enters = [e for e in events if e.event_type == "step.enter" and e.node_name == "start"]
    assert len(enters) == 1


def _page_requests(server) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in server.requests if r["path"] == "/paginated")


def _events(execution_id: str):  # type: ignore[no-untyped-def]
    import asyncio

    from noetl.api import open_store

    async def load():  # type: ignore[no-untyped-def]
        store = await open_store()
        try:
            return await store.list_events(execution_id)
        finally:
            await store.close()

    return asyncio.run(load())


def test_migrated_pagination_behaves_the_same(http_server) -> None:  # type: ignore[no-untyped-def]
    from noetl.dsl.migrate import canonical_yaml
    from noetl.dsl.parse import load_playbook

    migrated = canonical_yaml(load_playbook(str(FIXTURE)))
    assert "case:" not in migrated
    original = noetl.run(str(FIXTURE), payload={"api": http_server.url})
    again = noetl.run(migrated, payload={"api": http_server.url})
    assert again["status"] == original["status"] == "completed"
    assert again["steps"]["start"]["result"] == original["steps"]["start"]["result"]
    assert again["steps"]["count"]["result"] == original["steps"]["count"]["result"]
