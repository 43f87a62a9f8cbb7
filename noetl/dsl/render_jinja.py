"""Compiling and rendering templates with Jinja, in the sandbox of :mod:`noetl.dsl.render_env`.

Imported by the first template a process renders or checks (through :mod:`noetl.dsl.render`), so a
run whose playbook has no template never imports Jinja.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from jinja2 import TemplateSyntaxError, Undefined, UndefinedError, nodes

from noetl.dsl.render_context import CURRENT_TRACE, RenderContext
from noetl.dsl.render_env import ENV, LenientUndefined, RenderLimitError, RenderTimeout, active_run
from noetl.errors import TemplateError
from noetl.results.refs import plain


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
    return plain(value)


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
    return plain(result)  # a loop's results by reference stay a reference in what is recorded


def render_template(source: str, context: Mapping[str, Any], where: str) -> Any:
    """Render the template ``source``: a single ``{{ expr }}`` gives the native value, anything else a string."""
    return render_with(partial(_render, source, context), source, where=where)


def render_with(render: Callable[[], Any], source: str, *, where: str) -> Any:
    """``render()`` of the template ``source`` as one render: bounded, its undefined names noted in
    the active trace (or failing in strict mode), every error one TemplateError naming ``where``.
    For callers that compile ``source`` their own way (the shell tool quotes what it pastes)."""
    trace = CURRENT_TRACE.get()
    # The field lets the error point at the playbook's line (noetl.dsl.codelines).
    field = trace.field_of(where) if trace is not None else None
    try:
        with active_run(strict=trace is not None and trace.strict) as run:
            result = render()
    except UndefinedError as exc:
        raise TemplateError(f"{where}: {exc.message} in {source.strip()!r}", field=field) from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: template does not parse ({exc.message}): {source.strip()!r}",
                            field=field) from None
    except RenderLimitError as exc:
        raise TemplateError(f"{where}: {exc} in {_excerpt(source)!r}", field=field,
                            timed_out=isinstance(exc, RenderTimeout)) from None
    except TemplateError:
        raise
    except Exception as exc:  # user expressions can raise anything (TypeError, ZeroDivisionError ...)
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc} in {_excerpt(source)!r}", field=field) from None
    if run.undefined and trace is not None:
        trace.record(where, source, run.undefined)
    return result


def _excerpt(source: str, limit: int = 200) -> str:
    text = source.strip()
    return text if len(text) <= limit else text[:limit] + "..."
