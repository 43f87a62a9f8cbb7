"""Results of any size (SPEC section 19) through the `noetl` CLI: references in the event log, lazy
templates, `output:` stores and slices, artifacts, `noetl result`, pruning."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from acceptance.conftest import FIXTURES

RESULTS = FIXTURES / "results"


def _events(noetl: Any, execution_id: str) -> list[dict[str, Any]]:
    listed = noetl("events", execution_id, "--json")
    assert listed.code == 0, listed.stderr
    events: list[dict[str, Any]] = listed.json()
    return events


def test_a_big_result_is_stored_by_reference_and_templates_read_through_it(noetl: Any, noetl_home: Path) -> None:
    run = noetl("run", str(RESULTS / "big_results.yaml"), "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    start = doc["steps"]["start"]["result"]
    # The status document shows the reference, its preview and the inline fields.
    assert set(start) == {"_ref", "count", "status"} and (start["count"], start["status"]) == (5000, "ok")
    ref = start["_ref"]
    assert ref["uri"].startswith("noetl://result/") and ref["size"] > 64 * 1024
    assert len(ref["sha256"]) == 64 and ref["preview"].startswith('{"count":5000')
    # Arcs, inputs (a slice and the whole result) and loop aggregates of references all resolve.
    assert doc["result"] == {"picks": [1, 2400, 0, 5000], "ref": ref["uri"]}
    loop = doc["steps"]["loop"]["result"]
    assert [("_ref" in r) for r in loop["results"]] == [True, True, True]
    # The event log holds references, not the data.
    events = _events(noetl, doc["execution_id"])
    assert max(len(json.dumps(e)) for e in events) < 8 * 1024
    with sqlite3.connect(noetl_home / "noetl.db") as db:
        assert db.execute("SELECT count(*), sum(size) FROM result").fetchone()[0] == 4

    whole = noetl("result", doc["execution_id"], "start")
    assert whole.code == 0, whole.stderr
    assert whole.json()["data"]["rows"][4999] == {"i": 4999, "pad": "x" * 40}
    one = noetl("result", doc["execution_id"], "loop", "--index", "2", "--output", str(noetl_home / "it.json"))
    assert one.code == 0, one.stderr
    assert json.loads((noetl_home / "it.json").read_text())["rows"] == ["y" * 100] * 2400
    assert (noetl_home / "it.json").stat().st_mode & 0o777 == 0o600
    nowhere = noetl("result", doc["execution_id"], "start", "--output", str(noetl_home / "no" / "such" / "r.json"))
    assert nowhere.code == 2 and "--output" in nowhere.stderr and "Traceback" not in nowhere.stderr
    assert noetl("result", doc["execution_id"], "loop", "--index", "3").code == 2
    missing = noetl("result", doc["execution_id"], "nope")
    assert missing.code == 2 and "no result for step 'nope'" in missing.stderr


def test_output_store_kinds_select_and_artifacts(noetl: Any, noetl_home: Path) -> None:
    run = noetl("run", str(RESULTS / "stores_and_select.yaml"), "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["result"] == {"by_ref": 3, "by_name": 2, "start_scheme": "file", "memory_scheme": "memory"}
    start = doc["steps"]["start"]["result"]
    path = Path(start["_ref"]["uri"].removeprefix("file://"))
    assert path.is_relative_to(noetl_home / "results") and ".exp" in path.name
    # `select` kept only the slice, under its `as` name.
    assert json.loads(path.read_text()) == {"items": [{"k": i, "blob": "z" * 300} for i in range(3)]}
    put = doc["steps"]["put"]["result"]
    assert put["name"] == "daily_items" and put["_ref"]["uri"].startswith("noetl://result/")


def test_a_bad_output_block_is_a_validation_error(noetl: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "bad.yaml"
    playbook.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: bad}\nworkflow:\n"
                        "  - step: start\n    tool: {kind: noop}\n    output: {store: {kind: tape}}\n")
    checked = noetl("validate", str(playbook))
    assert checked.code == 2
    assert "bad.yaml:7" in checked.stderr and "output.store.kind: 'tape' is not one of" in checked.stderr
    assert "Traceback" not in checked.stderr


def test_a_big_named_task_result_of_a_pipeline_goes_by_reference(noetl: Any) -> None:
    run = noetl("run", str(RESULTS / "pipeline_big.yaml"), "--json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["result"] == {"fetched": 10, "counted": 3000}
    assert doc["steps"]["start"]["result"] == {"n": 3000, "last": 2999}
    assert max(len(json.dumps(e)) for e in _events(noetl, doc["execution_id"])) < 8 * 1024


def test_prune_removes_results_past_their_ttl_then_by_age(noetl: Any, noetl_home: Path) -> None:
    doc = noetl("run", str(RESULTS / "short_ttl.yaml"), "--json").json()
    assert doc["status"] == "completed", doc["error"]
    execution_id = doc["execution_id"]
    assert noetl("result", execution_id, "start").json() == {"blob": "q" * 1000}
    # only the result whose ttl (1 s) has passed (stored before the run ended; the command since then counts too)
    time.sleep(max(0.0, datetime.fromisoformat(doc["ended_at"]).timestamp() + 1.2 - time.time()))
    assert noetl("prune").json() == {"results": 1, "duckdb_files": 0, "executions": 0}
    gone = noetl("result", execution_id, "start")
    assert gone.code == 2 and "not found (pruned" in gone.stderr and "Traceback" not in gone.stderr
    assert noetl("result", execution_id, "kept").json() == {"blob": "k" * 1000}
    assert noetl("prune", "--older-than", "1h").json() == {"results": 0, "duckdb_files": 0, "executions": 0}
    # the disk file, and the execution itself (it ended more than a second ago)
    assert noetl("prune", "--older-than", "1").json() == {"results": 1, "duckdb_files": 0, "executions": 1}
    assert not list((noetl_home / "results").glob("*/*.json"))
    bad = noetl("prune", "--older-than", "soon")
    assert bad.code == 2 and "--older-than: expected seconds or a duration" in bad.stderr


def test_secrets_are_redacted_before_a_result_is_stored(noetl: Any, noetl_home: Path, tmp_path: Path) -> None:
    secret = "s3cr3t-results-value-42"
    playbook = tmp_path / "leaky_big.yaml"
    playbook.write_text("""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: leaky_big}
