"""Real playbooks' habits, each run on both runtimes: locally through `noetl run` as a user types
it, and on the distributed runtime (server, 2 workers, PostgreSQL) through the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from acceptance.conftest import run_noetl
from test_distributed_cluster import Cluster

from noetl.api import apply_sets


@pytest.fixture
def cluster(two_worker_deployment: Cluster) -> Cluster:
    return two_worker_deployment


def run_both(cluster: Cluster, tmp_path: Path, text: str, *sets: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The status documents of `noetl run FILE --set ...` and of the same run on the server."""
    path = tmp_path / "playbook.yaml"
    path.write_text(text)
    args = [arg for item in sets for arg in ("--set", item)]
    local = run_noetl("run", str(path), "--json", *args, home=tmp_path / "home").json()
    distributed = cluster.wait(cluster.execute(cluster.register(text)["path"], apply_sets({}, list(sets))))
    return local, distributed


OWN_NAMES = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: own_names, path: tests/compat/own_names}
workflow:
  - step: start
    tool: {kind: noop, result: {n: 1}}
    next: [{step: use}]
  - step: use
    input: {seen: "{{ result }}"}
    tool: {kind: noop, result: {seen: "{{ input.seen }}", args: "{{ args }}"}}
"""


def test_result_and_args_are_noetl_names_unless_the_runs_workload_has_them(cluster: Cluster, tmp_path: Path) -> None:
    """SPEC section 3: `result` in a step's input is the scheduling step's result and `args` in a
    tool's config the step's input, unless a key of the run's workload (payload included: `--set`)
    is named so; then the name is that key, on both runtimes alike."""
    for doc in run_both(cluster, tmp_path, OWN_NAMES):
        assert doc["status"] == "completed", doc["error"]
        assert doc["steps"]["use"]["result"] == {"seen": {"n": 1}, "args": {"seen": {"n": 1}}}
    for doc in run_both(cluster, tmp_path, OWN_NAMES, "result=5", "args=7"):
        assert doc["status"] == "completed", doc["error"]
        assert doc["steps"]["use"]["result"] == {"seen": 5, "args": 7}


def test_an_execute_request_with_an_unknown_field_is_refused_naming_it(cluster: Cluster) -> None:
    """A misspelt field (`payloads`) would start a run with the playbook's defaults: 422 naming the
    field with a did-you-mean, on every spelling of the route, and nothing is started."""
    path = cluster.register(OWN_NAMES)["path"]
    before = len(cluster.client.get("/api/executions", params={"path": path, "limit": 10_000}).json())
    for route in ("/api/execute", "/api/run/playbook", "/api/v2/execute"):
        response = cluster.client.post(route, json={"path": path, "payloads": {"result": 5}})
        assert response.status_code == 422, response.text
        message = response.json()["error"]
        assert "unknown field 'payloads' (did you mean 'payload'?)" in message and "\n" not in message, message
    assert len(cluster.client.get("/api/executions", params={"path": path, "limit": 10_000}).json()) == before
    assert cluster.client.post("/api/execute", json={"path": path, "payload": {}, "merge": False}).status_code == 200


ARC_WHEN_SPELLINGS = {
    "canonical": ("next:\n      arcs:\n        - step: end\n          when: \"{{ start.n + 1 > 2 }}\"\n", 10),
    "v1 step and when": ("next:\n      - step: end\n        when: \"{{ result.n + 1 > 2 }}\"\n", 9),
    "v1 when then": ("next:\n      - when: \"{{ result.n + 1 > 2 }}\"\n        then: [{step: end}]\n", 8),
    "case era": ("case:\n      - when: \"{{ event.name == 'call.done' and result.n + 1 > 2 }}\"\n"
                 "        then:\n          next: [{step: end}]\n", 8),
}


@pytest.mark.parametrize("spelling", list(ARC_WHEN_SPELLINGS))
def test_an_arc_when_that_fails_points_at_its_when_line(cluster: Cluster, tmp_path: Path, spelling: str) -> None:
    """A `when` that fails to render (a type error) fails the run naming the step and arc, and the
    error's `playbook_line` is the `when:` line, in every spelling of routing, on both runtimes."""
    routing, line = ARC_WHEN_SPELLINGS[spelling]
    text = ("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: arc_when, path: tests/compat/arc_when}\n"
            "workflow:\n  - step: start\n    tool: {kind: noop, result: {n: abc}}\n    " + routing +
            "  - step: end\n")
    assert text.splitlines()[line - 1].lstrip(" -").startswith("when:"), text
    for doc in run_both(cluster, tmp_path, text):
        assert doc["status"] == "failed", doc
        error = doc["steps"]["start"]["error"]
        assert error["message"].startswith("step 'start' arc to 'end' when: TypeError"), error
        assert error["playbook_line"] == line, (spelling, error)


