"""``shell``: run commands with ``/bin/sh -c`` (or a program without a shell) and return
``{returncode, stdout, stderr}``.

Config: ``command`` (one string, may span several lines) or ``cmds`` (a list run in order, stopping
at the first failure); values rendered into them are shell-quoted (:mod:`noetl.tools.shellquote`).
``args`` (a list) runs one program without a shell: ``command`` names it (or the first item does)
and every item is exactly one argument. ``env`` holds the only variables the commands see besides
PATH, HOME, LANG and TZ (:mod:`noetl.tools.environment`; a ``null`` value unsets one). ``cwd``;
``timeout`` (seconds, for all the commands together; the step's ``spec.timeout`` applies too,
whichever is shorter).

Each command runs in its own process group, so a timeout or a cancelled step kills whatever the
command started as well, not just the shell. Output is decoded as UTF-8 (undecodable bytes
replaced) and kept up to 8 MiB per stream in the result; as it is read it is also streamed as the
execution's logs (``ToolCall.output``), so a long command's lines are seen while it runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import os
import signal
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noetl.dsl.render import render_value
from noetl.dsl.shellcode import shell_text
from noetl.errors import ToolError
from noetl.tools.base import OutputSink, ToolCall
from noetl.tools.environment import tool_environment
from noetl.tools.shellquote import render_commands
from noetl.waiting import within

_SHELL = "/bin/sh"
_MAX_OUTPUT_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 64 * 1024
_DRAIN_AFTER_KILL_SECONDS = 5.0  # a killed group closes its pipes at once; do not wait forever
# After the shell exits, what it wrote is read at once; a background process still holding its output
# would keep the step (and `noetl run`) waiting for it, so it is stopped with the step's group.
_PIPES_AFTER_EXIT_SECONDS = 1.0


async def run_shell(config: dict[str, Any], call: ToolCall) -> Any:
    argv = _argument_list(config, call)
    if argv is None:
        config = render_commands(config, call.context, step=call.step)
        scripts = _commands(config)
        runs: list[tuple[Any, list[str]]] = [(script, [_SHELL, "-c", script]) for script in scripts]
    else:
        runs = [(argv, argv)]
    env = tool_environment(config.get("env"), tool="shell", safe=call.environment)
    cwd = _working_directory(config.get("cwd"))
    deadline = _deadline(_timeout(config.get("timeout"), call.timeout))
    results: list[dict[str, Any]] = []
    for index, (shown, run_argv) in enumerate(runs):
        outcome = await _run_command(run_argv, env=env, cwd=cwd, deadline=deadline, output=call.output)
        results.append({"command": shown, **outcome.as_result()})
        if outcome.timed_out:
            raise _timeout_error(outcome, deadline, results)
        if outcome.returncode != 0:
            raise _exit_error(outcome, index, len(runs), results)
    last = {key: value for key, value in results[-1].items() if key != "command"}
    return last if config.get("cmds") is None else {**last, "results": results}


# ---- configuration


def _argument_list(config: dict[str, Any], call: ToolCall) -> list[str] | None:
    """``args:`` as a list: the program and its arguments, run without a shell (None otherwise)."""
    args = config.get("args")
    if args is None or isinstance(args, dict):
        return None  # a mapping of `args` is the step's input (older spelling), not an argument list
    if not isinstance(args, list):
        raise ToolError("shell `args` must be a list of arguments", kind="config")
    if config.get("cmds") is not None or config.get("command_b64") is not None:
        raise ToolError("shell: `args` runs one program; give it with `command` (or as the first item), not `cmds`",
                        kind="config")
    program = config.get("command")
    if isinstance(program, str):  # the runner leaves `command` to this tool; no shell here, so no quoting
        program = render_value(program, call.context, where=f"step {call.step!r} command")
    argv = [shell_text(item) for item in ([program, *args] if program is not None else args)]
    if not argv or not argv[0].strip():
        raise ToolError("shell `args` needs a program: `command: NAME` or a non-empty first item", kind="config")
    return argv


def _commands(config: dict[str, Any]) -> list[str]:
    has_list = config.get("cmds") is not None
    has_single = config.get("command") is not None or config.get("command_b64") is not None
    if has_list and has_single:
        raise ToolError("shell: give either `cmds` (a list) or `command` (a string), not both", kind="config")
    if has_list:
        commands = config["cmds"]
        if isinstance(commands, str):
            commands = [commands]
        if not isinstance(commands, list) or not commands:
            raise ToolError("shell `cmds` must be a non-empty list of command strings", kind="config")
    else:
        commands = [_single_command(config)]
    for command in commands:
        if not isinstance(command, str) or not command.strip():
            raise ToolError(
                f"shell: every command must be a non-empty string, got {command!r}", kind="config"
            )
    return commands


def _single_command(config: dict[str, Any]) -> str:
    encoded = config.get("command_b64")
    if encoded is not None:
        try:
            return base64.b64decode(str(encoded), validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise ToolError(
                f"shell `command_b64` is not valid base64 UTF-8 text: {exc}", kind="config"
            ) from None
    command = config.get("command")
    if command is None:
        raise ToolError("shell tool needs `command` (a string) or `cmds` (a list)", kind="config")
    return command if isinstance(command, str) else str(command)


def _working_directory(cwd: Any) -> str | None:
    if cwd is None or cwd == "":
        return None
    path = Path(str(cwd)).expanduser()
    if not path.is_dir():
        raise ToolError(f"shell `cwd` {str(cwd)!r} is not a directory", kind="config")
    return str(path)


def _timeout(configured: Any, step_timeout: float | None) -> float | None:
    limits = [step_timeout] if step_timeout is not None else []
    if configured is not None and configured != "":
        try:
            limits.append(float(configured))
        except (TypeError, ValueError):
            raise ToolError(
                f"shell `timeout` must be a number of seconds, got {configured!r}", kind="config"
            ) from None
    return min(limits) if limits else None


@dataclass(frozen=True, slots=True)
class _Deadline:
    seconds: float | None  # the configured limit, for messages
    at: float | None  # loop time by which every command must have finished

    def remaining(self) -> float | None:
        if self.at is None:
            return None
        return max(0.0, self.at - asyncio.get_running_loop().time())


def _deadline(seconds: float | None) -> _Deadline:
    if seconds is None:
        return _Deadline(None, None)
    return _Deadline(seconds, asyncio.get_running_loop().time() + seconds)


# ---- running one command


class _Streamed:
    """A stream's bytes decoded into the call's streamed logs as they are read."""

    def __init__(self, output: OutputSink, stream: str) -> None:
        self.output, self.stream = output, stream
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @classmethod
    def of(cls, output: OutputSink | None, stream: str) -> _Streamed | None:
        return None if output is None else cls(output, stream)

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        self.output.write(self.stream, self._decoder.decode(chunk, final=final))


@dataclass(slots=True)
class _Output:
    """One stream's bytes, capped; the excess is counted and dropped."""

    streamed: _Streamed | None = None
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def add(self, chunk: bytes) -> None:
        if self.streamed is not None:
            self.streamed.feed(chunk)
        room = _MAX_OUTPUT_BYTES - len(self.data)
        self.data.extend(chunk[:room])
        self.dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        return text + f"\n[... {self.dropped} more bytes dropped]" if self.dropped else text


