"""What environment user code sees: a short safe list plus what the playbook passes, nothing else.

Servers, workers and ``noetl run`` hold NoETL's own settings in their environment
(``NOETL_SECRET_KEY``, ``NOETL_DATABASE_URL``, ``NOETL_API_TOKEN``, ...) and often the user's own
secrets too. A tool never inherits that environment:

- ``shell`` commands run with exactly :func:`tool_environment` (the safe list + the step's ``env:``);
- ``python`` code reads ``os.environ`` / ``os.getenv`` through a view that, while the code runs,
  shows the same mapping (:func:`user_environment`). The view is scoped with a context variable, so
  NoETL's own code on other threads and tasks keeps seeing the real environment at the same time.
  Worker processes of the python tool (``isolation: process``) are started with the safe list only,
  so even subprocesses started by user code find nothing.

Nor can a tool read it where the kernel shows it: any process of the same user may read
``/proc/<pid>/environ`` of another, so a shell step's ``cat /proc/$PPID/environ`` or a python
step's ``open(f"/proc/{os.getppid()}/environ")`` read NoETL's whole environment (the operator's
secrets too) until :func:`protect_process_environment` made the process non-dumpable.

Whatever still slips through (a subprocess started from thread-mode code inherits the process's
real environment) is caught by the redactor, which knows the values of NoETL's sensitive settings
(:func:`noetl.settings.sensitive_setting_values`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from multiprocessing.connection import Connection
from typing import Any

from noetl.errors import ToolError

SAFE_VARIABLES = ("PATH", "HOME", "LANG", "TZ")
_PR_SET_DUMPABLE = 4  # linux/prctl.h
_protected = False

log = logging.getLogger(__name__)


def protect_process_environment() -> None:
    """Make this process's ``/proc/<pid>/environ`` (and ``mem``, and ptrace) out of reach of the
    processes of the same user, the tools it starts among them: ``PR_SET_DUMPABLE`` 0, as ssh-agent
    does. The process still reads its own; its children are dumpable again once they exec. Linux
    only; once per process: where a process is about to start one for a tool (ctypes costs ~10 ms
    to import, which a run of python steps alone need not pay), and at a server's or worker's start,
    so that no tool on the same host reads them."""
    global _protected
    if _protected or not sys.platform.startswith("linux"):
        return
    _protected = True
    import ctypes

    try:
        if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:
        log.warning("cannot hide this process's environment from the tools it runs (prctl: %s)", exc)


def start_python_child(module: str, function: str) -> tuple[subprocess.Popen[bytes], Connection]:
    """A fresh interpreter running ``module.function(fd)``, and the channel to it (``fd`` is the
    child's end): started with the safe environment only (never this process's settings, even for
    the subprocesses of user code it runs), no open file of this process but that channel, stdin and
    stdout on /dev/null (fd-level writes never reach this process's stdout), and this process's own
    environment hidden from it. This process's ``sys.path`` makes the child import the very same
    noetl package (a source checkout or an installed one), whatever the working directory."""
    parent_end, child_end = socket.socketpair()
    protect_process_environment()
    fd = child_end.fileno()
    bootstrap = f"import sys; sys.path[:] = {sys.path!r}; from {module} import {function}; {function}({fd})"
    try:
        process = subprocess.Popen([sys.executable, "-c", bootstrap], pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, env=safe_environment())
    except BaseException:
        parent_end.close()
        raise
    finally:
        child_end.close()
    return process, Connection(parent_end.detach())


def safe_environment() -> dict[str, str]:
    """The variables every tool may see, taken from the real process environment."""
    real = _real_environ()
    env: dict[str, str] = {}
    for name in SAFE_VARIABLES:  # one lookup each: os.environ encodes and decodes on every access
        value = real.get(name)
        if value is not None:
            env[name] = value
    return env


def tool_environment(overrides: Any, *, tool: str, safe: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process a tool starts: the safe list (``safe``, as
    :func:`safe_environment` read it earlier, or read now) with the step's ``env:`` applied (a
    ``null`` value removes a variable). The process will not read this one's in /proc either."""
    protect_process_environment()
    env = dict(safe) if safe is not None else safe_environment()
    if overrides is None:
        return env
    if not isinstance(overrides, Mapping):
        raise ToolError(f"{tool} `env` must be a mapping of variable names to values", kind="config")
    for name, value in overrides.items():
        if value is None:
            env.pop(str(name), None)
        else:
            env[str(name)] = value if isinstance(value, str) else scalar_text(value)
    return env


def scalar_text(value: Any) -> str:
    # Rendered templates can hand over native values; write booleans the way shells expect them.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---- the scoped view of os.environ for python code running in this process

_scope: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("noetl_user_environ", default=None)
_install_lock = threading.Lock()


class _ScopedEnviron(MutableMapping[str, str]):
    """``os.environ`` replacement: the real environment, or the running step's mapping.

    Writes inside a step change only that step's mapping, so user code cannot alter the runtime's
    environment either.
    """

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self.real = real

    def _current(self) -> MutableMapping[str, str]:
        scoped = _scope.get()
        return self.real if scoped is None else scoped

    def __getitem__(self, key: str) -> str:
        return self._current()[key]

    def __setitem__(self, key: str, value: str) -> None:
        self._current()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._current()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._current()))

    def __len__(self) -> int:
        return len(self._current())

    def copy(self) -> dict[str, str]:
        return dict(self._current())

    def __repr__(self) -> str:
        return f"environ({dict(self._current())!r})"


def _real_environ() -> MutableMapping[str, str]:
    current = os.environ
    return current.real if isinstance(current, _ScopedEnviron) else current


def _install_view() -> None:
    if isinstance(os.environ, _ScopedEnviron):
        return
    with _install_lock:
        if not isinstance(os.environ, _ScopedEnviron):
            # os.getenv reads the module global `environ`, so it follows the view as well.
            os.environ = _ScopedEnviron(os.environ)  # type: ignore[assignment]  # noqa: B003 - a view, not a reset


class user_environment:  # noqa: N801 - used as a function: `with user_environment(env):`
    """While the block runs (in this thread or task), ``os.environ`` is ``env`` (the safe list by default).

    A class rather than a ``@contextmanager`` generator: it runs around every python step's code,
    and a generator-based context manager costs several times as much to enter and leave.
    """

    __slots__ = ("_env", "_token")

    def __init__(self, env: Mapping[str, str] | None) -> None:
        self._env = env

    def __enter__(self) -> None:
        _install_view()
        self._token = _scope.set(dict(self._env) if self._env is not None else safe_environment())

    def __exit__(self, *exc_info: object) -> None:
        _scope.reset(self._token)