ITERATOR_SAVE_WITH_CASE = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: iterator_case_save, path: tests/compat/iterator_case_save}
workload: {cities: [a, b, c]}
workflow:
  - step: start
    next: [{step: each}]
  - step: each
    type: iterator
    collection: "{{ workload.cities }}"
    element: city
    task:
      type: python
      input: {city: "{{ city }}"}
      code: "result = {'name': city}"
    save:
      storage: duckdb
      table: saved
      create: true
      mode: insert
      data: {n: "{{ count }}"}
    case:
      - when: "{{ event.name == 'call.done' }}"
        then:
          next: [{step: never}]
      - when: "{{ event.name == 'loop.done' and result.results | length == 3 }}"
        then:
          set: {ctx: {routed: yes}}
          next: [{step: report, with: {total: "{{ count }}"}}, {step: also}]
  - step: never
  - step: report
    input: {total: 0}
    tool: {kind: duckdb, query: "SELECT n FROM saved"}  # the execution's own database file
  - step: also
    tool: {kind: noop, result: {routed: "{{ ctx.routed }}"}}
"""


def test_an_iterator_steps_save_runs_once_after_the_loop_when_case_rules_route_it(
        cluster: Cluster, tmp_path: Path) -> None:
    """SPEC section 5 (arcs of a loop step are evaluated once, on loop.done) and 15 (`save:`): a v1
    iterator step's own `save:` writes the loop's result once, after the loop, with or without
    case rules; the rules then route as written: a rule on call.done never fires, the rule on
    loop.done fires both its targets (after the save, with its `set` and `with`)."""
    for doc in run_both(cluster, tmp_path, ITERATOR_SAVE_WITH_CASE):
        assert doc["status"] == "completed", doc["error"]
        assert "never" not in doc["completed_steps"] and doc["warnings"] == [], doc["warnings"]
        assert doc["steps"]["report"]["result"]["rows"] == [{"n": 3}], doc["steps"]["report"]
        assert doc["steps"]["also"]["result"] == {"routed": True}
        assert [s for s in doc["completed_steps"] if s.startswith("each")] == ["each", "each_save"]


WORKLOAD_WITH_A_KEYCHAIN_VALUE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: keychain_in_workload, path: tests/compat/keychain_in_workload}
workload: {api: "http://db-host-7f3a:8080/v1"}
keychain:
  - {name: db, kind: static, data: {host: db-host-7f3a}}
workflow:
  - step: start
    tool: {kind: python, input: {api: "{{ api }}"}, code: "result = {'api_intact': api == 'http://db-host-7f3a:8080/v1'}"}
    next: [{step: again}]
  - step: again
    tool: {kind: python, input: {api: "{{ workload.api }}"}, code: "result = {'api_intact': api == 'http://db-host-7f3a:8080/v1'}"}
"""


def test_a_workload_value_holding_a_keychain_value_reaches_every_step_intact(cluster: Cluster, tmp_path: Path) -> None:
    """A keychain value is redacted in the stored log (SPEC section 8), also inside a workload string;
    the distributed runtime, which rebuilds an execution's state from that log, still runs every
    step with the workload as given, as `noetl run` does."""
    local, distributed = run_both(cluster, tmp_path, WORKLOAD_WITH_A_KEYCHAIN_VALUE)
    for doc in (local, distributed):
        assert doc["status"] == "completed", doc["error"]
        assert doc["steps"]["start"]["result"] == doc["steps"]["again"]["result"] == {"api_intact": True}, doc
    events = cluster.client.get(f"/api/executions/{distributed['execution_id']}/events")
    assert events.status_code == 200 and "db-host-7f3a" not in events.text, events.text
    assert "http://***:8080/v1" in events.text, events.text


A_SECRET_RESULT_READ_BY_A_PARALLEL_LOOP = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: secret_result_in_loop, path: tests/compat/secret_result_in_loop}
keychain:
  - {name: api, kind: static, data: {token: tok-7f3a-sealed-0123456789}}
