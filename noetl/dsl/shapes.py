"""Structural types of the raw document, checked before older forms are normalised.

The normaliser accepts many spellings (``tool: python``, ``next: [a, b]``, ``next: {arcs: [...]}``),
so it must not also guess at values of the wrong type: ``tool: 5`` used to run as a noop and
``next: {arcs: 5}`` to crash. Each check here names the field and its file:line.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

Path = tuple[Any, ...]


class _Reports(Protocol):
    def error(self, path: Path, message: str) -> None: ...


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def check_shapes(report: _Reports, raw: dict[str, Any]) -> None:
    for key, wanted in (("metadata", dict), ("workload", dict), ("workflow", list), ("workbook", list)):
        value = raw.get(key)
        if value is not None and not isinstance(value, wanted):
            report.error((key,), f"{key}: expected {'a mapping' if wanted is dict else 'a list'}, got {_kind(value)}")
    if isinstance(raw.get("workbook"), list):
        for index, entry in enumerate(raw["workbook"]):
            if not isinstance(entry, dict):
                report.error(("workbook", index), f"workbook[{index}]: expected a mapping, got {_kind(entry)}")
            else:
                _check_tool_field(report, ("workbook", index), entry)
    workflow = raw.get("workflow")
    for index, step in enumerate(workflow if isinstance(workflow, list) else []):
        path = ("workflow", index)
        if not isinstance(step, dict):
            report.error(path, f"workflow[{index}]: a step must be a mapping, got {_kind(step)}")
            continue
        _check_step(report, path, step)


def _check_step(report: _Reports, path: Path, step: dict[str, Any]) -> None:
    name = step.get("step", path[-1])
    for key in ("set", "input", "with", "args"):
        value = step.get(key)
        if value is not None and not isinstance(value, dict):
            report.error((*path, key), f"step {name!r}: `{key}` must be a mapping, got {_kind(value)}")
    _check_tool_field(report, path, step)
    _check_next(report, path, name, step.get("next"))
    if step.get("loop") is not None and not isinstance(step["loop"], dict):
        report.error((*path, "loop"), f"step {name!r}: `loop` must be a mapping {{in, iterator, spec}}")
    if isinstance(step.get("spec"), dict):
        _check_timeout(report, (*path, "spec"), name, step["spec"])
    _check_retry_forms(report, (*path, "retry"), name, step.get("retry"))
    _check_loaded_retries(report, path, name, step)


def _check_loaded_retries(report: _Reports, path: Path, name: Any, step: dict[str, Any]) -> None:
    """The other places a retry is read at load: a v1 iterator task's own `retry:` and
    `loop.pagination` (its `max_iterations` and `retry:`; noetl.dsl.legacy reads both)."""
    tool = step.get("tool")
    task = step.get("task") if isinstance(step.get("task"), dict) else (
        tool.get("task") if isinstance(tool, dict) else None)
    if isinstance(task, dict):
        task_path = (*path, "task") if "task" in step else (*path, "tool", "task")
        _check_retry_forms(report, (*task_path, "retry"), name, task.get("retry"))
    loop = step.get("loop")
    pagination = loop.get("pagination") if isinstance(loop, dict) else None
    if isinstance(pagination, dict):
        where = (*path, "loop", "pagination")
        _check_retry_count(report, (*where, "max_iterations"), name, "loop.pagination.max_iterations",
                           pagination.get("max_iterations"))
        if isinstance(pagination.get("retry"), dict):
            _check_retry(report, (*where, "retry"), name, pagination["retry"])


def _check_retry_forms(report: _Reports, path: Path, name: Any, retry: Any) -> None:
    """Every block of a step's `retry:` in each of its spellings (one block, `{on_error,
    on_success}`, a list of `{when, then}`; noetl.dsl.legacy_common.retry_rules reads them)."""
    if isinstance(retry, str) and retry.strip().lower() not in ("true", "false") or isinstance(retry, float):
        report.error(path, f"step {name!r}: `retry` must be a mapping, a list, true/false or a whole number, "
                           f"got {retry!r}")
    elif isinstance(retry, list):
        for index, entry in enumerate(retry):
            then = entry.get("then") if isinstance(entry, dict) else None
            if isinstance(then, dict):
                _check_retry(report, (*path, index, "then"), name, then)
    elif isinstance(retry, dict) and {"on_error", "on_success"} & set(retry):
        for side in ("on_error", "on_success"):
            if isinstance(retry.get(side), dict):
                _check_retry(report, (*path, side), name, retry[side])
    elif isinstance(retry, dict):
        _check_retry(report, path, name, retry)


# A step's `retry:` block is read when the playbook is loaded (it becomes a policy rule), so its
# numbers are numbers or number strings; a template there is never rendered.
_RETRY_COUNTS = ("attempts", "max_attempts")
_RETRY_SECONDS = ("delay", "initial_delay", "backoff_multiplier", "max_delay")


def _check_retry(report: _Reports, path: Path, name: Any, retry: dict[str, Any]) -> None:
    for key in _RETRY_COUNTS:
        _check_retry_count(report, (*path, key), name, f"retry.{key}", retry.get(key))
    for key in _RETRY_SECONDS:
        _check_seconds(report, (*path, key), name, f"retry.{key}", retry.get(key))


def _check_seconds(report: _Reports, path: Path, name: Any, label: str, value: Any) -> None:
    """A delay: a finite number from 0 (a number string too). An infinite one (`.inf`) would make
    a retry wait for ever."""
    if value is None:
        return
    try:
        valid = not isinstance(value, bool | list | dict) and 0 <= float(value) < math.inf
    except (TypeError, ValueError):
        valid = False
    if not valid:
        report.error(path, f"step {name!r}: `{label}` must be a number from 0, finite, got {value!r}")


def _check_retry_count(report: _Reports, path: Path, name: Any, label: str, value: Any) -> None:
    if isinstance(value, str) and not value.strip().isdigit():
        report.error(path, f"step {name!r}: `{label}` must be a whole number, got {value!r}")
    else:
        _check_count(report, path, name, label, value)


def _check_tool_field(report: _Reports, path: Path, holder: dict[str, Any]) -> None:
    name = holder.get("step", holder.get("name", path[-1]))
    tool = holder.get("tool")
    if tool is None or isinstance(tool, str):
        return
    tasks = tool if isinstance(tool, list) else [tool]
    if not isinstance(tool, dict | list):
        report.error((*path, "tool"), f"step {name!r}: `tool` must be a mapping {{kind: ...}} or a list of tasks, "
                                      f"got {_kind(tool)}")
        return
    for index, task in enumerate(tasks):
        where = (*path, "tool", index) if isinstance(tool, list) else (*path, "tool")
        if not isinstance(task, dict):
            report.error(where, f"step {name!r}: a task must be a mapping {{kind: ...}}, got {_kind(task)}")
            continue
        for key in ("set", "spec"):
            if task.get(key) is not None and not isinstance(task[key], dict):
                report.error((*where, key), f"step {name!r}: `tool.{key}` must be a mapping, got {_kind(task[key])}")
        spec = task.get("spec")
        if isinstance(spec, dict):
            _check_timeout(report, (*where, "spec"), name, spec)
            _check_policy(report, (*where, "spec", "policy"), name, spec.get("policy"))


def _check_policy(report: _Reports, path: Path, name: Any, policy: Any) -> None:
    if policy is None:
        return
    rules = policy.get("rules") if isinstance(policy, dict) else None
    if not isinstance(policy, dict) or (rules is not None and not isinstance(rules, list)):
        report.error(path, f"step {name!r}: `spec.policy` must be a mapping with a `rules` list")
        return
    for index, rule in enumerate(rules or []):
        if not isinstance(rule, dict):
            report.error((*path, "rules", index), f"step {name!r}: a policy rule must be a mapping {{when, then}}")
            continue
        otherwise = rule.get("else")
        then = rule.get("then") or (otherwise.get("then") if isinstance(otherwise, dict) else None)
        if not isinstance(then, dict):
            continue  # the policy checks say what is missing
        _check_count(report, (*path, "rules", index, "then", "attempts"), name, "then.attempts", then.get("attempts"))
        for key in ("delay", "max_delay"):
            value = then.get(key)
            if not isinstance(value, str):  # a string may be a template, rendered when the rule fires
                _check_seconds(report, (*path, "rules", index, "then", key), name, f"then.{key}", value)


def _check_next(report: _Reports, path: Path, name: Any, value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    where = (*path, "next")
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str | dict):
                report.error((*where, index), f"step {name!r}: a `next` entry must be a step name or a mapping, "
                                              f"got {_kind(item)}")
        return
    if not isinstance(value, dict):
        report.error(where, f"step {name!r}: `next` must be a step name, a list or {{spec, arcs}}, got {_kind(value)}")
        return
    arcs = value.get("arcs")
    if arcs is not None and not isinstance(arcs, list):
        report.error((*where, "arcs"), f"step {name!r}: `next.arcs` must be a list, got {_kind(arcs)}")
    for index, arc in enumerate(arcs if isinstance(arcs, list) else []):
        if not isinstance(arc, dict | str):
            report.error((*where, "arcs", index), f"step {name!r}: an arc must be a mapping {{step, when}}")
    if value.get("spec") is not None and not isinstance(value["spec"], dict):
        report.error((*where, "spec"), f"step {name!r}: `next.spec` must be a mapping")


def _check_timeout(report: _Reports, path: Path, name: Any, spec: dict[str, Any]) -> None:
    timeout = spec.get("timeout")
    if timeout is None or isinstance(timeout, str):  # a string may be a template
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0 or timeout != timeout:
        report.error((*path, "timeout"), f"step {name!r}: `spec.timeout` must be a positive number of seconds, "
                                         f"got {timeout!r}")


def _check_count(report: _Reports, path: Path, name: Any, field: str, value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        report.error(path, f"step {name!r}: `{field}` must be a whole number from 0, got {value!r}")
