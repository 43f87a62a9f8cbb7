"""A loop's aggregate by reference (SPEC section 19) through the `noetl` CLI: past the step's
`output.inline_max_items` (10,000 by default) the aggregate's `results` is a reference read back from
the iterations' own reports, and templates, `noetl result` and the status document read it lazily."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from acceptance.conftest import FIXTURES

RESULTS = FIXTURES / "results"


def _result_events(db: Path, step: str) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT event_type, length(result) FROM event WHERE node_name = ? AND event_type "
                            "IN ('loop.done', 'step.exit') ORDER BY event_id", (step,)).fetchall()


def test_a_big_loop_aggregate_is_a_reference_that_templates_read_lazily(noetl: Any, noetl_home: Path) -> None:
    run = noetl("run", str(RESULTS / "loop_aggregate.yaml"), "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["status"] == "completed", doc["error"]
    # One item, an item of one item, the length, a slice and a walk over all 1,500 of them.
    assert doc["result"] == {"last": {"i": 1499, "sq": 1499 * 1499}, "fifth": 25, "count": 1500,
                             "total": sum(range(1500)), "firsts": [{"i": 0, "sq": 0}, {"i": 1, "sq": 1}],
                             "stats": {"total": 1500, "success": 1500, "failed": 0}}
    # The status document shows the reference with its count and a preview, not 1,500 results.
    start = doc["steps"]["start"]["result"]
    ref = start["results"]["_ref"]
    assert ref["uri"] == f"noetl://loop/{doc['execution_id']}/1/start" and ref["count"] == 1500
    assert ref["preview"] == '[{"i":0,"sq":0},{"i":1,"sq":1},{"i":2,"sq":4},...]'
    assert start["stats"] == {"total": 1500, "success": 1500, "failed": 0}
    # loop.done and step.exit do not repeat the results the call reports hold.
    sizes = _result_events(noetl_home / "noetl.db", "start")
    assert [kind for kind, _ in sizes] == ["loop.done", "step.exit"] and max(size for _, size in sizes) < 400
    # The replayed status document is the live one.
    status = noetl("status", doc["execution_id"], "--json")
    assert status.code == 0 and status.json()["steps"] == doc["steps"]

    one = noetl("result", doc["execution_id"], "start", "--index", "1234")
    assert one.code == 0, one.stderr
    assert one.json() == {"i": 1234, "sq": 1234 * 1234}
    assert noetl("result", doc["execution_id"], "start", "--index", "-1").json() == {"i": 1499, "sq": 1499 * 1499}
    out_of_range = noetl("result", doc["execution_id"], "start", "--index", "1500")
    assert out_of_range.code == 2 and "has 1500 results: index 1500 is out of range" in out_of_range.stderr
    misspelt = noetl("result", doc["execution_id"], "strat")
    assert misspelt.code == 2 and "has no result for step 'strat': tests/results/loop_aggregate has no step" in misspelt.stderr
    assert "(steps: start, " in misspelt.stderr
    whole = noetl("result", doc["execution_id"], "start", "--output", str(noetl_home / "all.json"))
    assert whole.code == 0, whole.stderr
    written = json.loads((noetl_home / "all.json").read_text())
    assert written["results"] == [{"i": i, "sq": i * i} for i in range(1500)]
    assert written["stats"] == {"total": 1500, "success": 1500, "failed": 0}


def test_past_ten_thousand_iterations_the_aggregate_is_by_reference_by_default(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "many.yaml"
    playbook.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: many}\nworkflow:\n"
                        "  - step: start\n    loop: {in: \"{{ range(10001) | list }}\", iterator: i,"
                        " spec: {mode: parallel, max_in_flight: 16}}\n"
                        "    tool: {kind: python, input: {i: \"{{ iter.i }}\"}, code: 'result = i'}\n"
                        "    next: [{step: read}]\n"
                        "  - step: read\n    tool: {kind: python, input: {last: \"{{ start.results[10000] }}\","
                        " n: \"{{ start.results | length }}\"}, code: 'result = [last, n]'}\n")
    run = noetl("run", str(playbook), "--json", timeout=300)
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["result"] == [10000, 10001]
    assert doc["steps"]["start"]["result"]["results"]["_ref"]["count"] == 10001


def test_failed_iterations_of_an_aggregate_by_reference(noetl: Any, noetl_home: Path) -> None:
    run = noetl("run", str(RESULTS / "loop_aggregate_failures.yaml"), "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    # The step's own `output.inline_max_items: 10` put 60 iterations past the threshold.
    start = doc["steps"]["start"]
    assert start["status"] == "failed" and start["result"]["results"]["_ref"]["count"] == 60
    assert start["error"]["message"] == "step 'start': 3 of 60 iterations failed: ValueError: item 7 is bad"
    # A tool given the whole list receives every item; a failed iteration's entry is its error.
    assert doc["result"] == {"n": 60, "errors": 3, "seventh": "ValueError: item 7 is bad", "failed": 3,
                             "ok": [0, 1, 2]}
    seventh = noetl("result", doc["execution_id"], "start", "--index", "7")
    assert seventh.code == 0 and seventh.json()["message"] == "ValueError: item 7 is bad"


def test_a_loop_under_the_threshold_keeps_its_results_inline(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "small.yaml"
    playbook.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: small}\nworkflow:\n"
                        "  - step: start\n    loop: {in: \"{{ range(10) | list }}\", iterator: i}\n"
                        "    tool: {kind: python, input: {i: \"{{ iter.i }}\"}, code: 'result = i'}\n"
                        "    output: {inline_max_items: 10}\n")
    run = noetl("run", str(playbook), "--json")
    assert run.code == 0, run.stderr
    assert run.json()["steps"]["start"]["result"]["results"] == list(range(10))


def test_a_bad_inline_max_items_is_one_line_naming_the_field(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "bad.yaml"
    playbook.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: bad}\nworkflow:\n"
                        "  - step: start\n    loop: {in: [1, 2], iterator: i}\n    tool: {kind: noop}\n"
                        "    output: {inline_max_items: many}\n")
    checked = noetl("validate", str(playbook))
    assert checked.code == 2, checked.stdout
    assert "bad.yaml:8" in checked.stderr and "output.inline_max_items" in checked.stderr
    assert "Traceback" not in checked.stderr


def test_a_loop_whose_results_outgrow_aggregate_max_bytes_goes_by_reference(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "wide.yaml"
    playbook.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: wide}\nworkflow:\n"
                        "  - step: start\n    loop: {in: \"{{ range(40) | list }}\", iterator: i}\n"
                        "    tool: {kind: python, input: {i: \"{{ iter.i }}\"}, code: 'result = {\"i\": i, \"pad\": \"x\" * 1000}'}\n"
                        "    output: {aggregate_max_bytes: 10000}\n"
                        "    next: [{step: read}]\n"
                        "  - step: read\n    tool: {kind: python, input: {first: \"{{ start.results[0].i }}\","
                        " last: \"{{ start.results[39].i }}\", n: \"{{ start.results | length }}\"},"
                        " code: 'result = [first, last, n]'}\n")
    run = noetl("run", str(playbook), "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["result"] == [0, 39, 40]
    ref = doc["steps"]["start"]["result"]["results"]["_ref"]
    assert ref["count"] == 40 and ref["preview"].startswith('[{"i":0,"pad":"xxx')
