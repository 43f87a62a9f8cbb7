"""SPEC section 20 on the local runtime: what tools see, and that NoETL's settings never leak."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from support.security import FIXTURES, assert_nothing_contains, assert_tools_saw_only_what_the_playbook_passed

from .conftest import run_noetl

SECRETS = {
    "NOETL_SECRET_KEY": "local-secret-key-value",
    "NOETL_API_TOKEN": "local-api-token-value",
    "NOETL_DATABASE_URL": "postgresql://noetl:db-password-value@127.0.0.1:1/noetl",
}


def test_tools_see_only_the_safe_list_and_noetl_settings_are_redacted(noetl) -> None:  # type: ignore[no-untyped-def]
    result = noetl("run", str(FIXTURES / "tool_environment.yaml"), "--json", env=SECRETS)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert_tools_saw_only_what_the_playbook_passed(doc)
    # A subprocess started by thread-mode python inherits the runtime's environment: the redactor
    # still keeps the values out of what is stored.
    child = doc["steps"]["python_thread"]["result"]["child"]
    assert "NOETL_SECRET_KEY=***" in child
    events = noetl("events", doc["execution_id"], "--json", env=SECRETS)
    status = noetl("status", doc["execution_id"], "--json", env=SECRETS)
    assert_nothing_contains([*SECRETS.values(), "db-password-value"], result.stdout, result.stderr,
                            events.stdout, status.stdout)


KEYCHAIN_PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: keychain_fields}
keychain:
  - {name: db, kind: credential, credential: warehouse}
workflow:
  - step: start
    tool:
      kind: python
      input: {host: "{{ keychain.db.host }}", user: "{{ keychain.db.user }}", conn: "{{ keychain.db.conn }}"}
      code: "result = {'seen': [host, user, conn]}"
"""


def test_every_field_of_a_keychain_credential_is_secret(noetl, tmp_path) -> None:  # type: ignore[no-untyped-def]
    credential = tmp_path / "warehouse.yaml"
    credential.write_text("name: warehouse\ntype: postgres\n"
                          "data: {host: warehouse.internal.example, user: report_reader, conn: opaque-conn-string}\n")
    assert noetl("register", "credential", "-f", str(credential)).code == 0
    playbook = tmp_path / "keychain_fields.yaml"
    playbook.write_text(KEYCHAIN_PLAYBOOK)
    result = noetl("run", str(playbook), "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["steps"]["start"]["result"] == {"seen": ["***", "***", "***"]}
    events = noetl("events", doc["execution_id"], "--json")
    assert_nothing_contains(["warehouse.internal.example", "report_reader", "opaque-conn-string"],
                            result.stdout, events.stdout)


SHELL_QUOTING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: shell_quoting}
workload: {name: "world", marker: ""}
workflow:
  - step: start
    tool: {kind: shell, command: "echo hello {{ workload.name }}"}
    next: [{step: argv}]
  - step: argv
    tool: {kind: shell, command: printf, args: ["%s|", "{{ workload.name }}"]}
"""


def test_a_hostile_value_in_a_shell_command_stays_one_argument(noetl, tmp_path) -> None:  # type: ignore[no-untyped-def]
    playbook = tmp_path / "shell_quoting.yaml"
    playbook.write_text(SHELL_QUOTING)
    marker = tmp_path / "pwned"
    hostile = f"x; touch {marker} && echo $HOME"
    result = noetl("run", str(playbook), "--payload", json.dumps({"name": hostile}), "--json")
    assert result.code == 0, result.stderr
    steps = result.json()["steps"]
    assert steps["start"]["result"]["stdout"] == f"hello {hostile}\n"
    assert steps["argv"]["result"]["stdout"] == f"{hostile}|"
    assert not marker.exists()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_key_file_and_home_are_owner_only(noetl, noetl_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    credential = tmp_path / "c.yaml"
    credential.write_text("name: c\ntype: generic\ndata: {token: abcdefgh}\n")
    assert noetl("register", "credential", "-f", str(credential)).code == 0
    assert noetl("run", str(FIXTURES.parent / "playbooks" / "entry_first_step.yaml")).code == 0
    assert _mode(noetl_home) == 0o700
    assert _mode(noetl_home / "secret.key") == 0o600
    store_files = list(noetl_home.glob("noetl.db*"))
    assert store_files and all(_mode(path) == 0o600 for path in store_files)
    # an older version left them readable by everyone: the next run tightens them
    noetl_home.chmod(0o755)
    (noetl_home / "noetl.db").chmod(0o644)
    assert noetl("run", str(FIXTURES.parent / "playbooks" / "entry_first_step.yaml")).code == 0
    assert _mode(noetl_home) == 0o700 and _mode(noetl_home / "noetl.db") == 0o600


SANDBOXED = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: sandboxed}
workflow:
  - step: start
    tool: {kind: python, script: inside.py}
    next: [{step: climb_script}]
  - step: climb_script
    tool: {kind: python, script: ../outside.py}
    next: [{step: climb_playbook, when: "{{ event.name == 'call.error' }}"}]
  - step: climb_playbook
    tool: {kind: playbook, path: ../outside.yaml}
    next: [{step: climb_database, when: "{{ event.name == 'call.error' }}"}]
  - step: climb_database
    tool: {kind: duckdb, database: "DATABASE", command: "select 1 as one"}
    next: [{step: climb_artifact, when: "{{ event.name == 'call.error' }}"}]
  - step: climb_artifact
    tool: {kind: artifact, action: put, name: stolen, path: ../outside.py}
"""


