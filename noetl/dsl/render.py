"""Sandboxed Jinja2 rendering with native values and strict undefined names.

Why a custom render path instead of ``Template.render``: Jinja copies the whole context dict on
every render; NoETL's context holds every step result, so rendering would cost O(steps) per
template. Here the context is a layered :class:`RenderContext` mapping passed to Jinja as a shared
parent (no copy), and compiled templates are cached by source text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from noetl.dsl.shellcode import unquoted
from noetl.errors import TemplateError
from noetl.results.refs import lazy

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


_MAPPING_METHODS = frozenset(name for name in dir(dict) if not name.startswith("_"))


class _MethodOrUndefined(StrictUndefined):
    """Undefined as a value, but callable as the mapping method of the same name."""

    __slots__ = ("_method",)
    # Looked up by Jinja before a call; plain class attributes keep StrictUndefined from raising.
    unsafe_callable = False
    alters_data = False
    jinja_pass_arg = None

    def __init__(self, method: Any, *, obj: Any, name: str) -> None:
        super().__init__(obj=obj, name=name)
        self._method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._method(*args, **kwargs)


class NoetlEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed: templates never reach Python internals. Mappings resolve keys before attributes."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        obj = lazy(obj)  # a result stored by reference loads when a template looks inside it
        if isinstance(obj, Mapping):
            value = obj.get(attribute, _MISSING)
            if value is not _MISSING:
                return value
            if attribute == "data":
                # v1 habit: ``{{ step.data.field }}`` on a result without a ``data`` key.
                return obj
            if attribute in _MAPPING_METHODS:
                # A missing key named like a dict method (`iter.items`) is undefined, so `default()`
                # and `is defined` behave; calling it (`d.items()`) still calls the method.
                return _MethodOrUndefined(super().getattr(obj, attribute), obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        obj = lazy(obj)
        if isinstance(obj, Mapping) and isinstance(argument, str):
            value = obj.get(argument, _MISSING)
            if value is not _MISSING:
                return value
        return super().getitem(obj, argument)


def _fromjson(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _b64encode(value: Any) -> str:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(data).decode()


def _b64decode(value: str) -> str:
    return base64.b64decode(value).decode()


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, default=str)


def _make_environment() -> NoetlEnvironment:
    env = NoetlEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update(
        tojson=_tojson, fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode
    )
    env.filters["unquoted"] = unquoted  # shell code, not a value to quote (noetl.dsl.shellcode)
    env.globals.update(
        {"now_utc": _now_utc}  # the only clock templates see; the engine never renders it itself
    )
    return env


def _now_utc() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


ENV = _make_environment()


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


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


@lru_cache(maxsize=4096)
def _compile_expression(inner: str) -> Any:
    parser_env = ENV
    from jinja2.parser import Parser

    parser = Parser(parser_env, inner, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
    body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
    return parser_env.from_string(nodes.Template(body, lineno=1))


@lru_cache(maxsize=4096)
def _compile_template(source: str) -> Any:
    return ENV.from_string(source)


def check_template(source: str) -> str | None:
    """Return a syntax error message for ``source``, or None when it parses."""
    try:
        inner = _single_expression(source)
        if inner is not None:
            _compile_expression(inner)
        else:
            _compile_template(source)
    except TemplateSyntaxError as exc:
        return exc.message or str(exc)
    return None


def render_value(source: str, context: Mapping[str, Any], *, where: str = "template") -> Any:
    """Render one string. A single ``{{ expr }}`` gives the native value, anything else a string."""
    if not is_template(source):
        return source
    # Shared contexts skip Jinja's globals, so they are layered in last.
    scope = RenderContext(context, ENV.globals)
    try:
        inner = _single_expression(source)
        if inner is not None:
            template = _compile_expression(inner)
            ctx = template.new_context(scope, shared=True)
            for _ in template.root_render_func(ctx):
                pass
            result = ctx.vars["result"]
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            return result
        template = _compile_template(source)
        ctx = template.new_context(scope, shared=True)
        return "".join(template.root_render_func(ctx))
    except UndefinedError as exc:
        raise TemplateError(f"{where}: {exc.message} in {source.strip()!r}") from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: template does not parse ({exc.message}): {source.strip()!r}") from None
    except TemplateError:
        raise
    except Exception as exc:  # user expressions can raise anything (TypeError, ZeroDivisionError ...)
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc} in {source.strip()!r}") from None


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