@dataclass(slots=True)
class _Outcome:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool

    def as_result(self) -> dict[str, Any]:
        return {"returncode": self.returncode, "stdout": self.stdout, "stderr": self.stderr}


async def _run_command(
    argv: list[str], *, env: dict[str, str], cwd: str | None, deadline: _Deadline, output: OutputSink | None = None
) -> _Outcome:
    try:
        process, exited = await _start(argv, env=env, cwd=cwd)
    except OSError as exc:  # args form: the program does not exist or cannot be executed
        raise ToolError(f"cannot run {argv[0]!r}: {exc.strerror or exc}", kind="shell") from None
    stdout, stderr = _Output(_Streamed.of(output, "stdout")), _Output(_Streamed.of(output, "stderr"))
    assert process.stdout is not None and process.stderr is not None
    readers = asyncio.gather(_drain(process.stdout, stdout), _drain(process.stderr, stderr))
    finished = asyncio.gather(process.wait(), readers)
    timed_out = False
    try:
        # asyncio.wait (not wait_for) leaves the readers running, so output read so far is kept.
        done, _ = await asyncio.wait({exited}, timeout=deadline.remaining())
        if not done:
            timed_out = True
            _kill_group(process.pid)
            await _settle_after_kill(finished)
        elif (await asyncio.wait({readers}, timeout=_PIPES_AFTER_EXIT_SECONDS))[0]:
            await finished  # the process is reaped; surfaces a failure to read the pipes
        else:  # the shell is gone but what it left in the background holds its output open
            _kill_group(process.pid)
            await _settle_after_kill(finished)
    except BaseException:  # cancelled: stop the commands too, then let the cancellation through
        _kill_group(process.pid)
        await _settle_after_kill(finished)
        raise
    return _Outcome(process.returncode, stdout.text(), stderr.text(), timed_out)


