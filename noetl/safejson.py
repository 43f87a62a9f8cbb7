"""Strict JSON: what PostgreSQL's jsonb, other JSON readers and NoETL's own stores can keep.

Python's ``json`` accepts ``NaN``/``Infinity`` (not JSON), lone UTF-16 surrogates (``"\\ud800"``,
not encodable as UTF-8) and any nesting (until a RecursionError); jsonb refuses NUL characters.
:func:`loads_strict` turns each of those into one clear :class:`~noetl.errors.InputError` naming
where the value sits, and :func:`check_value` does the same for a value built some other way (a
``--set`` or a YAML payload).
"""

from __future__ import annotations

import json
from typing import Any

from noetl.errors import InputError
from noetl.limits import MAX_DEPTH


class InvalidJson(InputError):
    """The text is not JSON at all (a syntax error), as opposed to JSON NoETL cannot keep."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_MISSING = object()
# A run of 19 digits: a number orjson might read as a float (an integer beyond 64 bits), or digits
# in a string. Found by mapping every digit to "d" and searching, 20x faster than a regex.
_DIGITS_AS_D = bytes(ord("d") if 48 <= byte <= 57 else ord(" ") for byte in range(256))
_LONG_RUN = b"d" * 19


def _parsed_fast(text: str | bytes) -> Any:
    """``text`` read by orjson, where that gives what ``json`` gives: about 3x faster, and the parse
    holds the interpreter (a server's event loop too, even from a thread) for all its length."""
    if len(text) < 64 * 1024:
        return _MISSING  # the difference is not worth a search
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _LONG_RUN in data.translate(_DIGITS_AS_D):
        return _MISSING  # orjson reads integers beyond 64 bits as floats
    import orjson

    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _MISSING  # json's own reading gives the error, as it always did


def loads_strict(text: str | bytes, where: str = "body") -> Any:
    value = _parsed_fast(text)
    if value is not _MISSING:
        check_value(value, where)
        return value
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"{where}: nested more than {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"{where}: invalid JSON: {exc}") from None
    except ValueError as exc:  # NaN / Infinity, from _no_constant
        raise InputError(f"{where}: {exc}") from None
    check_value(value, where)
    return value


def check_value(value: Any, where: str = "value") -> None:
    """Refuse NaN/Infinity, NUL characters, lone surrogates and nesting deeper than MAX_DEPTH."""
    if not _surely_valid(value):
        _check_naming_the_place(value, where)


_PLAIN = frozenset({int, bool, type(None)})  # values that are always storable JSON
_INFINITIES = (float("inf"), float("-inf"))


def _surely_valid(value: Any) -> bool:
    """Whether ``value`` holds nothing :func:`check_value` refuses, found without building the path
    of every value (a body of a million numbers took seconds of the server's event loop); False
    also for what only the slow walk can judge (subclasses), which then finds the place."""
    stack: list[tuple[Any, int]] = [([value], -1)]  # the value as the only item of a list above it
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_DEPTH:
            return False
        if type(item) is dict:
            if not all(type(key) is str and _storable_text(key) for key in item):
                return False
            children = item.values()
        else:
            children = item
        for child in children:
            child_kind = type(child)
            if child_kind in _PLAIN:
                continue
            if child_kind is str:
                if not _storable_text(child):
                    return False
            elif child_kind is float:
                if child != child or child in _INFINITIES:
                    return False
            elif child_kind is dict or child_kind is list:
                stack.append((child, depth + 1))
            else:
                return False
    return True


def _storable_text(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_naming_the_place(value: Any, where: str) -> None:
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, where, path)
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise InputError(f"{where}: {path}: NaN and Infinity are not JSON numbers")
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise InputError(f"{where}: nested more than {MAX_DEPTH} levels deep (at {path[:60]}...)")
            if isinstance(item, dict):
                for key, child in item.items():
                    key_path = f"{path}.{key}" if isinstance(key, str) and len(path) < 200 else path
                    if isinstance(key, str):
                        _check_text(key, where, key_path)
                    stack.append((child, key_path, depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]" if len(path) < 200 else path, depth + 1)
                             for i, child in enumerate(item))


def _check_text(text: str, where: str, path: str) -> None:
    if "\x00" in text:
        raise InputError(f"{where}: {_printable(path)}: NUL characters (\\u0000) cannot be stored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{where}: {_printable(path)}: a lone UTF-16 surrogate is not valid text") from None


def _printable(path: str) -> str:
    return path.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