workflow:
  - step: start
    tool: {kind: python, input: {token: "{{ keychain.api.token }}"}, code: "result = {'token': token}"}
    next: [{step: each}]
  - step: each
    loop: {in: "{{ range(16) | list }}", iterator: n, spec: {mode: parallel, max_in_flight: 16}}
    tool:
      kind: python
      input: {token: "{{ start.token }}"}
      code: "result = token == 'tok-7f3a-sealed-0123456789'"
"""


def test_a_secret_a_step_returned_reaches_every_loop_iteration_on_any_worker(cluster: Cluster, tmp_path: Path) -> None:
    """The log holds the secret-bearing result as `***`; a worker that rebuilds the execution from
    it (the other worker of a parallel loop) still hands each iteration the secret itself."""
    for doc in run_both(cluster, tmp_path, A_SECRET_RESULT_READ_BY_A_PARALLEL_LOOP):
        assert doc["status"] == "completed", doc["error"]
        assert doc["steps"]["each"]["result"]["results"] == [True] * 16, doc["steps"]["each"]
        events = cluster.client.get(f"/api/executions/{doc['execution_id']}/events")
        if events.status_code == 200:  # the distributed run's log
            assert "tok-7f3a-sealed" not in events.text and "***" in events.text


PASSES_A_KEYCHAIN_VALUE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: passes_a_secret, path: tests/compat/passes_a_secret}
keychain:
  - {name: db, kind: static, data: {password: pw-child-4c1e9b77}}
workflow:
  - step: start
    tool: {kind: playbook, path: tests/compat/secret_child, payload: {pw: "{{ keychain.db.password }}"}}
"""

SECRET_CHILD = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: secret_child, path: tests/compat/secret_child}
workload: {pw: none}
workflow:
  - step: start
    tool: {kind: python, input: {pw: "{{ workload.pw }}"}, code: "result = {'pw_intact': pw == 'pw-child-4c1e9b77'}"}
"""


def test_a_secret_a_parent_passes_to_a_child_playbook_is_redacted_in_the_childs_log(
        cluster: Cluster, tmp_path: Path) -> None:
    """SPEC section 8: secrets never reach events. A keychain value passed in a child playbook's
    payload is the parent's secret in the child's log too (its playbook.initialized workload held
    it in plain text on both runtimes); the child still runs with the value itself."""
    (tmp_path / "secret_child.yaml").write_text(SECRET_CHILD)
    cluster.register(SECRET_CHILD)
    local, distributed = run_both(cluster, tmp_path, PASSES_A_KEYCHAIN_VALUE)
    for doc in (local, distributed):
        assert doc["status"] == "completed", doc["error"]
        assert doc["result"] == {"pw_intact": True}, doc
    home = tmp_path / "home"
    children = run_noetl("executions", "--json", home=home).json()
    child_id = next(e["execution_id"] for e in children if e["path"] == "tests/compat/secret_child")
    local_events = run_noetl("events", child_id, "--json", home=home)
    child = cluster.client.get("/api/executions", params={"parent_execution_id": distributed["execution_id"]}).json()
    distributed_events = cluster.client.get(f"/api/executions/{child[0]['execution_id']}/events")
    for events in (local_events.stdout, distributed_events.text):
        assert "playbook.initialized" in events and "pw-child-4c1e9b77" not in events, events


def test_the_api_shows_a_childs_payload_redacted_as_its_log(cluster: Cluster) -> None:
    """GET /api/executions/{id} shows the execution row's payload: a parent's keychain value passed
    to a child reads `***` there as in the child's log (the row stores it redacted too; a rerun reads the
    value sealed in the log)."""
    cluster.register(SECRET_CHILD)
    parent = cluster.wait(cluster.execute(cluster.register(PASSES_A_KEYCHAIN_VALUE)["path"], {"note": "plain"}))
    assert parent["result"] == {"pw_intact": True}, parent
    assert cluster.client.get(f"/api/executions/{parent['execution_id']}").json()["payload"] == {"note": "plain"}
    child = cluster.client.get("/api/executions", params={"parent_execution_id": parent["execution_id"]}).json()
    shown = cluster.client.get(f"/api/executions/{child[0]['execution_id']}")
    assert shown.status_code == 200 and shown.json()["payload"] == {"pw": "***"}, shown.text


RETURNS_A_KEYCHAIN_VALUE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: returns_a_secret, path: tests/compat/returns_a_secret}
keychain:
  - {name: db, kind: static, data: {token: tok-rerun-77aa11bb}}
workflow:
  - step: start
    tool: {kind: python, input: {t: "{{ keychain.db.token }}"}, code: "result = {'t': t}"}
    next: [{step: use}]
  - step: use
    tool: {kind: python, input: {t: "{{ start.t }}"}, code: "result = {'intact': t == 'tok-rerun-77aa11bb'}"}
"""


