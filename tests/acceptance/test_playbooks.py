"""Acceptance: every construct, through the `noetl` command, on fixture playbooks.

Each `tests/fixtures/playbooks/NAME.yaml` with a `NAME.expect.json` beside it is run and compared
like the conformance cases; replaying the stored log must give the same status document.
"""

from __future__ import annotations

import json

import pytest

from .conftest import FIXTURES
from .test_conformance import check_outcome

CASES = sorted(p.name.removesuffix(".expect.json") for p in FIXTURES.glob("*.expect.json"))


@pytest.mark.parametrize("case", CASES)
def test_fixture_playbook(case: str, noetl) -> None:  # type: ignore[no-untyped-def]
    expect = json.loads((FIXTURES / f"{case}.expect.json").read_text())
    result = noetl("run", str(FIXTURES / f"{case}.yaml"), "--json", *expect.get("args", []))
    assert result.stdout, result.stderr
    doc = result.json()
    check_outcome(doc, result.code, expect)
    assert noetl("status", doc["execution_id"], "--json").json() == doc
