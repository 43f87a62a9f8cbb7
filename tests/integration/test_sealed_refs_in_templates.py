"""Templates see a big result that holds a secret as its reference and its data, never the sealed
part the runtime reads it with (``_ref.sealed``: the key that opens the result as returned, and the
secret values in it): not through ``{{ step._ref }}``, ``| tojson``, a text, ``ctx``/``vars`` dumps or
a loop's aggregate, sent to an http server or returned as a result; on both runtimes. Later steps
still read the result as returned (tests/integration/test_sealed_big_results.py)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from support.httpserver import LocalHTTPServer
from test_distributed_cluster import Cluster, create_database

TOKEN = "view-canary-" + secrets.token_hex(12)

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sealed_views, path: tests/sealed_views}
workload: {api: "http://127.0.0.1:1"}
workflow:
  - step: start
    tool: {kind: secrets, provider: env, name: VIEW_CANARY}
    next: [{step: big}]
  - step: big
    tool:
      kind: python
      input: {token: "{{ start.value }}"}
      output: {inline_max_bytes: 0}
      code: "result = {'token': token, 'rows': ['x' * 100] * 5}"
    set: {ctx.kept: "{{ big }}"}
    next: [{step: many}]
  - step: many
    loop: {in: "{{ [1, 2] }}", iterator: n}
    tool:
      kind: python
      input: {token: "{{ start.value }}", n: "{{ iter.n }}"}
      output: {inline_max_bytes: 0, inline_max_items: INLINE_ITEMS}
      code: "result = {'token': token, 'n': n}"
    next: {arcs: [{step: tell, when: "{{ event.name == 'loop.done' }}"}]}
  - step: tell
    tool:
      kind: http
      method: POST
      url: "{{ workload.api }}/echo"
      json:
        ref: "{{ big._ref }}"
        ref_item: "{{ big['_ref'] }}"
        ref_json: "{{ big._ref | tojson }}"
        whole_json: "{{ big | tojson }}"
        text: "big is {{ big }}, {{ big | string }}, {{ '%s' % big }}, {{ 'x' ~ big }}"
        ctx_json: "{{ ctx | tojson }}"
        vars_text: "vars: {{ vars }}"
        workload_json: "{{ workload | tojson }}"
        loop_json: "{{ many | tojson }}"
        loop_text: "{{ many.results | join(',') }}"
        pairs: "{{ big | dictsort }}"
        dug_out: "{{ (big | dictsort)[0][1].sealed }} {{ (big | dictsort)[0][1]['sealed'] }}"
        loop_all: "{{ many.results }}"
        loop_whole: "{{ many }}"
    next: [{step: shell_view}]
  - step: shell_view
    tool: {kind: shell, command: "echo {{ big }} {{ ctx }} {{ big._ref }} {{ many }} {{ big | unquoted }}"}
    next: [{step: returned}]
  - step: returned
    tool:
      kind: python
      input: {ref: "{{ big._ref }}", loop_ref: "{{ many.results[0]._ref }}", token: "{{ big.token }}"}
      code: |
        import hashlib
        result = {"ref_fields": sorted(ref), "loop_ref_fields": sorted(loop_ref),
                  "digest": hashlib.sha256(token.encode()).hexdigest()}
"""

PUBLIC_FIELDS = ["preview", "sha256", "size", "uri"]


def _assert_nothing_sealed_went_out(doc: dict[str, Any], server: LocalHTTPServer) -> None:
    import hashlib

    assert doc["status"] == "completed", json.dumps(doc.get("error"))
    shell = doc["steps"]["shell_view"]["result"]["stdout"]
    assert '"uri"' in shell and '"sealed"' not in shell, shell
    returned = doc["steps"]["returned"]["result"]
    assert returned["ref_fields"] == PUBLIC_FIELDS and returned["loop_ref_fields"] == PUBLIC_FIELDS, returned
    assert returned["digest"] == hashlib.sha256(TOKEN.encode()).hexdigest()  # later steps read it as returned
    body = [request["body"].decode() for request in server.requests if request["path"] == "/echo"][-1]
    sent = json.loads(body)
    assert sorted(sent["ref"]) == PUBLIC_FIELDS and sorted(sent["ref_item"]) == PUBLIC_FIELDS, sent
    assert json.loads(sent["whole_json"])["_ref"]["uri"] == sent["ref"]["uri"]
    assert '"sealed"' not in body and "'sealed'" not in body, body
    # A tool given a whole value gets the results themselves, the secret in them as returned.
    assert sent.pop("loop_all") == [{"token": TOKEN, "n": 1}, {"token": TOKEN, "n": 2}]
    assert sent.pop("loop_whole")["results"] == [{"token": TOKEN, "n": 1}, {"token": TOKEN, "n": 2}]
    assert TOKEN not in json.dumps(sent)


@pytest.mark.parametrize("inline_items", [10, 1], ids=["loop inline", "loop by reference"])
def test_templates_never_show_a_references_sealed_part_locally(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_server: LocalHTTPServer, inline_items: int) -> None:
    from noetl.api import run_playbook

    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VIEW_CANARY", TOKEN)
    doc = run_playbook(PLAYBOOK.replace("INLINE_ITEMS", str(inline_items)), {"api": http_server.url},
                       store_url=f"sqlite:///{tmp_path / 'noetl.db'}")
    _assert_nothing_sealed_went_out(doc, http_server)


def test_templates_never_show_a_references_sealed_part_on_a_worker(
        pg_cluster: dict[str, Any], tmp_path: Path, http_server: LocalHTTPServer) -> None:
    cluster = Cluster(create_database(pg_cluster), tmp_path / "cluster")
    try:
        cluster.start_server()
        cluster.start_worker("w1", concurrency=2, env={"VIEW_CANARY": TOKEN})
        cluster.register(PLAYBOOK.replace("INLINE_ITEMS", "1"))
        doc = cluster.wait(cluster.execute("tests/sealed_views", {"api": http_server.url}), timeout=120)
        _assert_nothing_sealed_went_out(doc, http_server)
    finally:
        cluster.close()
