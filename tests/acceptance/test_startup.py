"""`noetl run` starts fast: a playbook run again comes from the cache of validated playbooks, prints
exactly what the first run printed, and a run imports only what its tools need."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import run_noetl

WARNED = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: warned}
workflow:
  - step: start
    colour: blue
    input: {city: "{{ nowhere }}"}
    tool: {kind: python, code: "result = 1"}
    next: {arcs: [{step: end}]}
  - step: end
"""

FAILING = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: failing}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        x = 1
        raise ValueError("boom")
    next: {arcs: [{step: end}]}
  - step: end
"""

PLAIN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: plain}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1"}
    next: {arcs: [{step: b}]}
  - step: b
    tool: {kind: noop}
    next: {arcs: [{step: end}]}
  - step: end
"""


def _masked(text: str) -> str:
    text = re.sub(r"\b\d{15,}\b", "ID", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", "TIME", text)
    text = re.sub(r'"duration_seconds": [\d.]+', '"duration_seconds": T', text)
    return re.sub(r"\d+\.\d+ s\b", "T s", text)


def test_a_second_run_prints_what_the_first_printed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for name, text, code in (("warned", WARNED, 0), ("failing", FAILING, 1)):
        playbook = tmp_path / f"{name}.yaml"
        playbook.write_text(text)
        for args in (("run", str(playbook)), ("run", str(playbook), "--json")):
            first, second = run_noetl(*args, home=home), run_noetl(*args, home=home)
            assert first.code == second.code == code, first.stderr
            assert _masked(second.stdout) == _masked(first.stdout)
            assert _masked(second.stderr) == _masked(first.stderr)
    assert len(list((home / "cache" / "playbooks").glob("*.json"))) == 2
    warned = run_noetl("run", str(tmp_path / "warned.yaml"), home=home)
    assert f"{tmp_path / 'warned.yaml'}:6:5: warning: unknown key 'colour'" in warned.stderr
    assert f"{tmp_path / 'warned.yaml'}:7:" in warned.stderr and "nowhere" in warned.stderr


def test_a_second_run_of_a_changed_playbook_sees_the_change(tmp_path: Path) -> None:
    home, playbook = tmp_path / "home", tmp_path / "p.yaml"
    playbook.write_text(PLAIN)
    assert run_noetl("run", str(playbook), home=home).code == 0
    playbook.write_text(PLAIN.replace("{step: end}", "{step: nowhere}"))
    broken = run_noetl("run", str(playbook), home=home)
    assert broken.code == 2 and "nowhere" in broken.stderr


HEAVY = ("fastapi", "uvicorn", "psycopg", "httpx", "duckdb", "yaml", "jinja2", "importlib.metadata", "ssl", "_ssl",
         "pydantic", "noetl.dsl.model", "croniter", "noetl.server")


def test_running_a_python_and_noop_playbook_imports_no_heavy_module(tmp_path: Path) -> None:
    """Run again (its checks cached), a playbook without templates whose tools need neither the
    server nor a database client imports none of them, nor YAML, Jinja, pydantic's plugin scan or
    OpenSSL (asyncio's ssl support waits for a TLS connection)."""
    home, playbook = tmp_path / "home", tmp_path / "p.yaml"
    playbook.write_text(PLAIN)
    assert run_noetl("run", str(playbook), home=home).code == 0
    probe = ("import json, runpy, sys\n"
             f"sys.argv = ['noetl', 'run', {str(playbook)!r}]\n"
             "try:\n    runpy.run_module('noetl.cli.main', run_name='__main__')\n"
             "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
             "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NOETL_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert "noetl.runtime.local" in modules
    assert sorted(m for m in HEAVY if m in modules) == []
