"""The environment every template renders in: what a template may reach, and how much it may do.

- **Sandboxed** (Jinja's ImmutableSandboxedEnvironment): no Python internals, no mutation of the
  lists and dicts a template is given. Mappings resolve keys before attributes.
- **Lenient, never silent**: an undefined name or attribute is a :class:`LenientUndefined`. It chains
  (``x.y.z``), passes ``default()`` and ``is defined``, and each *use* of it (as text, as a condition,
  in a comparison, as the whole value) is noted in the active :class:`RenderRun`, which the caller
  turns into a warning; in strict mode the use is an error naming the variable.
- **Bounded**: ``**``, ``*``, ``+``, ``~``, ``%``, ``str.format``, padding, ``range`` and the number of
  operations of one render are capped, and those operators are never folded at compile time, so
  checking a template never evaluates it and rendering one cannot hang or exhaust memory.
  A runtime may also give a render a deadline (:func:`time_limit`), with its own clock.
"""

from __future__ import annotations

import base64
import json
import math
import re
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import ChainableUndefined, Undefined, UndefinedError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from noetl.dsl.render_budget import (
    CURRENT_RUN,
    MAX_FORMAT_WIDTH,
    MAX_INT_BITS,
    MAX_LENGTH,
    MAX_OPERATIONS,
    MAX_RANGE,
    RenderLimitError,
    RenderRun,
    RenderTimeout,
    active_run,
    tick,
    time_limit,
)
from noetl.dsl.shellcode import unquoted
from noetl.results.partial import PARTS, LazyList
from noetl.results.refs import SEALED_KEY, LazyItems, LazyResult, lazy, lazy_items, without_sealing

# The budget of one render lives in noetl.dsl.render_budget (no Jinja there: a run that renders no
# template never imports Jinja); these names are part of this module's interface too.
__all__ = ["ENV", "MAX_FORMAT_WIDTH", "MAX_INT_BITS", "MAX_LENGTH", "MAX_OPERATIONS", "MAX_RANGE",
           "LenientUndefined", "RenderLimitError", "RenderRun", "RenderTimeout", "active_run", "time_limit"]

# Undefined names --------------------------------------------------------------------------------
class LenientUndefined(ChainableUndefined):
    """An undefined name or attribute: falsy, empty, chainable; each use is noted (or, strict, fails)."""

    __slots__ = ("_path",)
    # Looked up by the sandbox before any call; plain attributes keep those probes from counting as uses.
    unsafe_callable = False
    alters_data = False
    jinja_pass_arg = None

    def __init__(self, hint: str | None = None, obj: Any = missing, name: str | None = None,
                 exc: type[Exception] = UndefinedError, path: str | None = None) -> None:
        super().__init__(hint, obj, name, exc)  # type: ignore[arg-type]
        self._path = path if path is not None else str(name)

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        if self._undefined_obj is missing:
            message = f"{self._undefined_name!r} is undefined"
        else:
            message = f"{_type_name(self._undefined_obj)} has no key or attribute {self._undefined_name!r}"
        if self._path != str(self._undefined_name):
            message += f" (reading {self._path})"
        return message

    def _chain(self, name: Any) -> LenientUndefined:
        return LenientUndefined(self._undefined_hint, self._undefined_obj, self._undefined_name,
                                self._undefined_exception, path=f"{self._path}.{name}")

    def __getattr__(self, name: str) -> LenientUndefined:
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        return self._chain(name)

    def __getitem__(self, name: Any) -> LenientUndefined:  # type: ignore[override]
        return self._chain(name)

    def use(self) -> None:
        """This value is being used as a value: note it, or fail in strict mode (or if it is unsafe)."""
        if self._undefined_exception is not UndefinedError:
            self._fail_with_undefined_error()
        run = CURRENT_RUN.get()
        if run is None:
            return
        if run.strict:
            self._fail_with_undefined_error()
        run.note(self._path, self._undefined_message)

    def __str__(self) -> str:
        self.use()
        return ""

    def __html__(self) -> str:
        return str(self)

    def __bool__(self) -> bool:
        self.use()
        return False

    def __len__(self) -> int:
        self.use()
        return 0

    def __iter__(self) -> Iterator[Any]:
        self.use()
        return iter(())

    def __eq__(self, other: object) -> bool:
        self.use()
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = Undefined.__hash__


def _type_name(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, Mapping):
        return "the mapping"
    return f"a {type(value).__name__}"


_MAPPING_METHODS = frozenset(name for name in dir(dict) if not name.startswith("_"))


