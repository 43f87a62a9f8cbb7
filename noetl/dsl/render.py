"""Rendering templates: native values, lenient undefined names with warnings, strict on request.

Why a custom render path instead of ``Template.render``: Jinja copies the whole context dict on
every render; NoETL's context holds every step result, so rendering would cost O(steps) per
template. Here the context is a layered :class:`RenderContext` mapping passed to Jinja as a shared
parent (no copy), and compiled templates are cached by source text.

The sandbox and the undefined type live in :mod:`noetl.dsl.render_env`, the limits of one render in
:mod:`noetl.dsl.render_budget`, and compiling and rendering with Jinja in
:mod:`noetl.dsl.render_jinja`, imported by the first template a process renders: a playbook without
templates runs without Jinja. A caller that wants the warnings of what it renders (or strict mode)
opens a :func:`tracing` scope around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noetl.dsl.render_context import RenderContext, RenderTrace, tracing

__all__ = ["RenderContext", "RenderTrace", "check_template", "evaluate_when", "is_template", "render_data",
           "render_value", "tracing", "truthy"]


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_template(source: str) -> str | None:
    """Return a syntax error message for ``source``, or None when it parses (nothing is evaluated)."""
    from noetl.dsl.render_jinja import check_template as check

    return check(source)


def render_value(source: str, context: Mapping[str, Any], *, where: str = "template") -> Any:
    """Render one string. A single ``{{ expr }}`` gives the native value, anything else a string."""
    if not is_template(source):
        return source
    from noetl.dsl.render_jinja import render_template  # Jinja: imported by the first template rendered

    return render_template(source, context, where)


def render_data(value: Any, context: Mapping[str, Any], *, where: str = "template") -> Any:
    """Render every string inside dicts and lists (keys stay as written)."""
    if isinstance(value, str):
        return render_value(value, context, where=where)
    if isinstance(value, dict):
        # A leaf that is not a template is kept as is, without the call and its `where` text.
        return {k: v if _plain_leaf(v) else render_data(v, context, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [v if _plain_leaf(v) else render_data(v, context, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


_SCALARS = (int, float, bool, type(None))


def _plain_leaf(value: Any) -> bool:
    """A value ``render_data`` returns unchanged: a scalar, or a string without template markers."""
    kind = type(value)
    if kind is str:
        return "{{" not in value and "{%" not in value
    return kind in _SCALARS


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