class _ExitAware(asyncio.subprocess.SubprocessStreamProtocol):
    """Tells when the process itself exits (on Python 3.11 ``Process.wait()`` also waits until
    every process holding its pipes has closed them)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _start(
    argv: list[str], *, env: dict[str, str], cwd: str | None
) -> tuple[asyncio.subprocess.Process, asyncio.Future[None]]:
    loop = asyncio.get_running_loop()
    starting = asyncio.ensure_future(loop.subprocess_exec(
        lambda: _ExitAware(loop),
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group, so everything it starts can be killed
    ))
    try:
        transport, protocol = await asyncio.shield(starting)
    except asyncio.CancelledError:
        # Cancelled while the command starts (a Ctrl-C right then). Unshielded, asyncio would kill
        # the shell alone and wait until what the shell started closed its pipes: `noetl run` of
        # `...; sleep 30` ended 30 s after the Ctrl-C. The start completes; its group is killed.
        await _stop_when_started(starting, loop)
        raise
    return asyncio.subprocess.Process(transport, protocol, loop), protocol.exited


async def _stop_when_started(starting: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
    try:
        transport, protocol = await within(asyncio.shield(starting), _DRAIN_AFTER_KILL_SECONDS)
    except BaseException:  # it did not start, or not in time: nothing to stop (the first cancel goes on)
        return
    _kill_group(transport.get_pid())
    await _settle_after_kill(asyncio.ensure_future(asyncio.subprocess.Process(transport, protocol, loop).wait()))


async def _drain(stream: asyncio.StreamReader, output: _Output) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        output.add(chunk)
    if output.streamed is not None:
        output.streamed.feed(b"", final=True)


def _kill_group(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _settle_after_kill(finished: asyncio.Future[Any]) -> None:
    # The process is reaped (no zombie) and its pipes read to the end; a daemonised grandchild that
    # left the group could hold a pipe open, hence the bound.
    with suppress(TimeoutError):
        await within(asyncio.shield(finished), _DRAIN_AFTER_KILL_SECONDS)
    if not finished.done():
        finished.cancel()


# ---- errors


def _exit_error(outcome: _Outcome, index: int, total: int, results: list[dict[str, Any]]) -> ToolError:
    which = "command" if total == 1 else f"command {index + 1} of {total}"
    code = outcome.returncode
    how = (
        f"was killed by signal {_signal_name(-code)}"
        if code is not None and code < 0
        else f"exited with code {code}"
    )
    last_line = _last_line(outcome.stderr)
    message = f"{which} {how}" + (f": {last_line}" if last_line else "")
    details: dict[str, Any] = outcome.as_result()
    if total > 1:
        details["results"] = results
    return ToolError(message, kind="shell", details=details)


def _timeout_error(outcome: _Outcome, deadline: _Deadline, results: list[dict[str, Any]]) -> ToolError:
    details: dict[str, Any] = {**outcome.as_result(), "timeout": deadline.seconds}
    if len(results) > 1:
        details["results"] = results
    return ToolError(
        f"timed out after {deadline.seconds:g} s", kind="timeout", retryable=True, details=details
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
