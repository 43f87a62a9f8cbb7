"""A big result (stored by reference) that holds a secret: stored redacted with the result sealed
beside it, so the steps after it read the secret, in the execution that produced it only. The
distributed runtimes run the same case in tests/integration/test_secret_leaks.py."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from noetl.api import run_playbook

TOKEN = "big-canary-" + secrets.token_hex(12)

PRODUCER = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big_secret, path: tests/big_secret}
workflow:
  - step: start
    tool: {kind: secrets, provider: env, name: BIG_CANARY}
    next: [{step: big}]
  - step: big
    tool:
      kind: python
      input: {token: "{{ start.value }}"}
      output: {inline_max_bytes: 0, store: {kind: STORE}}
      code: "result = {'token': token, 'rows': ['x' * 100] * 50}"
    next: [{step: use}]
  - step: use
    tool:
      kind: python
      input: {token: "{{ big.token }}", rows: "{{ big.rows | length }}"}
      code: |
        import hashlib
        result = {'digest': hashlib.sha256(token.encode()).hexdigest(), 'rows': rows}
"""

# Another execution handed the first one's reference, as its status document shows it.
BORROWER = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: borrower, path: tests/borrower}
workflow:
  - step: start
    tool:
      kind: python
      input: {token: "{{ workload.borrowed.token }}"}
      code: "result = token"
"""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _rows_holding(path: Path, value: str) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [f"{table}.{column}" for table in tables
                for column in [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
                if conn.execute(f'SELECT count(*) FROM "{table}" WHERE instr(CAST("{column}" AS BLOB), '
                                'CAST(? AS BLOB)) > 0', (value,)).fetchone()[0]]
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["db", "disk"])
def test_a_big_result_holding_a_secret_is_read_by_later_steps_and_stored_only_sealed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BIG_CANARY", TOKEN)
    store = f"sqlite:///{tmp_path / 'home' / 'noetl.db'}"
    doc = run_playbook(PRODUCER.replace("STORE", kind), store_url=store)
    assert doc["status"] == "completed", doc["error"]
    assert doc["result"] == {"digest": _digest(TOKEN), "rows": 50}
    ref = doc["steps"]["big"]["result"]["_ref"]
    assert ref["sealed"]["key"] == "***" and ref["sealed"]["secrets"] == ["***"], ref
    # Nothing holds the secret, or the key that opens its sealed copy, in plain text: the key is
    # only inside the event's own sealed copy (encrypted with the credential key).
    key = _sealed_key(store, doc["execution_id"])
    files = [path for path in (tmp_path / "home").rglob("*") if path.is_file()]
    for value in (TOKEN, key):
        assert _rows_holding(tmp_path / "home" / "noetl.db", value) == []
        assert not [path for path in files if value.encode() in path.read_bytes()]
    # A reference is data: another execution given it reads the redacted result.
    borrowed = run_playbook(BORROWER, {"borrowed": doc["steps"]["big"]["result"]}, store_url=store)
    assert borrowed["status"] == "completed", borrowed["error"]
    assert borrowed["result"] == "***"


def _sealed_key(store_url: str, execution_id: str) -> str:
    from noetl.api import open_store
    from noetl.runtime.sealing import unsealed

    async def events() -> list[Any]:
        store = await open_store(store_url)
        try:
            return await store.list_events(execution_id, limit=None)
        finally:
            await store.close()

    exits = [unsealed(event) for event in asyncio.run(events()) if event.node_name == "big" and event.result]
    key = exits[-1].result["_ref"]["sealed"]["key"]
    assert isinstance(key, str) and len(key) == 44
    return key
