"""The shell tool: results, failures, environment, working directory and timeouts."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from noetl.errors import ToolError
from noetl.tools.base import ToolCall
from noetl.tools.shell import run_shell


def make_call(**fields: Any) -> ToolCall:
    return ToolCall(execution_id="exec-1", step="sh", task="sh", **{"context": {}, **fields})


def run(config: dict[str, Any], call: ToolCall | None = None) -> Any:
    return asyncio.run(run_shell(config, call or make_call()))


def failure(config: dict[str, Any], call: ToolCall | None = None) -> ToolError:
    with pytest.raises(ToolError) as caught:
        run(config, call)
    return caught.value


def test_command_returns_returncode_stdout_and_stderr() -> None:
    assert run({"command": "echo hello; echo warning >&2"}) == {
        "returncode": 0,
        "stdout": "hello\n",
        "stderr": "warning\n",
    }


def test_multi_line_command_runs_as_one_script() -> None:
    assert run({"command": "x=4\necho $((x * 2))"})["stdout"] == "8\n"


def test_cmds_run_in_order_and_return_the_last_result_plus_all_results() -> None:
    result = run({"cmds": ["echo one", "echo two"]})
    assert result["stdout"] == "two\n"
    assert [step["stdout"] for step in result["results"]] == ["one\n", "two\n"]
    assert result["results"][0]["command"] == "echo one"


def test_non_zero_exit_is_a_shell_error_naming_code_and_last_stderr_line() -> None:
    error = failure({"command": "echo partial; echo first >&2; echo disk full >&2; exit 3"})
    assert error.kind == "shell"
    assert error.message == "command exited with code 3: disk full"
    assert error.details["returncode"] == 3
    assert error.details["stdout"] == "partial\n"
    assert error.details["stderr"] == "first\ndisk full\n"


def test_cmds_stop_at_the_first_failure(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    error = failure({"cmds": ["true", "exit 2", f"touch {marker}"]})
    assert error.message == "command 2 of 3 exited with code 2"
    assert len(error.details["results"]) == 2
    assert not marker.exists()


def test_commands_see_only_the_safe_list_and_the_steps_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", "runtime-secret-key")
    monkeypatch.setenv("SOME_RUNTIME_VARIABLE", "not for tools")
    monkeypatch.setenv("TZ", "UTC")
    env = {"GREETING": "hi", "COUNT": 3, "FLAG": True, "TZ": None}
    names = {line.split("=", 1)[0] for line in run({"command": "env", "env": env})["stdout"].splitlines()}
    # /bin/sh itself adds PWD (and some shells SHLVL and _).
    assert {"GREETING", "COUNT", "FLAG", "PATH"} <= names
    assert names - {"PWD", "SHLVL", "_"} <= {"GREETING", "COUNT", "FLAG", "PATH", "HOME", "LANG"}
    command = 'echo "$GREETING $COUNT $FLAG [${NOETL_SECRET_KEY:-}] [${TZ:-}]"'
    assert run({"command": command, "env": env})["stdout"] == "hi 3 true [] []\n"


def test_cwd(tmp_path: Path) -> None:
    assert run({"command": "pwd", "cwd": str(tmp_path)})["stdout"].strip() == str(tmp_path.resolve())


def test_missing_cwd_is_a_config_error(tmp_path: Path) -> None:
    assert failure({"command": "pwd", "cwd": str(tmp_path / "nope")}).kind == "config"


def test_missing_command_is_a_config_error() -> None:
    assert failure({}).kind == "config"
    assert failure({"cmds": []}).kind == "config"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    error = failure({"command": f"echo started; sleep 30 & echo $! > {pid_file}; wait", "timeout": 0.5})
    assert time.monotonic() - started < 5
    assert error.kind == "timeout"
    assert error.retryable is True
    assert error.message == "timed out after 0.5 s"
    assert error.details["stdout"] == "started\n"
    background_pid = int(pid_file.read_text())
    assert not _process_alive(background_pid)


def test_a_command_ends_when_its_shell_exits_though_a_background_process_holds_its_output(tmp_path: Path) -> None:
    pid_file = tmp_path / "background.pid"
    # The step's own time limit only bounds the test: the step must end long before it.
    result = run({"command": f"sleep 300 & echo $! > {pid_file}; echo started", "timeout": 60})
    assert result["returncode"] == 0
    assert result["stdout"] == "started\n"
    assert not _process_alive(int(pid_file.read_text()))  # what the step left running does not outlive it


def test_step_timeout_applies_when_the_config_has_none() -> None:
    started = time.monotonic()
    assert failure({"command": "sleep 30"}, make_call(timeout=0.3)).kind == "timeout"
    assert time.monotonic() - started < 5


def test_cancelling_the_step_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "shell.pid"

    async def cancel_soon() -> None:
        task = asyncio.create_task(run_shell({"command": f"echo $$ > {pid_file}; sleep 30"}, make_call()))
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())
    assert not _process_alive(int(pid_file.read_text()))


def test_a_cancel_while_the_command_starts_kills_what_the_command_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Ctrl-C can land after the shell was forked but before asyncio has handed the process back
    # (a loaded machine runs the shell before the loop gets round to it). The step must still
    # end at once, killing what the shell started, not wait for it (`noetl run` of `...; sleep 30`
    # ended 30 s after the Ctrl-C). Without the fix this test waits out the 120 s test timeout.
    from asyncio.unix_events import _UnixSubprocessTransport  # type: ignore[attr-defined]

    pid_file = tmp_path / "background.pid"
    step: list[asyncio.Task[Any]] = []
    fork = _UnixSubprocessTransport._start

    def fork_then_stall(self: Any, *args: Any, **kwargs: Any) -> None:
        fork(self, *args, **kwargs)
        step[0].cancel()  # the Ctrl-C, while the loop stands still right after the fork
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline, "the shell did not start"
            time.sleep(0.01)

    monkeypatch.setattr(_UnixSubprocessTransport, "_start", fork_then_stall)

    async def cancelled_at_start() -> None:
        step.append(asyncio.current_task())  # type: ignore[arg-type]
        with pytest.raises(asyncio.CancelledError):
            await run_shell({"command": f"sleep 600 & echo $! > {pid_file}; wait"}, make_call())

    asyncio.run(cancelled_at_start())
    assert not _process_alive(int(pid_file.read_text()))


def _process_alive(pid: int) -> bool:
    # The killed process may be a zombie of an unrelated parent for an instant; give it a moment (on a
    # loaded machine the kernel may need more than a second or two to let it exit).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        if _is_zombie(pid):
            return False
        time.sleep(0.05)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_values_rendered_into_a_command_are_shell_quoted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f"x; touch {marker}; echo $(id) `id` \"quoted\" 'single'"
    call = make_call(context={"workload": {"name": hostile, "n": 3, "flag": True}})
    result = run({"command": "echo {{ workload.name }} {{ workload.n }} {{ workload.flag }}"}, call)
    assert result["stdout"] == f"{hostile} 3 true\n"
    assert not marker.exists()
    listed = run({"cmds": ["printf '%s\\n' {{ workload.name }}"]}, call)
    assert listed["stdout"] == f"{hostile}\n" and not marker.exists()


def test_the_unquoted_filter_pastes_shell_code_and_a_lone_expression_is_the_script() -> None:
    call = make_call(context={"workload": {"pipeline": "echo a | tr a b", "script": "echo one; echo two"}})
    assert run({"command": "{{ workload.pipeline | unquoted }}"}, call)["stdout"] == "b\n"
    assert run({"command": "{{ workload.script }}"}, call)["stdout"] == "one\ntwo\n"


def test_args_list_runs_one_program_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker}); *"
    call = make_call(context={"workload": {"program": "printf"}})
    result = run({"command": "{{ workload.program }}", "args": ["%s|", hostile, "two words", 7]}, call)
    assert result["stdout"] == f"{hostile}|two words|7|"
    assert not marker.exists()
    assert run({"args": ["echo", "a  b"]})["stdout"] == "a  b\n"
    missing = failure({"args": ["no-such-program-for-noetl"]})
    assert missing.kind == "shell" and "no-such-program-for-noetl" in missing.message
    assert failure({"args": "echo hi"}).kind == "config"