def test_a_rerun_from_a_step_reuses_a_secret_result_as_the_step_returned_it(cluster: Cluster, tmp_path: Path) -> None:
    """A rerun from `use` reuses `start`'s result: `use` gets the token itself (it got `***`, the
    log's redacted copy, on both runtimes), and the rerun's log stores it redacted as the original's."""
    local, distributed = run_both(cluster, tmp_path, RETURNS_A_KEYCHAIN_VALUE)
    home = tmp_path / "home"
    rerun = run_noetl("rerun", local["execution_id"], "--from", "use", "--json", home=home).json()
    local_events = run_noetl("events", rerun["execution_id"], "--json", home=home).stdout
    started = cluster.client.post(f"/api/executions/{distributed['execution_id']}/rerun", json={"from_step": "use"})
    assert started.status_code == 200, started.text
    rerun_distributed = cluster.wait(started.json()["execution_id"])
    distributed_events = cluster.client.get(f"/api/executions/{rerun_distributed['execution_id']}/events").text
    for doc, events in ((rerun, local_events), (rerun_distributed, distributed_events)):
        assert doc["status"] == "completed", doc["error"]
        assert doc["steps"]["use"]["result"] == {"intact": True}, doc
        assert "step.reused" in events and "tok-rerun-77aa11bb" not in events, events


ECHOES_A_SECRET_IN_A_LOOP = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: echoes_a_secret, path: tests/compat/echoes_a_secret}
workflow:
  - step: start
    tool: {kind: secrets, provider: credential, name: compat_echo_token, field: token}
    next: [{step: each}]
  - step: each
    loop: {in: "{{ range(12) | list }}", iterator: n, mode: parallel}
    tool: {kind: python, input: {t: "{{ start.value }}"}, code: "result = {'echo': t}"}
"""


def test_a_secret_one_worker_found_is_redacted_in_what_every_worker_stores(cluster: Cluster) -> None:
    """The secrets step runs on one worker; the loop's iterations run on both and return the value.
    A worker that learned the step's result from the log (its sealed copy) learns the secret too, so
    no iteration's result is stored in plain text."""
    token = "tok-echo-5e6f7a8b9c0d"
    stored = cluster.client.post("/api/credentials", json={"name": "compat_echo_token", "type": "generic",
                                                           "data": {"token": token}})
    assert stored.status_code in (200, 201), stored.text
    doc = cluster.wait(cluster.execute(cluster.register(ECHOES_A_SECRET_IN_A_LOOP)["path"]))
    assert doc["status"] == "completed", doc["error"]
    events = cluster.client.get(f"/api/executions/{doc['execution_id']}/events")
    assert events.status_code == 200 and token not in events.text, events.text
    calls = [e for e in events.json() if e["event_type"] == "call.done" and e["node_name"] == "each"]
    assert [e["result"] for e in calls] == [{"echo": "***"}] * 12, calls


ARC_WITH_NAMES = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: arc_with_names, path: tests/compat/arc_with_names}
workload: {some_value: 7}
workbook:
  - name: aggregation_task
    type: python
    code: |
      def main(result_1, extra):
          return {"result_1": result_1, "extra": extra}
workflow:
  - step: start
    type: python
    code: |
      def main():
          return {"cities": ["Paris", "Oslo"]}
    next:
      - step: label
        with:
          found: "{{ start.cities }}"
          tag: run-1
  - step: label
    tool: {kind: noop, result: {tag: "{{ tag }}", count: "{{ found | length }}"}}
    next:
      - step: per_city
        with:
          places: "{{ found }}"
  - step: per_city
    type: iterator
    collection: "{{ places }}"
    element: city
    task:
      type: python
      with: {city: "{{ city }}", first: "{{ places[0] }}"}
      code: |
        def main(city, first):
            return city + "/" + first
    next:
      - step: aggregate
        with:
          r1: "{{ per_city.results }}"
  - step: aggregate
    call:
      type: workbook
      name: aggregation_task
      with:
        result_1: "{{ r1 }}"
        extra: "{{ workload.some_value }}"
