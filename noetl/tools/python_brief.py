"""Which python step code may run on the event loop instead of a worker thread.

Part of the ``python`` tool (entry point: :mod:`noetl.tools.python`). A thread-mode step runs on a
worker thread so that code which loops, sleeps or waits never holds the event loop, and a run
whose code never ends can still be cancelled. Handing a step to a thread and its result back
(two thread wake-ups and the GIL passed back and forth) costs 10-25 us more per call than running
it on the loop, more than code such as ``result = a + b`` takes (docs/python-tool.md).

Code built only of assignments, ``if``, expressions on names and literals, and calls of a few
built-in functions by name (``len``, ``str``, ``print``, ...) cannot loop, sleep, wait or run
code of its own: every operation it performs is one C operation, bounded by the size of its
operands, that holds the GIL and would block the event loop just the same from a worker thread.
Such code runs on the event loop, as ``isolation: inline`` does, with the same result, output,
errors and environment; anything else (a loop, a comprehension, an import, ``def``, ``lambda``, an
attribute, a method call, ``await``, ``context``, another built-in, ``**``) keeps its thread.
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
from collections.abc import Collection

# Built-ins whose work on plain data is one bounded C operation that calls no user code.
_BRIEF_CALLS = frozenset(
    {"abs", "bool", "dict", "float", "int", "len", "list", "max", "min", "print", "round",
     "sorted", "str", "sum", "tuple"}
)
_BRIEF_NODES = (
    ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.Pass, ast.Return,
    ast.Name, ast.Load, ast.Store, ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare,
    ast.IfExp, ast.Subscript, ast.Slice, ast.Dict, ast.List, ast.Tuple, ast.Set, ast.JoinedStr,
    ast.FormattedValue, ast.Call, ast.keyword, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip
# `context` may hold results stored by reference, which are read from the store when indexed.
_THREAD_NAMES = frozenset({"context"})
# Any other built-in is anybody's code once passed along (`sorted(codes, key=exec)`).
_OTHER_BUILTINS = frozenset(dir(builtins)) - _BRIEF_CALLS
# Operators whose work is bounded by the size of their operands. `**` and `<<` take time and memory
# exponential in a small operand's value (`10**10**8` took 20 s), `%` formats to any width a
# string asks for (`'%*d' % (n, 0)`), `*` repeats a sequence as often as a number says: on the
# event loop, lines of them would hold it for all their sum, where a thread lets it run between them.
_BOUNDED_OPERATORS = (ast.Add, ast.Sub, ast.Div, ast.FloorDiv, ast.BitAnd, ast.BitOr, ast.BitXor, ast.RShift)
_SMALL = 1000  # a factor, a `round` precision or a format width that brief code may name


def runs_briefly(source: str, names_given: Collection[str]) -> bool:
    """True when ``source`` can only run briefly, so running it on the event loop loses nothing.

    ``names_given``: the names the step binds before its code runs (inputs, ``libs`` aliases): one
    that shadows a built-in the code calls makes that call anybody's code; another built-in's name
    the code reads (``id``, ``type``) is brief only as such an input, plain data.
    """
    names = _brief_names(source)
    if names is None:
        return False
    calls, other_builtins = names
    return calls.isdisjoint(names_given) and other_builtins.issubset(names_given)


@functools.lru_cache(maxsize=256)
def _brief_names(source: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """When ``source`` is brief code (see the module's docstring): the built-ins it calls, and the
    names of other built-ins it reads (brief only where an input of that name hides them); else None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # the thread path reports it, pointing at the user's line
    calls: set[str] = set()
    others: set[str] = set()
    assigned: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _BRIEF_NODES) or not _bounded(node):
            return None
        if isinstance(node, ast.Name):
            if node.id in _THREAD_NAMES or node.id.startswith("__"):
                return None
            if node.id in _OTHER_BUILTINS:
                others.add(node.id)
            if isinstance(node.ctx, ast.Store):
                assigned.add(node.id)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _BRIEF_CALLS:
                return None
            calls.add(node.func.id)
    return None if calls & assigned else (frozenset(calls), frozenset(others))


def _bounded(node: ast.AST) -> bool:
    """False for an operation whose cost a small value can make as large as it likes."""
    if isinstance(node, ast.BinOp):
        return _bounded_operation(node.op, node.left, node.right)
    if isinstance(node, ast.AugAssign):
        return _bounded_operation(node.op, node.target, node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _bounded_call(node.func.id, node)
    if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
        return _small_format(node.format_spec)
    return True


def _bounded_operation(operator: ast.operator, left: ast.AST, right: ast.AST) -> bool:
    if isinstance(operator, ast.Mult):  # `price * 2`, not `text * count`
        return _small_number(left) or _small_number(right)
    return isinstance(operator, _BOUNDED_OPERATORS)


def _bounded_call(name: str, call: ast.Call) -> bool:
    """`round(x, -10**8)` computes 10**10**8; `sum(lists, [])` copies its start once per item."""
    if name not in ("round", "sum"):
        return True
    extra = call.args[1:] + [keyword.value for keyword in call.keywords]
    return all(_small_number(argument) for argument in extra)


def _small_number(node: ast.AST) -> bool:
    value = node.value if isinstance(node, ast.Constant) else None
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= _SMALL


def _small_format(spec: ast.expr) -> bool:
    """A constant format spec whose widths and precisions are small (`f'{x:>4}'`, `f'{x:.2f}'`)."""
    if not isinstance(spec, ast.JoinedStr) or not all(isinstance(part, ast.Constant) for part in spec.values):
        return False
    text = "".join(str(part.value) for part in spec.values if isinstance(part, ast.Constant))
    return all(int(digits) <= _SMALL for digits in re.findall(r"\d+", text))
