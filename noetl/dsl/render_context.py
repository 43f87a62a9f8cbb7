"""The context a template renders against, and the trace that collects what renders notice.

Plain Python (no Jinja), shared by :mod:`noetl.dsl.render` and the Jinja side of rendering
(:mod:`noetl.dsl.render_jinja`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


class RenderContext(Mapping[str, Any]):
    """A read-only view over several mappings, first match wins (no copying)."""

    __slots__ = ("layers",)

    def __init__(self, *layers: Mapping[str, Any]) -> None:
        self.layers = layers

    def __getitem__(self, key: str) -> Any:
        for layer in self.layers:
            value = layer.get(key, _MISSING)
            if value is not _MISSING:
                return value
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        for layer in self.layers:
            value = layer.get(key, _MISSING)
            if value is not _MISSING:
                return value
        return default

    def __contains__(self, key: object) -> bool:
        return any(key in layer for layer in self.layers)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in self.layers:
            for key in layer:
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def child(self, top: Mapping[str, Any]) -> RenderContext:
        """A context with ``top`` layered over this one."""
        return RenderContext(top, *self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {key: self[key] for key in self}


# Warnings and strict mode ----------------------------------------------------------------------
@dataclass(slots=True, eq=False, repr=False)  # state that changes as it runs: compared and shown by identity
class RenderTrace:
    """What the renders of one unit of work (a step's input, a command, a step's routing) noticed.

    ``warnings`` are ``{step, field, name, template, message}`` dicts, one per undefined name a
    render used, in order, without repeats.
    """

    step: str | None = None
    strict: bool = False
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def field_of(self, where: str) -> str | None:
        """The field of this trace's step that ``where`` names (``input.x`` of ``step 'a' input.x``)."""
        prefix = f"step {self.step!r} "
        return where[len(prefix):] if self.step is not None and where.startswith(prefix) else None

    def record(self, where: str, source: str, undefined: list[tuple[str, str]]) -> None:
        place = self.field_of(where) or where
        template = source.strip()
        for name, description in undefined:
            warning = {"step": self.step, "field": place, "name": name, "template": template,
                       "message": f"{description} in {template!r}"}
            if warning not in self.warnings:
                self.warnings.append(warning)


CURRENT_TRACE: ContextVar[RenderTrace | None] = ContextVar("noetl_render_trace", default=None)


class _Tracing:
    # A class rather than @contextmanager: entered several times per step, where a generator-based
    # context manager costs a few microseconds more each time.
    __slots__ = ("_trace", "_token")

    def __init__(self, trace: RenderTrace) -> None:
        self._trace = trace
        self._token: Token[RenderTrace | None] | None = None

    def __enter__(self) -> RenderTrace:
        self._token = CURRENT_TRACE.set(self._trace)
        return self._trace

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        CURRENT_TRACE.reset(self._token)


def tracing(step: str | None = None, *, strict: bool = False) -> AbstractContextManager[RenderTrace]:
    """Collect the warnings of every render inside the block; in strict mode undefined names fail."""
    return _Tracing(RenderTrace(step=step, strict=strict))
