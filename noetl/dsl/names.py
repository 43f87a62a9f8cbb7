"""Which names a playbook's templates can use, for the static "nothing defines this" warning.

A template name is defined when it is a workload key, a step or task name, a `set` key (step, arc,
task or policy; `ctx.x`, `vars.x` and bare `x` all define `x`), a loop iterator, an input key, or a
name NoETL itself provides. Names a template defines for itself (`{% set %}`, `{% for %}`) are not
free names at all. Payload keys that the workload does not declare cannot be known here: that is
why this is a warning, never an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from noetl.dsl.code_templates import context_names
from noetl.dsl.render_env import ENV

# Functions templates can call besides the context names (Jinja's and NoETL's own).
TEMPLATE_FUNCTIONS = frozenset({"now_utc", "now", "range", "dict", "cycler", "joiner", "namespace"})
# Names only some render contexts have: the claim query of a cursor loop.
CURSOR_NAMES = frozenset({"__frame_max_rows"})


_GUARD_FILTERS = frozenset({"default", "d"})
_GUARD_TESTS = frozenset({"defined", "undefined"})


def _root_name(node: nodes.Node) -> nodes.Name | None:
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        node = node.node
    return node if isinstance(node, nodes.Name) else None


def _guarded(tree: nodes.Template) -> set[int]:
    """Name nodes read only to be checked: `x.y | default(...)`, `x is defined`."""
    guarded: set[int] = set()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        names = _GUARD_FILTERS if isinstance(node, nodes.Filter) else _GUARD_TESTS
        root = _root_name(node.node) if node.name in names and node.node is not None else None
        if root is not None:
            guarded.add(id(root))
    return guarded


def _parse_with_guards(source: str) -> tuple[nodes.Template, set[int]] | None:
    """The template's tree and the ids of its guarded names; None when it does not parse."""
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError:
        return None
    return tree, _guarded(tree)


@lru_cache(maxsize=4096)
def free_names(source: str) -> frozenset[str]:
    """The names ``source`` reads from its context without a guard (`default()`, `is defined`);
    empty when it does not parse."""
    parsed = _parse_with_guards(source)
    if parsed is None:
        return frozenset()
    tree, guarded = parsed
    unguarded = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load" and id(n) not in guarded}
    return frozenset(meta.find_undeclared_variables(tree) & unguarded)


@lru_cache(maxsize=4096)
def workload_fields(source: str) -> frozenset[str]:
    """The keys ``source`` reads as `workload.<key>` (or `workload['key']`) without a guard;
    empty when it does not parse."""
    parsed = _parse_with_guards(source)
    if parsed is None:
        return frozenset()
    tree, guarded = parsed
    fields: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not isinstance(node, nodes.Getattr | nodes.Getitem):
            continue
        base = node.node
        if not (isinstance(base, nodes.Name) and base.name == "workload" and id(base) not in guarded):
            continue
        if isinstance(node, nodes.Getattr):
            fields.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            fields.add(node.arg.value)
    return frozenset(fields)


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        yield from (str(k) for k in value)


def _policy_set_roots(task: dict[str, Any]) -> Iterator[str]:
    spec = task.get("spec")
    rules = ((spec.get("policy") or {}).get("rules")) if isinstance(spec, dict) else None
    for rule in rules if isinstance(rules, list) else []:
        then = rule.get("then") if isinstance(rule, dict) else None
        for key in then.get("set") or {} if isinstance(then, dict) else {}:
            yield str(key).removeprefix("ctx.").removeprefix("vars.").split(".")[0]


def _task_extras(task: Any) -> Iterator[str]:
    """What a task adds beyond context_names: its input keys (top-level names inside a workbook
    entry) and the `set` keys of its policy rules."""
    if isinstance(task, dict):
        yield from _keys(task.get("input"))
        yield from _policy_set_roots(task)
        if task.get("name"):
            yield str(task["name"])


def defined_names(doc: dict[str, Any]) -> frozenset[str]:
    """Every name the canonical document ``doc`` defines for templates, with the built-in ones."""
    names = context_names(doc) | TEMPLATE_FUNCTIONS | CURSOR_NAMES
    for step in doc.get("workflow") or []:
        if not isinstance(step, dict):
            continue
        names.update(_keys(step.get("input")))
        for task in step.get("tool") or []:
            names.update(_task_extras(task))
        for arc in (step.get("next") or {}).get("arcs") or []:
            names.update(_keys(arc.get("input") if isinstance(arc, dict) else None))
    for entry in doc.get("workbook") or []:
        for task in (entry.get("tool") or []) if isinstance(entry, dict) else []:
            names.update(_task_extras(task))
    return frozenset(names)