workflow:
  - step: start
    tool: {kind: python, input: {t: "{{ secret.RESULTS_TOKEN }}"}, code: "result = {'rows': ['token ' + t] * 10000}"}
    output: {store: {kind: disk}}
""")
    run = noetl("run", str(playbook), "--json", env={"RESULTS_TOKEN": secret})
    assert run.code == 0, run.stderr
    doc = run.json()
    assert "_ref" in doc["steps"]["start"]["result"]
    whole = noetl("result", doc["execution_id"], "start")
    assert whole.json()["rows"][0] == "token ***"
    stored = [p.read_text() for p in (noetl_home / "results").glob("*/*.json")]
    assert stored and all(secret not in text for text in stored)
    assert secret not in run.stdout + whole.stdout


_PEAK_OF_NOETL = """
import atexit, sys
from noetl.cli.main import main

def peak() -> None:
    kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    sys.stderr.write(f"peak_kb={kb}\\n")

atexit.register(peak)
sys.argv = ["noetl", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_noetl_result_prints_a_big_result_without_copies_of_it(noetl: Any, noetl_home: Path, tmp_path: Path) -> None:
    # Printing decoded the stored bytes to text for click to encode again: a 52 MB result took 227 MB.
    import os
    import subprocess
    import sys

    playbook = tmp_path / "big.yaml"
    playbook.write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: big, path: t/big}\nworkflow:\n"
                        "  - step: start\n    tool: {kind: python, code: \"result = {'rows': ['x' * 1000] * 40000}\"}\n"
                        "    next: [{step: small}]\n"
                        "  - step: small\n    tool: {kind: python, code: 'result = 1'}\n")
    ran = noetl("run", str(playbook), "--json", timeout=120)
    assert ran.code == 0, ran.stderr
    execution_id = json.loads(ran.stdout)["execution_id"]

    def printed(step: str) -> tuple[int, bytes]:
        out = tmp_path / f"{step}.out"
        with out.open("wb") as sink:
            proc = subprocess.run([sys.executable, "-c", _PEAK_OF_NOETL, "result", execution_id, step], stdout=sink,
                                  stderr=subprocess.PIPE, env={**os.environ, "NOETL_HOME": str(noetl_home)},
                                  timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        return int(proc.stderr.decode().rsplit("peak_kb=", 1)[1]), out.read_bytes()

    small_kb, small = printed("small")
    big_kb, big = printed("start")
    assert small == b"1\n"
    size = len(big) - 1
    assert size > 40_000_000 and json.loads(big)["rows"][39999] == "x" * 1000
    assert (big_kb - small_kb) * 1024 < 3 * size, (big_kb, small_kb, size)  # 4.4x before, 2x now
