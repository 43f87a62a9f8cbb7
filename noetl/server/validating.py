"""Validating a playbook sent to the server, within a time limit that ends the work.

A 10 MB playbook takes minutes to validate: YAML alone composes at a few seconds per megabyte, in
libyaml's C code, which nothing in the server's process can interrupt. On a thread the request was
answered at the limit while the thread validated on, a core busy, for as long as it took. So a
playbook over :data:`IN_PROCESS_BYTES` is validated in a validator process, which is killed at the
limit (its memory goes with it); a smaller one validates in well under a second, on a thread.

A validator is a plain interpreter started with :mod:`subprocess` (as the python tool's worker
processes are, and for the same reasons: multiprocessing re-imports the server's ``__main__`` in
its children, and would start them with the server's environment, its settings and secrets). It
starts with the safe environment only, validates one playbook at a time and stays up for the
next; one that validated a big playbook exits afterwards, to give its memory back.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import threading
from contextlib import suppress
from multiprocessing.connection import Connection
from typing import Any

from noetl.dsl.parse import LoadedPlaybook, load_playbook_text
from noetl.errors import InputError, NoetlError
from noetl.waiting import within

VALIDATE_SECONDS = 10.0  # validation of one playbook; templates are only parsed, never evaluated
IN_PROCESS_BYTES = 256 * 1024  # smaller playbooks validate on a thread of the server
AT_ONCE = 2  # validator processes at a time; more registrations wait for one (registration is an admin's)
_STARTUP_SECONDS = 60.0  # a validator is a fresh interpreter: its start does not count against the limit

Outcome = tuple[str, Any]  # ("loaded", LoadedPlaybook) or ("raised", NoetlError)


async def validate_off_loop(text: str, file: str = "content") -> LoadedPlaybook:
    """``text`` loaded and checked off the event loop, within :data:`VALIDATE_SECONDS`."""
    if len(text) <= IN_PROCESS_BYTES:
        try:
            return await within(asyncio.to_thread(load_playbook_text, text, file), VALIDATE_SECONDS)
        except TimeoutError:
            raise _too_long(file) from None
    outcome = await asyncio.to_thread(_validators.validate, text, file)
    if outcome is None:
        raise _too_long(file)
    kind, value = outcome
    if kind == "raised":
        raise value
    loaded: LoadedPlaybook = value
    return loaded


def _too_long(file: str) -> InputError:
    return InputError(f"{file}: validating the playbook took longer than {VALIDATE_SECONDS:g} s")


# --------------------------------------------------------------------------------------------------
# In the server: the validator processes


class _Validator:
    """One validator process and the socket to it."""

    def __init__(self) -> None:
        from noetl.tools.environment import start_python_child

        self.process, self._conn = start_python_child(__name__, "serve_validator")
        self._ready = False

    def validate(self, text: str, file: str) -> Outcome | None:
        """The validator's answer, or None when it had none within the limit (it is killed then)."""
        if not self._ready:
            if not self._conn.poll(_STARTUP_SECONDS):
                raise InputError(f"{file}: the playbook validator did not start")
            self._conn.recv()
            self._ready = True
        self._conn.send((text, file))
        if not self._conn.poll(VALIDATE_SECONDS):
            self.stop()
            return None
        answer: Outcome = self._conn.recv()
        return answer

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with suppress(OSError):
            self.process.kill()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(10.0)
        self._conn.close()


class _Validators:
    """At most :data:`AT_ONCE` validators; idle ones are kept for the next registration."""

    def __init__(self) -> None:
        self._turns = threading.BoundedSemaphore(AT_ONCE)
        self._lock = threading.Lock()
        self._idle: list[_Validator] = []

    def validate(self, text: str, file: str) -> Outcome | None:
        """On a thread of the server (it blocks)."""
        with self._turns:
            validator = self._take()
            kept = False
            try:
                outcome = validator.validate(text, file)
                kept = outcome is not None and validator.is_alive()
                return outcome
            except (EOFError, OSError, pickle.UnpicklingError):
                raise InputError(f"{file}: the playbook could not be validated (its validator stopped)") from None
            finally:
                self._give_back(validator, kept)

    def _take(self) -> _Validator:
        with self._lock:
            while self._idle:
                validator = self._idle.pop()
                if validator.is_alive():
                    return validator
                validator.stop()
        return _Validator()

    def _give_back(self, validator: _Validator, kept: bool) -> None:
        if kept:
            with self._lock:
                self._idle.append(validator)
        else:
            validator.stop()


_validators = _Validators()


# --------------------------------------------------------------------------------------------------
# In the validator process


def serve_validator(fd: int) -> None:
    """A validator's life: warm up, say so, then answer ``(text, file)`` requests until the server
    closes the socket; exit after a big playbook."""
    from noetl.tools.environment import protect_process_environment

    protect_process_environment()
    conn = Connection(fd)
    load_playbook_text(_WARMUP, "warmup")  # the lazy imports and caches a validation touches
    conn.send("ready")
    while True:
        try:
            text, file = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_outcome(text, file))
        if len(text) > 4 * IN_PROCESS_BYTES:
            return  # its memory back to the system: the next validator starts afresh


def _outcome(text: str, file: str) -> Outcome:
    try:
        return ("loaded", load_playbook_text(text, file))
    except NoetlError as exc:  # a bad playbook: raised in the server again
        return ("raised", exc)
    except Exception as exc:  # a bug, in one line (an exception of any class may not travel)
        return ("raised", InputError(f"{file}: the playbook could not be validated ({type(exc).__name__}: {exc})"))


_WARMUP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: warmup, path: warmup}
workload: {n: 1}
workflow:
  - step: start
    tool: {kind: python, input: {n: "{{ workload.n }}"}, code: "result = n"}
    next: [{step: end, when: "{{ start > 0 }}"}]
  - step: end
    tool: {kind: noop}
"""
