"""The budget of one render: how much a template may do, and the deadline a runtime may give it.

Plain Python (no Jinja): the runtime sets deadlines around every render, and a run whose playbook
has no template never imports Jinja. The sandbox in :mod:`noetl.dsl.render_env` charges the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

# Limits of one render. Generous for real templates, far below what would hurt a worker.
MAX_LENGTH = 10_000_000  # characters of a string, or items of a list, a template builds
MAX_INT_BITS = 10_000  # size of an integer a template computes (about 3,000 digits)
MAX_FORMAT_WIDTH = 10_000  # width or precision in a format spec ('{:>N}', '%Nd', center(N))
MAX_RANGE = 100_000  # items of one range()
MAX_OPERATIONS = 1_000_000  # attribute lookups, calls, operators and range items of one render
_CLOCK_EVERY = 256  # operations between two looks at the deadline


class RenderLimitError(Exception):
    """A template went past one of the limits above (or past its deadline)."""


class RenderTimeout(RenderLimitError):
    """A render went past the deadline its caller gave it (:func:`time_limit`)."""


@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class RenderRun:
    """The bookkeeping of one render: operations left, the deadline, the undefined names it used."""

    strict: bool = False
    ops_left: int = MAX_OPERATIONS
    deadline: float | None = None
    clock: Callable[[], float] | None = None
    seconds: float = 0.0  # the time limit the deadline stands for, for the message
    undefined: list[tuple[str, str]] = field(default_factory=list)  # (name, description) as used

    def tick(self) -> None:
        self.ops_left -= 1
        if self.ops_left < 0:
            raise RenderLimitError(f"template does more than {MAX_OPERATIONS:,} operations")
        if self.clock is not None and self.deadline is not None and not self.ops_left % _CLOCK_EVERY \
                and self.clock() > self.deadline:
            raise RenderTimeout(f"template took longer than {self.seconds:g} s to render")

    def note(self, name: str, description: str) -> None:
        if (name, description) not in self.undefined:
            self.undefined.append((name, description))


CURRENT_RUN: ContextVar[RenderRun | None] = ContextVar("noetl_render_run", default=None)
_DEADLINE: ContextVar[tuple[Callable[[], float], float, float] | None] = ContextVar("noetl_render_deadline",
                                                                             default=None)


@contextmanager
def active_run(*, strict: bool) -> Iterator[RenderRun]:
    """Make a fresh :class:`RenderRun` the one the sandbox charges, for one render."""
    run = RenderRun(strict=strict)
    limit = _DEADLINE.get()
    if limit is not None:
        run.clock, run.deadline, run.seconds = limit
    token = CURRENT_RUN.set(run)
    try:
        yield run
    finally:
        CURRENT_RUN.reset(token)


class _TimeLimit:
    # A class rather than @contextmanager: entered for every step, where a generator-based
    # context manager costs a few microseconds more.
    __slots__ = ("_clock", "_seconds", "_token")

    def __init__(self, clock: Callable[[], float], seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds
        self._token: Token[tuple[Callable[[], float], float, float] | None] | None = None

    def __enter__(self) -> None:
        self._token = _DEADLINE.set((self._clock, self._clock() + self._seconds, self._seconds))

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _DEADLINE.reset(self._token)


def time_limit(clock: Callable[[], float], seconds: float) -> AbstractContextManager[None]:
    """Every render inside the block fails once ``clock()`` passes now + ``seconds``.

    The clock is the caller's (the pure engine has none; a runtime passes ``time.monotonic``).
    """
    return _TimeLimit(clock, seconds)


# Inside an inline render (on an event loop, noetl/runtime/rendering.py), reading more than this
# much of a stored result stops the render, which then runs again on a thread: decoding 50 MB
# takes the best part of a second, and the loop's heartbeats and other commands would wait.
INLINE_LOAD_BYTES = 1 << 20
_INLINE: ContextVar[bool] = ContextVar("noetl_render_inline", default=False)


class NeedsThread(RenderTimeout):
    """A render on the event loop is about to read a big stored result: render it on a thread."""


@contextmanager
def inline_loads() -> Iterator[None]:
    """Within the block, :func:`may_load` refuses big reads (see INLINE_LOAD_BYTES)."""
    token = _INLINE.set(True)
    try:
        yield
    finally:
        _INLINE.reset(token)


def may_load(size: int) -> None:
    """Called before a render decodes ``size`` bytes of a stored result."""
    if size > INLINE_LOAD_BYTES and _INLINE.get():
        raise NeedsThread(f"template reads {size:,} bytes of a stored result: rendered on a thread")


def tick() -> None:
    """Charge one operation to the render in progress, if any."""
    run = CURRENT_RUN.get()
    if run is not None:
        run.tick()