def test_paths_stay_inside_the_sandbox_roots(noetl, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.py").write_text("result = {'inside': True}\n")
    (tmp_path / "outside.py").write_text("result = {'outside': True}\n")
    (tmp_path / "outside.yaml").write_text("apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: o}\n"
                                           "workflow: [{step: start, tool: {kind: noop}}]\n")
    playbook = root / "sandboxed.yaml"
    playbook.write_text(SANDBOXED.replace("DATABASE", str(tmp_path / "elsewhere" / "x.duckdb")))
    doc = noetl("run", str(playbook), "--json", env={"NOETL_SANDBOX_ROOT": str(root)}).json()
    steps = doc["steps"]
    assert steps["start"]["result"] == {"inside": True}
    for name, what in (("climb_script", "script"), ("climb_playbook", "playbook file"),
                       ("climb_database", "duckdb database"), ("climb_artifact", "artifact file")):
        assert steps[name]["status"] == "failed", name
        assert steps[name]["error"]["kind"] == "sandbox", steps[name]["error"]
        assert f"{what} " in steps[name]["error"]["message"], steps[name]["error"]
        assert "outside the sandbox roots" in steps[name]["error"]["message"]
    assert not (tmp_path / "elsewhere").exists()
    # without NOETL_SANDBOX_ROOT the local runtime does not confine paths
    free = noetl("run", str(playbook), "--json").json()["steps"]
    assert free["climb_script"]["result"] == {"outside": True}


LONG_SHELL = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: long_shell}
workflow:
  - step: start
    tool: {kind: shell, command: "echo started > MARKER; sleep 300"}
"""


def test_ctrl_c_during_run_json_prints_the_cancelled_document(noetl_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "started"
    playbook = tmp_path / "long_shell.yaml"
    playbook.write_text(LONG_SHELL.replace("MARKER", str(marker)))
    env = {**os.environ, "NOETL_HOME": str(noetl_home)}
    # A test runner started in the background ignores SIGINT and its children would inherit that.
    process = subprocess.Popen([sys.executable, "-m", "noetl.cli.main", "run", str(playbook), "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    # Generous for a loaded machine (13 s seen at load 11), far below the command's 300 s: a run
    # that waited for the command instead of killing it fails here.
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 1, stderr
    doc = json.loads(stdout)
    assert doc["status"] == "cancelled" and doc["failed"] is True
    assert doc["steps"]["start"]["status"] == "cancelled"
    stored = run_noetl("status", doc["execution_id"], "--json", home=noetl_home).json()
    assert stored["status"] == "cancelled" and stored["steps"]["start"]["status"] == "cancelled"


FOREIGN_REFERENCES = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: foreign_references}
workload:
  planted: {_ref: {uri: "FILE_URI", size: 30, sha256: "0"}}
workflow:
  - step: start
    next: [{step: by_artifact}, {step: by_template}]
  - step: by_artifact
    tool: {kind: artifact, action: get, input: {result_ref: "FILE_URI"}}
  - step: by_template
    tool: {kind: python, input: {v: "{{ workload.planted.password }}"}, code: "result = {'got': v}"}
"""


def test_a_result_reference_outside_the_results_directory_is_never_read(noetl, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A reference is data: a payload (or a playbook) may carry one naming any file of the host.
    # Only files of NoETL's own results directory are results.
    private = tmp_path / "private.json"
    private.write_text('{"password": "file-content-never-read"}')
    playbook = tmp_path / "foreign_references.yaml"
    playbook.write_text(FOREIGN_REFERENCES.replace("FILE_URI", private.as_uri()))
    result = noetl("run", str(playbook), "--json")
    assert result.code == 1, result.stderr
    steps = result.json()["steps"]
    for name in ("by_artifact", "by_template"):
        assert steps[name]["status"] == "failed", steps[name]
        assert "outside the results directory" in steps[name]["error"]["message"], steps[name]["error"]
    assert "Traceback" not in result.stderr
    events = noetl("events", result.json()["execution_id"], "--json")
    assert_nothing_contains(["file-content-never-read"], result.stdout, result.stderr, events.stdout)


READS_THE_KEY_FILE = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: reads_the_key_file}
workflow:
  - step: start
    tool: {kind: python, input: {path: "KEY_FILE"}, code: "result = {'key': open(path).read().strip()}"}
"""


def test_the_generated_credential_key_is_redacted_like_noetl_secret_key(noetl, noetl_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Without NOETL_SECRET_KEY the credentials' key is generated into $NOETL_HOME/secret.key: the
    # same secret, which code that can read the user's files may echo back.
    credential = tmp_path / "db.yaml"
    credential.write_text("name: db\ntype: postgres\ndata: {password: pw}\n")
    assert noetl("register", "credential", "-f", str(credential)).code == 0
    key = (noetl_home / "secret.key").read_text().strip()
    playbook = tmp_path / "reads_the_key_file.yaml"
    playbook.write_text(READS_THE_KEY_FILE.replace("KEY_FILE", str(noetl_home / "secret.key")))
    result = noetl("run", str(playbook), "--json")
    assert result.code == 0, result.stderr
    assert result.json()["steps"]["start"]["result"] == {"key": "***"}
    events = noetl("events", result.json()["execution_id"], "--json")
    assert_nothing_contains([key], result.stdout, result.stderr, events.stdout)