class _MethodOrUndefined(LenientUndefined):
    """Undefined as a value, but callable as the mapping method of the same name."""

    __slots__ = ("_method",)

    def __init__(self, method: Any, *, obj: Any, name: str) -> None:
        super().__init__(obj=obj, name=name)
        self._method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._method(*args, **kwargs)


# Bounded operations -----------------------------------------------------------------------------
def _too_long(length: int, what: str) -> None:
    if length > MAX_LENGTH:
        raise RenderLimitError(f"{what} would be {length:,} long (limit {MAX_LENGTH:,})")


def _check_int(value: int, what: str) -> None:
    if value.bit_length() > MAX_INT_BITS:
        raise RenderLimitError(f"{what} would have more than {MAX_INT_BITS:,} bits")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power(base: Any, exponent: Any) -> None:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        bits = exponent * math.log2(abs(base))
        if bits > MAX_INT_BITS:
            raise RenderLimitError(f"{base} ** {exponent} would have about {bits:,.0f} bits "
                                   f"(limit {MAX_INT_BITS:,})")


def _check_multiply(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and _is_int(times):
            _too_long(len(seq) * times, "the repeated value")
    if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise RenderLimitError(f"a product would have more than {MAX_INT_BITS:,} bits")


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        _too_long(len(left) + len(right), "the joined value")


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SPEC_NUMBERS = re.compile(r"\d+")


def _check_width(number: str | None) -> None:
    if number == "*":
        raise RenderLimitError("'*' widths are not allowed in templates")
    if number and int(number) > MAX_FORMAT_WIDTH:
        raise RenderLimitError(f"format width {int(number):,} is over the limit of {MAX_FORMAT_WIDTH:,}")


def check_printf_format(template: str) -> None:
    for match in _PRINTF_SPEC.finditer(template):
        _check_width(match.group(1))
        _check_width(match.group(2))


def check_format_string(template: str) -> None:
    """``str.format`` specs: widths and precisions bounded; nested (computed) specs refused."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format itself reports the malformed string
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise RenderLimitError("computed format specs ('{:{w}}') are not allowed in templates")
        for number in _SPEC_NUMBERS.findall(spec):
            _check_width(number)


_BINOP_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "**": _check_power,
    "*": _check_multiply,
    "+": _check_add,
    "%": lambda left, right: check_printf_format(left) if isinstance(left, str) else None,
}

_PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})


def _check_method_call(func: Any, args: tuple[Any, ...]) -> None:
    owner = getattr(func, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(func, "__name__", "")
    if name in _PADDING_METHODS and args and _is_int(args[0]):
        _check_width(str(max(args[0], 0)))
    elif name == "expandtabs":
        size = args[0] if args and _is_int(args[0]) else 8
        _too_long(len(owner) + owner.count("\t") * max(size, 0), "the expanded string")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        hits = len(owner) + 1 if args[0] == "" else owner.count(args[0])
        _too_long(len(owner) + hits * len(args[1]), "the replaced string")
    elif name == "join" and args:
        items = list(args[0]) if not isinstance(args[0], str) else args[0]
        _too_long(sum(len(str(i)) for i in items) + len(owner) * max(len(items) - 1, 0), "the joined string")


class _BoundedRange:
    """range() whose iteration is charged to the render, so nested loops cannot run for ever."""

    __slots__ = ("_range",)

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        if len(self._range) > MAX_RANGE:
            raise RenderLimitError(f"range of {len(self._range):,} items (limit {MAX_RANGE:,})")

    def __iter__(self) -> Iterator[int]:
        for item in self._range:
            tick()
            yield item

    def __reversed__(self) -> Iterator[int]:
        return iter(_BoundedRange(self._range.start + (len(self._range) - 1) * self._range.step,
                                  self._range.start - self._range.step, -self._range.step)) \
            if self._range else iter(())

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: Any) -> Any:
        return self._range[index]

    def __contains__(self, item: object) -> bool:
        return item in self._range

    def __repr__(self) -> str:
        return repr(self._range)


class _BoundedCodeGenerator(CodeGenerator):
    """``a ~ b`` joins through the environment, so its length is checked like ``+``; ``name.result``
    (an attribute of a name itself) goes through ``getattr_of_name``, the v1 habit's one place."""

    def visit_Concat(self, node: Any, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Getattr(self, node: Any, frame: Frame) -> None:
        if node.attr != RESULT_ALIAS or not isinstance(node.node, nodes.Name):
            super().visit_Getattr(node, frame)
            return
        self.write("environment.getattr_of_name(")
        self.visit(node.node, frame)
        self.write(f", {node.attr!r})")


# Filters ------------------------------------------------------------------------------------------
def _fromjson(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _b64encode(value: Any) -> str:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(data).decode()


def _b64decode(value: str) -> str:
    return base64.b64decode(value).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, LenientUndefined):
        value.use()
        return None
    if isinstance(value, LazyItems):
        return without_sealing(list(value))  # `tojson` of a loop's results by reference writes them all out
    if isinstance(value, PARTS):
        return without_sealing(value.value())  # a part of a stored result, decoded
    return str(value)


def _tojson(value: Any, indent: int | None = None) -> str:
    if isinstance(value, LenientUndefined):
        value.use()
        return "null"
    text = json.dumps(value, indent=indent, default=_json_default)
    if '"sealed"' in text:  # perhaps a reference's sealed part (its key): written without it
        text = json.dumps(without_sealing(value), indent=indent, default=_json_default)
    return text


def _shown(value: Any) -> Any:
    """What a template writes into a text for ``value`` (Jinja's ``finalize``; then ``str``): a
    container or a reference as its text without any reference's sealed part."""
    return value if type(value) is str else without_sealing(value)


def _string(value: Any) -> str:
    return str(_shown(value))


def _pprint(value: Any) -> str:
    from pprint import pformat

    return pformat(_shown(value))


def _length(value: Any) -> int:
    """``| length`` (and ``| count``): a result stored by reference counts as the result, not as its
    reference (a list's length from its layout, without reading the list)."""
    found = lazy(value)
    if isinstance(found, LazyResult):
        found = found.listed()
    return len(found)


def _bounded_filter(name: str, check: Callable[..., None]) -> Callable[..., Any]:
    """Jinja's filter ``name``, after ``check`` has seen its arguments (eval context aside)."""
    original = FILTERS[name]
    passes_context = getattr(original, "jinja_pass_arg", None) is not None

    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(*(args[1:] if passes_context else args), **kwargs)
        return original(*args, **kwargs)

    bounded.__name__ = original.__name__
    bounded.__doc__ = original.__doc__
    if passes_context:
        bounded.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


def _center_check(value: Any, width: int = 80) -> None:
    _check_width(str(max(int(width), 0)))


def _indent_check(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    pad = len(width) if isinstance(width, str) else int(width)
    text = str(value)
    _too_long(len(text) + (text.count("\n") + 1) * max(pad, 0), "the indented string")


def _batch_check(value: Any, linecount: Any, fill_with: Any = None) -> None:
    if fill_with is not None:  # the last batch is padded up to `linecount` items
        _too_many(int(linecount), "a padded batch")


def _slice_check(value: Any, slices: Any, fill_with: Any = None) -> None:
    _too_many(int(slices), "slices")  # a list each, even past the items


def _too_many(count: int, what: str) -> None:
    """A filter that makes ``count`` items whatever its input's size: bounded as a range is."""
    if count > MAX_RANGE:
        raise RenderLimitError(f"{what} of {count:,} items (limit {MAX_RANGE:,})")


def _format_check(value: Any, *args: Any, **kwargs: Any) -> None:
    check_printf_format(str(value))


def _bounded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    items = value if isinstance(value, str) else list(value)  # once: `value` may be a generator
    if attribute is None and not isinstance(items, str):
        items = [_shown(item) for item in items]
        _too_long(sum(len(str(i)) for i in items) + len(str(d)) * max(len(items) - 1, 0), "the joined string")
    return str(FILTERS["join"](eval_ctx, items, d, attribute))


_bounded_join.jinja_pass_arg = FILTERS["join"].jinja_pass_arg  # type: ignore[attr-defined]


def _replace_check(value: Any, old: Any, new: Any, count: int | None = None) -> None:
    text, old, new = str(value), str(old), str(new)
    hits = len(text) + 1 if old == "" else text.count(old)
    if count is not None:
        hits = min(hits, max(int(count), 0))
    _too_long(len(text) + hits * len(new), "the replaced string")


# The environment ----------------------------------------------------------------------------------
# v1 habits: ``{{ step.data.field }}`` on a result without a ``data`` key reads the result itself
# (the spec's rule, at any depth), and so does ``{{ step.result.field }}``, but only on a name
# itself (a step's result): deeper down a missing ``result`` key is undefined, as any key is
# (``rpc.data.result is defined`` on a JSON-RPC error reply).
DATA_ALIAS, RESULT_ALIAS = "data", "result"
_LOOP_RESULT_KEYS = frozenset({"results", "stats"})


def _is_loop_result(value: Mapping[str, Any]) -> bool:
    """A loop step's aggregate ``{results, stats}`` (section 5 of the spec)."""
    return len(value) == 2 and all(key in value for key in _LOOP_RESULT_KEYS)


def _aliased(value: Any) -> Any:
    """What a v1 alias reads: the value itself; a loop's result is its list (``{{ step.result |
    length }}`` on a step whose result is a list, or a loop's)."""
    if isinstance(value, LazyResult):
        return value.listed()  # a list stored by reference is read as the list
    if isinstance(value, Mapping):
        return lazy_items(value["results"]) if _is_loop_result(value) else value
    return lazy_items(value)


class NoetlEnvironment(ImmutableSandboxedEnvironment):
    """Sandboxed, bounded, lenient. Mappings resolve keys before attributes."""

    code_generator_class = _BoundedCodeGenerator
    # Intercepted operators are also never folded at compile time (Jinja's rule for sandboxes), so
    # `{{ (9**9)**(9**9) }}` is not computed while a playbook is validated.
    intercepted_binops = frozenset(_BINOP_CHECKS)

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        obj = lazy(obj)  # a result stored by reference loads when a template looks inside it
        if attribute == SEALED_KEY:  # a reference's sealed part is the runtime's, never a template's
            obj = without_sealing(obj)
        if isinstance(obj, Mapping):
            value = obj.get(attribute, missing)
            if value is not missing:
                return lazy_items(value)  # a loop's results by reference, for `| length` and `for`
            if attribute == DATA_ALIAS:
                return _aliased(obj)
            if attribute in _MAPPING_METHODS:
                # A missing key named like a dict method (`iter.items`) is undefined, so `default()`
                # and `is defined` behave; calling it (`d.items()`) still calls the method.
                return _MethodOrUndefined(super().getattr(obj, attribute), obj=obj, name=attribute)
        elif attribute == DATA_ALIAS and isinstance(obj, list | LazyList):
            return lazy_items(obj)
        return super().getattr(obj, attribute)

    def getattr_of_name(self, obj: Any, attribute: str) -> Any:
        """``name.result``: the v1 habit on a name's own value (see RESULT_ALIAS)."""
        found = lazy(obj)
        if isinstance(found, Mapping) and attribute not in found or isinstance(found, list):
            tick()
            return _aliased(found)
        return self.getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        obj = lazy(obj) if argument != SEALED_KEY else without_sealing(lazy(obj))
        if isinstance(obj, Mapping) and isinstance(argument, str):
            value = obj.get(argument, missing)
            if value is not missing:
                return lazy_items(value)
        elif isinstance(obj, LazyResult):
            obj = obj.listed()  # `big[0]` on a list stored by reference
        return lazy_items(super().getitem(obj, argument))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        tick()
        _BINOP_CHECKS[operator](left, right)
        if operator == "%":  # `"%s" % value` writes the value as a text
            right = _shown(right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        tick()
        _check_method_call(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        check_format_string(value.__self__)
        return wrapped

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        tick()
        texts = [part if type(part) is str else str(_shown(part)) for part in parts]
        _too_long(sum(len(t) for t in texts), "the joined string")
        return "".join(texts)


def _now_utc() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def make_environment() -> NoetlEnvironment:
    env = NoetlEnvironment(undefined=LenientUndefined, autoescape=False, keep_trailing_newline=True, finalize=_shown)
    env.filters.update(
        tojson=_tojson, fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode,
        center=_bounded_filter("center", _center_check), indent=_bounded_filter("indent", _indent_check),
        format=_bounded_filter("format", _format_check), replace=_bounded_filter("replace", _replace_check),
        join=_bounded_join, batch=_bounded_filter("batch", _batch_check),
        slice=_bounded_filter("slice", _slice_check),
        unquoted=unquoted,  # shell code, not a value to quote (noetl.dsl.shellcode)
        string=_string, pprint=_pprint,  # texts of a value: without a reference's sealed part
        length=_length, count=_length,
    )
    env.globals.pop("lipsum", None)  # generates text of any size; no playbook needs placeholder prose
    env.globals.update(
        range=_BoundedRange,
        now_utc=_now_utc,  # the only clock templates see; the engine never renders it itself
        now=_now_utc,  # its name in older playbooks (`completed_at: "{{ now() }}"`)
    )
    return env


ENV = make_environment()
