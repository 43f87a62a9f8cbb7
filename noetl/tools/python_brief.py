"""Which python step code may run on the event loop instead of a worker thread.

Part of the ``python`` tool (entry point: :mod:`noetl.tools.python`). A thread-mode step runs on a
worker thread so that code which loops, sleeps or waits never holds the event loop, and a run
whose code never ends can still be cancelled. Handing a step to a thread and its result back
(two thread wake-ups and the GIL passed back and forth) costs 10-25 us more per call than running
it on the loop, more than code such as ``result = a + b`` takes (docs/python-tool.md).

Code built only of assignments, ``if``, expressions on names and literals, and calls of a few
built-in functions by name (``len``, ``str``, ``print``, ...) cannot loop, sleep, wait or run
code of its own: every operation it performs is one C operation that holds the GIL, which would
block the event loop just the same from a worker thread. Such code runs on the event loop, as
``isolation: inline`` does, with the same result, output, errors and environment; anything else
(a loop, a comprehension, an import, ``def``, ``lambda``, an attribute, a method call, ``await``,
``context``) keeps its thread.
"""

from __future__ import annotations

import ast
import functools
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


def runs_briefly(source: str, names_given: Collection[str]) -> bool:
    """True when ``source`` can only run briefly, so running it on the event loop loses nothing.

    ``names_given``: the names the step binds before its code runs (inputs, ``libs`` aliases): one
    that shadows a built-in the code calls makes that call anybody's code.
    """
    calls = _brief_calls(source)
    return calls is not None and not any(name in calls for name in names_given)


@functools.lru_cache(maxsize=256)
def _brief_calls(source: str) -> frozenset[str] | None:
    """The built-ins ``source`` calls when it is brief code (see the module's docstring), else None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # the thread path reports it, pointing at the user's line
    calls: set[str] = set()
    assigned: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _BRIEF_NODES):
            return None
        if isinstance(node, ast.Name):
            if node.id in _THREAD_NAMES:
                return None
            if isinstance(node.ctx, ast.Store):
                assigned.add(node.id)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _BRIEF_CALLS:
                return None
            calls.add(node.func.id)
    return None if calls & assigned else frozenset(calls)