"""


def test_names_an_arcs_with_passes_are_in_scope_in_the_target_step(cluster: Cluster, tmp_path: Path) -> None:
    """Seed 000's data passing: `next: [{step: b, with: {data_from_a: ...}}]` and, in b,
    `with: {input_data: "{{ data_from_a }}"}`. The arc's names are in scope in the target's input,
    its tool fields and its loop collection: they rendered undefined (null, with a warning, and an
    error under --strict), so the data never reached the step."""
    for doc in run_both(cluster, tmp_path, ARC_WITH_NAMES):
        assert doc["status"] == "completed", doc["error"]
        assert doc["warnings"] == []
        assert doc["steps"]["label"]["result"] == {"tag": "run-1", "count": 2}
        assert doc["steps"]["per_city"]["result"]["results"] == ["Paris/Paris", "Oslo/Paris"]
        assert doc["result"] == {"result_1": ["Paris/Paris", "Oslo/Paris"], "extra": 7}
    strict = tmp_path / "strict.yaml"
    strict.write_text(ARC_WITH_NAMES)
    assert run_noetl("run", str(strict), "--strict", "--json", home=tmp_path / "home").json()["status"] == "completed"


CASE_COLLECT_THEN_NEXT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: case_collect_then_next, path: tests/compat/case_collect_then_next}
workload: {api: "http://127.0.0.1:0"}
workflow:
  - step: start
    tool: {kind: http, url: "{{ workload.api }}/paginated", params: {page: 1, pages: 3}}
    case:
      - when: "{{ event.name == 'call.done' and response.data.hasMore }}"
        then:
          collect: {from: response.data.items, into: all_items, mode: extend}
          call: {params: {page: "{{ (response.data.page | int) + 1 }}", pages: 3}}
      - when: "{{ event.name == 'call.done' }}"
        then:
          collect: {from: response.data.items, into: all_items, mode: extend}
          result: {from: all_items}
          set: {ctx: {routed: yes}}
          next: [{step: count}]
    next: [{step: never}]
  - step: never
    tool: {kind: noop}
  - step: count
    tool: {kind: python, input: {items: "{{ start }}", routed: "{{ ctx.routed }}"},
           code: "result = {'ids': [i['id'] for i in items], 'routed': routed}"}
"""


def test_a_case_rule_that_collects_sets_the_result_and_routes_does_all_three(
        cluster: Cluster, tmp_path: Path, http_server: Any) -> None:
    """The last page's rule of a paginating step often collects, sets the step's result and names
    the next step in one `then`: the rule's `next` used to drop its `collect` and `result`, so the
    next step got the last page's raw response instead of every item."""
    for doc in run_both(cluster, tmp_path, CASE_COLLECT_THEN_NEXT, f"api={http_server.url}"):
        assert doc["status"] == "completed", doc["error"]
        assert doc["completed_steps"] == ["start", "count"]
        assert doc["steps"]["count"]["result"] == {"ids": [1, 2, 3, 4, 5, 6], "routed": True}


V1_SAVE_READS_RESULT = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: v1_save_reads_result, path: tests/compat/v1_save_reads_result}
workflow:
  - step: start
    type: python
    code: |
      def main():
          return {"ids": [1, 2, 3]}
    save:
      storage: duckdb
      table: saved
      mode: insert
      create: true
      data: {ids: "{{ result.ids | tojson }}", n: "{{ result.ids | length }}"}
    next: [{step: check}]
  - step: check
    type: duckdb
    command: "SELECT ids, n FROM saved"
"""


def test_a_v1_step_save_reads_the_steps_result_as_result(cluster: Cluster, tmp_path: Path) -> None:
    """`save: {data: {ids: "{{ result.ids }}"}}` on a plain v1 step: `result` is the step's tool
    result, as on an iterator's save (it rendered undefined); the step's result is the sink's."""
    for doc in run_both(cluster, tmp_path, V1_SAVE_READS_RESULT):
        assert doc["status"] == "completed", doc["error"]
        assert doc["warnings"] == []
        assert doc["steps"]["start"]["result"]["rows_written"] == 1
        assert doc["result"]["rows"] == [{"ids": "[1, 2, 3]", "n": 3}]
