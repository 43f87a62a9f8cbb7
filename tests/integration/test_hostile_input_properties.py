"""Property tests: random YAML/JSON documents and template strings, fed to the validator and to the
API in-process. Whatever comes in, no exception escapes, no answer is a 5xx, and each answer comes
back in bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_distributed_cluster import create_database

from noetl.dsl.parse import load_playbook_text
from noetl.dsl.render import check_template
from noetl.errors import NoetlError
from noetl.server.app import create_app
from noetl.server.state import ServerConfig

# Any text, including lone surrogates and NUL: what a hostile client can put in a JSON string.
TEXT = st.text(st.characters(codec=None), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | TEXT
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
                           max_leaves=30)
STEP_KEYS = st.sampled_from(["step", "tool", "next", "set", "input", "loop", "spec", "retry", "when", "kind",
                             "arcs", "code", "workbook", "name", "args", "with"])
PLAYBOOKISH = st.fixed_dictionaries({
    "apiVersion": st.just("noetl.io/v2"), "kind": st.just("Playbook"),
    "metadata": st.fixed_dictionaries({"name": st.just("p"), "path": st.just("prop/p")}),
    "workflow": st.lists(st.dictionaries(STEP_KEYS, JSON_VALUES, max_size=5), max_size=4),
}, optional={"workload": JSON_VALUES, "workbook": JSON_VALUES})
YAML_SNIPPETS = st.lists(st.sampled_from(["&a [*a]", "? [a, b]\n: c", "*x", "&x {k: *x}", "[", "]", "{", "}", ":",
                                          "- ", "\n", "  ", "a: ", "'", '"', "\\ud800", "!!python/object:os.system",
                                          "<<: *a", "---", "{{ x }}", "{% for %}", "NaN", ".inf"]),
                         max_size=12).map("".join)
TEMPLATES = st.lists(st.sampled_from(["{{", "}}", "{%", "%}", "x", " ", "|", "default(", ")", "range(10**9)",
                                      "'a' * 10**9", "{# ", " #}", "().__class__", "workload.", "\ud800", "\x00"]),
                     max_size=12).map("".join)
LIMIT_SECONDS = 5.0
# The live server's connection pool (psycopg_pool) draws reconnection jitter from the global random
# module in its own thread; Hypothesis takes a change of that state while it draws data for a
# test as a strategy using random, and says so with a deprecation warning (an error here).
SERVER_THREAD_USES_RANDOM = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning")


def _validate(text: str) -> None:
    started = time.monotonic()
    with contextlib.suppress(NoetlError):
        load_playbook_text(text, "prop.yaml")
    assert time.monotonic() - started < LIMIT_SECONDS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLAYBOOKISH)
def test_validator_survives_random_playbook_shapes(doc: dict[str, Any]) -> None:
    _validate(yaml.safe_dump(doc, allow_unicode=False))
    _validate(json.dumps(doc))


@settings(max_examples=150, deadline=None)
@given(YAML_SNIPPETS)
def test_validator_survives_random_yaml(text: str) -> None:
    _validate("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: p, path: prop/p}\nworkload: " + text)
    _validate(text)


@settings(max_examples=150, deadline=None)
@given(TEMPLATES)
def test_template_checks_survive_random_templates(template: str) -> None:
    started = time.monotonic()
    with contextlib.suppress(NoetlError):
        check_template(template)
    _validate("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: p, path: prop/p}\nworkflow:\n"
              f"  - step: start\n    tool: {{kind: noop}}\n    set: {{x: {json.dumps(template)}}}\n")
    assert time.monotonic() - started < LIMIT_SECONDS


class LiveApp:
    """The server app with its lifespan on an event loop of its own thread; requests from the
    (synchronous) hypothesis tests go through an httpx ASGI client on that loop."""

    def __init__(self, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app = create_app(ServerConfig(database_url=database_url, reap_interval=0.5))
        self.lifespan = self.app.router.lifespan_context(self.app)
        self._run(self.lifespan.__aenter__())
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://noetl.test")

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._run(self.client.request(method, path, **kwargs))  # type: ignore[no-any-return]

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        self._run(self.client.aclose())
        self._run(self.lifespan.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def client(pg_cluster: dict[str, Any]) -> Iterator[LiveApp]:
    live = LiveApp(create_database(pg_cluster))
    try:
        registered = live.post("/api/catalog/register", json={"content": (
            "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: p, path: prop/p}\n"
            "workflow:\n  - step: start\n    tool: {kind: noop}\n")})
        assert registered.status_code == 200, registered.text
        yield live
    finally:
        live.close()


ROUTES = st.sampled_from([("POST", "/api/execute"), ("POST", "/api/events"), ("POST", "/api/v2/events"),
                          ("POST", "/api/catalog/register"), ("POST", "/api/catalog/resource"),
                          ("POST", "/api/credentials"), ("POST", "/api/v2/engine/register-playbook"),
                          ("POST", "/api/postgres/execute"), ("POST", "/api/workers/lease")])


def _raw_json(value: Any) -> bytes:
    # What a client that does not care about JSON's rules sends: NaN, lone surrogates, NUL.
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def _answer_is_clean(response: Any, started: float) -> None:
    assert response.status_code < 500, response.text
    assert time.monotonic() - started < LIMIT_SECONDS


@pytest.mark.slow
@SERVER_THREAD_USES_RANDOM
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ROUTES, JSON_VALUES | st.dictionaries(st.sampled_from(
    ["path", "payload", "execution_id", "event_type", "name", "content", "playbook_yaml", "query", "params",
     "catalog_id", "version", "parent_execution_id", "meta", "data", "type"]), JSON_VALUES, max_size=6))
def test_api_answers_random_bodies_with_4xx_at_worst(client: LiveApp, route: tuple[str, str], body: Any) -> None:
    method, path = route
    started = time.monotonic()
    response = client.request(method, path, content=_raw_json(body), headers={"Content-Type": "application/json"})
    _answer_is_clean(response, started)


@pytest.mark.slow
@SERVER_THREAD_USES_RANDOM
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(YAML_SNIPPETS, PLAYBOOKISH.map(lambda d: yaml.safe_dump(d, allow_unicode=False)), TEMPLATES))
def test_api_answers_random_playbooks_with_4xx_at_worst(client: LiveApp, content: str) -> None:
    started = time.monotonic()
    response = client.post("/api/catalog/register", content=_raw_json({"content": content}),
                           headers={"Content-Type": "application/json"})
    _answer_is_clean(response, started)


@pytest.mark.slow
@SERVER_THREAD_USES_RANDOM
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TEXT)
def test_api_answers_random_ids_with_4xx_at_worst(client: LiveApp, execution_id: str) -> None:
    from urllib.parse import quote

    started = time.monotonic()
    encoded = quote(execution_id.encode("utf-8", "surrogatepass"), safe="")
    for path in (f"/api/executions/{encoded}", f"/api/executions/{encoded}/status",
                 f"/api/executions/{encoded}/events", f"/api/executions?status={encoded}"):
        _answer_is_clean(client.get(path), started)
    _answer_is_clean(client.post(f"/api/executions/{encoded}/cancel"), started)
