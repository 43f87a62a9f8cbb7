"""Rendering templates: native values, lenient undefined names with warnings, strict on request.

Why a custom render path instead of ``Template.render``: Jinja copies the whole context dict on
every render; NoETL's context holds every step result, so rendering would cost O(steps) per
template. Here the context is a layered :class:`RenderContext` mapping passed to Jinja as a shared
parent (no copy), and compiled templates are cached by source text.

The sandbox, its limits and the undefined type live in :mod:`noetl.dsl.render_env`. A caller that
wants the warnings of what it renders (or strict mode) opens a :func:`tracing` scope around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

from jinja2 import TemplateSyntaxError, Undefined, UndefinedError, nodes

from noetl.dsl.render_env import ENV, LenientUndefined, RenderLimitError, RenderTimeout, active_run
from noetl.errors import TemplateError

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


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


# Warnings and strict mode ----------------------------------------------------------------------
@dataclass(slots=True)
class RenderTrace:
    """What the renders of one unit of work (a step's input, a command, a step's routing) noticed.

    ``warnings`` are ``{step, field, name, template, message}`` dicts, one per undefined name a
    render used, in order, without repeats.
    """

    step: str | None = None
    strict: bool = False
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def record(self, where: str, source: str, undefined: list[tuple[str, str]]) -> None:
        prefix = f"step {self.step!r} "
        place = where[len(prefix):] if self.step is not None and where.startswith(prefix) else where
        template = source.strip()
        for name, description in undefined:
            warning = {"step": self.step, "field": place, "name": name, "template": template,
                       "message": f"{description} in {template!r}"}
            if warning not in self.warnings:
                self.warnings.append(warning)


_TRACE: ContextVar[RenderTrace | None] = ContextVar("noetl_render_trace", default=None)


@contextmanager
def tracing(step: str | None = None, *, strict: bool = False) -> Iterator[RenderTrace]:
    """Collect the warnings of every render inside the block; in strict mode undefined names fail."""
    trace = RenderTrace(step=step, strict=strict)
    token = _TRACE.set(trace)
    try:
        yield trace
    finally:
        _TRACE.reset(token)


# Compiling ----------------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _single_expression(source: str) -> str | None:
    """The inner expression when ``source`` is exactly one ``{{ expr }}``, else None."""
    text = source.strip()
    if not (text.startswith("{{") and text.endswith("}}")):
        return None
    inner = text[2:-2]
    if "{{" in inner or "}}" in inner or "{%" in inner:
        return None
    return inner


@dataclass(frozen=True, slots=True)
class _Expression:
    template: Any
    builds_containers: bool  # a list/dict/tuple literal: undefined names may sit inside the value


@lru_cache(maxsize=4096)
def _compile_expression(inner: str) -> _Expression:
    from jinja2.parser import Parser

    parser = Parser(ENV, inner, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
    literals = (nodes.List, nodes.Dict, nodes.Tuple)
    builds = isinstance(expr, literals) or any(True for _ in expr.find_all(literals))
    body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
    return _Expression(ENV.from_string(nodes.Template(body, lineno=1)), builds)


@lru_cache(maxsize=4096)
def _compile_template(source: str) -> Any:
    return ENV.from_string(source)


def check_template(source: str) -> str | None:
    """Return a syntax error message for ``source``, or None when it parses (nothing is evaluated)."""
    try:
        inner = _single_expression(source)
        if inner is not None:
            _compile_expression(inner)
        else:
            _compile_template(source)
    except TemplateSyntaxError as exc:
        return exc.message or str(exc)
    return None


# Rendering ----------------------------------------------------------------------------------------
def _native(value: Any) -> Any:
    """A native value with every undefined inside it used (noted) and replaced by None."""
    if isinstance(value, Undefined):
        if isinstance(value, LenientUndefined):
            value.use()
        else:
            value._fail_with_undefined_error()
        return None
    if isinstance(value, list | tuple):
        return type(value)(_native(v) for v in value)
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    return value


def _render(source: str, context: Mapping[str, Any]) -> Any:
    # Shared contexts skip Jinja's globals, so they are layered in last.
    scope = RenderContext(context, ENV.globals)
    inner = _single_expression(source)
    if inner is None:
        template = _compile_template(source)
        return "".join(template.root_render_func(template.new_context(scope, shared=True)))
    expression = _compile_expression(inner)
    ctx = expression.template.new_context(scope, shared=True)
    for _ in expression.template.root_render_func(ctx):
        pass
    result = ctx.vars["result"]
    if isinstance(result, Undefined) or expression.builds_containers:
        return _native(result)
    return result


def render_value(source: str, context: Mapping[str, Any], *, where: str = "template") -> Any:
    """Render one string. A single ``{{ expr }}`` gives the native value, anything else a string."""
    if not is_template(source):
        return source
    return render_with(partial(_render, source, context), source, where=where)


def render_with(render: Callable[[], Any], source: str, *, where: str) -> Any:
    """``render()`` of the template ``source`` as one render: bounded, its undefined names noted in
    the active trace (or failing in strict mode), every error one TemplateError naming ``where``.
    For callers that compile ``source`` their own way (the shell tool quotes what it pastes)."""
    trace = _TRACE.get()
    try:
        with active_run(strict=trace is not None and trace.strict) as run:
            result = render()
    except UndefinedError as exc:
        raise TemplateError(f"{where}: {exc.message} in {source.strip()!r}") from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: template does not parse ({exc.message}): {source.strip()!r}") from None
    except RenderLimitError as exc:
        raise TemplateError(f"{where}: {exc} in {_excerpt(source)!r}",
                            timed_out=isinstance(exc, RenderTimeout)) from None
    except TemplateError:
        raise
    except Exception as exc:  # user expressions can raise anything (TypeError, ZeroDivisionError ...)
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc} in {_excerpt(source)!r}") from None
    if run.undefined and trace is not None:
        trace.record(where, source, run.undefined)
    return result


def _excerpt(source: str, limit: int = 200) -> str:
    text = source.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def render_data(value: Any, context: Mapping[str, Any], *, where: str = "template") -> Any:
    """Render every string inside dicts and lists (keys stay as written)."""
    if isinstance(value, str):
        return render_value(value, context, where=where)
    if isinstance(value, dict):
        return {k: render_data(v, context, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [render_data(v, context, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


_FALSE_STRINGS = frozenset({"", "false", "0", "no", "none", "null"})


def truthy(value: Any) -> bool:
    """``when`` truthiness: bools as is; strings false when empty/false/0/no/none (any case)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)


def evaluate_when(condition: Any, context: Mapping[str, Any], *, where: str) -> bool:
    if condition is None:
        return True
    if isinstance(condition, str):
        return truthy(render_value(condition, context, where=where))
    return truthy(condition)
