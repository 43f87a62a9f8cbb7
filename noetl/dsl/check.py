"""Semantic checks run before anything executes: errors stop a run, warnings do not."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from noetl.dsl.check_loops import check_loop
from noetl.dsl.check_transfer import check_transfer
from noetl.dsl.kinds import (
    CODE_FIELDS,
    COMMON_TOOL_KEYS,
    KEYCHAIN_KIND_ALIASES,
    KEYCHAIN_KINDS,
    KNOWN_KINDS,
    ROUTING_KINDS,
    TOOL_KINDS,
)
from noetl.dsl.legacy import STEP_KEYS, TOP_LEVEL_IDENTITY_KEYS, lifts_top_level_identity
from noetl.dsl.model import Arc, Loop, LoopSpec, Next, NextSpec
from noetl.dsl.problems import UNDEFINED_NAME, Problem
from noetl.dsl.render import check_template, is_template
from noetl.dsl.schedules import SCHEDULE_KEYS, schedule_problems
from noetl.dsl.source import Source
from noetl.dsl.suggest import suggest
from noetl.errors import ToolError
from noetl.results.spec import output_spec

TOP_KEYS = {"apiVersion", "kind", "metadata", "workload", "keychain", "workbook", "executor", "workflow",
            "description", "spec", "schedules"}


def _model_keys(model: type[BaseModel], *older_spellings: str) -> frozenset[str]:
    """The keys a playbook may write for `model`: its fields (by alias), plus spellings of older forms."""
    return frozenset(info.alias or name for name, info in model.model_fields.items()) | set(older_spellings)


NEXT_KEYS = _model_keys(Next)
NEXT_SPEC_KEYS = _model_keys(NextSpec)
ARC_KEYS = _model_keys(Arc, "args", "with", "data", "desc", "description")
LOOP_KEYS = _model_keys(Loop, "mode", "collection", "element", "concurrency", "max_in_flight", "pagination")
LOOP_SPEC_KEYS = _model_keys(LoopSpec, "concurrency")
WORKBOOK_ENTRY_KEYS = {"name", "tool", "assert", "desc", "description", "input", "with", "data", "args", "save",
                       "sink"}
# A v1 `type: iterator` step's own fields (section 15).
ITERATOR_KEYS = frozenset({"collection", "in", "element", "iterator", "mode", "concurrency", "task", "tool",
                           "where", "order_by", "limit", "chunk"})
METADATA_KEYS = {"name", "path", "description", "version", "labels", "annotations", "tags", "owner"}

__all__ = ["UNDEFINED_NAME", "Checker", "Problem", "check_canonical", "suggest"]


def _tool_fields(kind: Any) -> frozenset[str] | None:
    """The keys a task of ``kind`` may carry (NoETL's common task keys and the tool's own fields);
    None for a kind whose fields are not known (an unknown kind is its own error)."""
    kind = {"playbooks": "playbook"}.get(kind, kind) if isinstance(kind, str) else kind
    if kind == "iterator":
        return ITERATOR_KEYS
    if kind not in TOOL_KINDS:
        return None
    return COMMON_TOOL_KEYS | TOOL_KINDS[kind].fields


def _flat_kind(entry: dict[str, Any]) -> Any:
    """The tool kind an older flat step or workbook entry names (`type: <kind>` or `tool: <kind>`)."""
    return entry.get("tool") if isinstance(entry.get("tool"), str) else entry.get("type")


def _step_keys(step: dict[str, Any]) -> frozenset[str] | None:
    """The keys a step may carry. A step naming its tool with `type:` (or `tool: <kind>`) carries
    that tool's fields beside its own; a `router` (or `start`/`end`) step carries none."""
    own = STEP_KEYS | {"name"}
    kind = _flat_kind(step)
    if kind is None or kind in ROUTING_KINDS:
        return own
    fields = _tool_fields(kind)
    return None if fields is None else own | fields


class Checker:
    """Collects problems for one playbook (raw document + canonical document)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.templates: list[tuple[tuple[Any, ...], str]] = []  # (path, source) of each that parses

    def error(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem("error", self.source.where(path), message))

    def warn(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem("warning", self.source.where(path), message))

    def note(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem("note", self.source.where(path), message))

    # unknown keys (raw document) --------------------------------------------------------
    def check_keys(self, raw: dict[str, Any]) -> None:
        identity = set(TOP_LEVEL_IDENTITY_KEYS) if lifts_top_level_identity(raw) else set()
        self._unknown(raw, (), TOP_KEYS | identity, "playbook")
        if isinstance(raw.get("metadata"), dict):
            self._unknown(raw["metadata"], ("metadata",), METADATA_KEYS, "metadata")
        for i, step in enumerate(raw.get("workflow") or []):
            if isinstance(step, dict):
                self._check_step_keys(step, ("workflow", i))
        for i, entry in enumerate(raw.get("workbook") or []):
            if not isinstance(entry, dict):
                continue
            # An entry in the older flat form carries its tool's fields beside `type:` / `tool: <kind>`.
            flat = None if isinstance(entry.get("tool"), dict | list) else _tool_fields(_flat_kind(entry))
            if flat is not None or isinstance(entry.get("tool"), dict | list):
                self._unknown(entry, ("workbook", i), WORKBOOK_ENTRY_KEYS | (flat or frozenset()),
                              f"workbook entry {entry.get('name')!r}")
            if isinstance(entry, dict) and isinstance(entry.get("tool"), dict):
                # `assert:` inside the entry's tool is the entry's contract (noetl.dsl.legacy)
                tool = {k: v for k, v in entry["tool"].items() if k != "assert" or "assert" in entry}
                self._check_tool_keys(tool, ("workbook", i, "tool"))

    def _unknown(self, data: dict[str, Any], path: tuple[Any, ...], known: set[str] | frozenset[str], what: str) -> None:
        for key in data:
            if key not in known:
                self.warn((*path, key), f"unknown key {key!r} in {what}{suggest(key, known)}")

    def check_ambiguity(self, raw: dict[str, Any]) -> None:
        """Older forms that say two things at once are errors: NoETL will not guess which one is meant."""
        for i, step in enumerate(raw.get("workflow") or []):
            if not isinstance(step, dict):
                continue
            label = f"step {step.get('step')!r}"
            ways = [key for key in ("tool", "type", "call") if key in step]
            if len(ways) > 1 and not (ways == ["tool", "type"] and isinstance(step.get("tool"), str)):
                self.error(("workflow", i, ways[1]), f"{label}: ambiguous: both {' and '.join(f'`{w}:`' for w in ways)} "
                           "say what the step runs; keep one")
            for j, item in enumerate(step.get("next") or [] if isinstance(step.get("next"), list) else []):
                if isinstance(item, dict) and "step" in item and ("then" in item or "else" in item):
                    self.error(("workflow", i, "next", j), f"{label}: ambiguous `next` entry: it has both `step:` "
                               "and `then:`/`else:`; use `{when, then: [...]}` or `{step, when}`")

    def _check_step_keys(self, step: dict[str, Any], path: tuple[Any, ...]) -> None:
        known = _step_keys(step)
        if known is not None:
            self._unknown(step, path, known, f"step {step.get('step')!r}")
        call = step.get("call")
        if isinstance(call, dict) and (fields := _tool_fields(call.get("type", call.get("kind", "playbook")))):
            self._unknown(call, (*path, "call"), fields, f"step {step.get('step')!r} call")
        self._check_routing_and_loop_keys(step, path)
        self._check_output(step, path)
        tool = step.get("tool")
        tasks = tool if isinstance(tool, list) else [tool] if isinstance(tool, dict) else []
        for j, task in enumerate(tasks):
            if isinstance(task, dict):
                self._check_tool_keys(task, (*path, "tool", j) if isinstance(tool, list) else (*path, "tool"))
                self._check_output(task, (*path, "tool", j) if isinstance(tool, list) else (*path, "tool"))

    def _check_routing_and_loop_keys(self, step: dict[str, Any], path: tuple[Any, ...]) -> None:
        """A misspelt key of `next`, an arc or a loop would be dropped without a word (an arc's
        `wen:` makes it fire unconditionally)."""
        label = f"step {step.get('step')!r}"
        nxt = step.get("next")
        if isinstance(nxt, dict) and ("arcs" in nxt or "spec" in nxt):
            self._unknown(nxt, (*path, "next"), NEXT_KEYS, f"{label} next")
            if isinstance(nxt.get("spec"), dict):
                self._unknown(nxt["spec"], (*path, "next", "spec"), NEXT_SPEC_KEYS, f"{label} next.spec")
            arcs = nxt.get("arcs")
            for j, arc in enumerate(arcs if isinstance(arcs, list) else []):
                if isinstance(arc, dict):
                    self._unknown(arc, (*path, "next", "arcs", j), ARC_KEYS, f"{label} arc")
        loop = step.get("loop")
        if isinstance(loop, dict):
            self._unknown(loop, (*path, "loop"), LOOP_KEYS, f"{label} loop")
            if isinstance(loop.get("spec"), dict):
                self._unknown(loop["spec"], (*path, "loop", "spec"), LOOP_SPEC_KEYS, f"{label} loop.spec")

    def _check_output(self, entry: dict[str, Any], path: tuple[Any, ...]) -> None:
        """`output:` (results by reference) is checked before anything runs."""
        if "output" not in entry:
            return
        try:
            output_spec(entry["output"])
        except ToolError as exc:
            self.error((*path, "output"), str(exc))

    def _check_tool_keys(self, task: dict[str, Any], path: tuple[Any, ...]) -> None:
        kind = task.get("kind") or task.get("type")
        if kind not in TOOL_KINDS:
            return
        self._unknown(task, path, COMMON_TOOL_KEYS | TOOL_KINDS[kind].fields, f"{kind} tool")

    # templates (raw document) -----------------------------------------------------------
    def check_templates(self, value: Any, path: tuple[Any, ...] = ()) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key not in CODE_FIELDS:
                    self.check_templates(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.check_templates(item, (*path, i))
        elif is_template(value):
            problem = check_template(value)
            if problem:
                self.error(path, f"template does not parse: {problem}: {value.strip()!r}")
            else:
                self.templates.append((path, value))

    def check_names(self, known: frozenset[str], workload_keys: frozenset[str] | None = None) -> None:
        """Warn about each name a template reads that nothing in the playbook defines, and (when the
        workload is a mapping) each `workload.<key>` it does not declare."""
        if not self.templates:
            return
        from noetl.dsl.names import free_names, workload_fields  # Jinja's parser: only for templates

        for path, source in self.templates:
            if workload_keys is not None:
                for key in sorted(workload_fields(source) - workload_keys):
                    self.problems.append(Problem(
                        "warning", self.source.where(path),
                        f"template uses workload key {key!r}, which the workload does not declare"
                        f"{suggest(key, workload_keys)}: {source.strip()!r}", UNDEFINED_NAME))
            for name in sorted(free_names(source) - known):
                self.problems.append(Problem(
                    "warning", self.source.where(path),
                    f"template uses {name!r}, which nothing defines (no workload key, step, set key, iterator "
                    f"or built-in){suggest(name, known)}: {source.strip()!r}", UNDEFINED_NAME))


def check_canonical(checker: Checker, doc: dict[str, Any]) -> None:
    """Structural checks on the canonical raw document (before the pydantic model is built)."""
    workflow = doc.get("workflow")
    if not isinstance(workflow, list) or not workflow:
        checker.error(("workflow",), "`workflow` must be a non-empty list of steps")
        return
    names: dict[str, int] = {}
    for i, step in enumerate(workflow):
        if not isinstance(step, dict) or not step.get("step"):
            checker.error(("workflow", i), "every workflow item needs a `step:` name")
            continue
        name = str(step["step"])
        if name in names:
            checker.error(("workflow", i, "step"), f"duplicate step name {name!r} (first at workflow[{names[name]}])")
        names.setdefault(name, i)
    workbook_names = {e.get("name") for e in doc.get("workbook") or [] if isinstance(e, dict)}
    for i, step in enumerate(workflow):
        if isinstance(step, dict) and step.get("step"):
            _check_step(checker, step, ("workflow", i), names, workbook_names)
    for i, entry in enumerate(doc.get("workbook") or []):
        for task in entry.get("tool") or [] if isinstance(entry, dict) else []:
            _check_task(checker, task, ("workbook", i, "tool"), workbook_names, f"workbook entry {entry.get('name')!r}")
    _check_schedules(checker, doc.get("schedules"))
    _check_keychain(checker, doc.get("keychain"))
    spec = ((doc.get("executor") or {}).get("spec") or {}) if isinstance(doc.get("executor"), dict) else {}
    for key in ("entry_step", "final_step"):
        target = spec.get(key)
        if target and target not in names:
            checker.error(("executor", "spec", key), f"{key} {target!r} is not a step{suggest(target, set(names))}")


def _check_keychain(checker: Checker, entries: Any) -> None:
    """What would fail the execution at its start: an entry without a name, a kind NoETL lacks."""
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        if not entry.get("name"):
            checker.error(("keychain", i), "every keychain entry needs a `name`")
        key = "kind" if entry.get("kind") else "type"
        kind = entry.get(key)
        if not kind or is_template(kind):
            continue
        if str(kind).lower() not in {*KEYCHAIN_KINDS, *KEYCHAIN_KIND_ALIASES}:
            hint = suggest(str(kind), set(KEYCHAIN_KINDS)) or f" ({', '.join(KEYCHAIN_KINDS)})"
            checker.error(("keychain", i, key), f"keychain entry {entry.get('name')!r}: unknown keychain kind {kind!r}{hint}")


def _check_schedules(checker: Checker, schedules: Any) -> None:
    if schedules is None:
        return
    if not isinstance(schedules, list):
        checker.error(("schedules",), "`schedules` must be a list of {cron, timezone, payload, overlap, catchup}")
        return
    for i, entry in enumerate(schedules):
        for key_path, message in schedule_problems(entry):
            checker.error(("schedules", i, *key_path), message)
        if isinstance(entry, dict):
            checker._unknown(entry, ("schedules", i), SCHEDULE_KEYS, "schedule")


def _check_step(checker: Checker, step: dict[str, Any], path: tuple[Any, ...], names: dict[str, int],
                workbook_names: set[Any]) -> None:
    label = f"step {step['step']!r}"
    tool_path = (*path, "tool")
    for task in step.get("tool") or []:
        _check_task(checker, task, tool_path, workbook_names, label)
    if step.get("loop") is not None:
        check_loop(checker, step["loop"], path, label)
    for arc in (step.get("next") or {}).get("arcs") or []:
        if not isinstance(arc, dict):
            checker.error((*path, "next"), f"{label}: each arc must be a mapping with `step:`")
            continue
        target = arc.get("step")
        if target is not None and target not in names:
            checker.error((*path, "next"), f"{label}: arc to missing step {target!r}{suggest(target, set(names))}")


def _check_task(checker: Checker, task: Any, path: tuple[Any, ...], workbook_names: set[Any], label: str) -> None:
    if not isinstance(task, dict):
        checker.error(path, f"{label}: a tool must be a mapping with `kind:`")
        return
    kind = task.get("kind")
    if kind is None:
        keys = ", ".join(map(str, task)) or "none"
        checker.error(path, f"{label}: a tool needs `kind:` (it has keys: {keys}); a pipeline task is "
                            "`- name: <task>` with `kind:` beside it")
        return
    if kind not in KNOWN_KINDS:
        checker.error(path, f"{label}: unknown tool kind {kind!r}{suggest(str(kind), KNOWN_KINDS)}")
        return
    required = TOOL_KINDS[kind].required
    if required and not any(task.get(field) for field in required):
        checker.error(path, f"{label}: {kind} tool needs one of: {', '.join(required)}")
    if kind == "transfer":
        check_transfer(checker, task, path, label)
    if kind == "workbook" and task.get("name") and task["name"] not in workbook_names:
        checker.error(path, f"{label}: no workbook entry named {task['name']!r}"
                      f"{suggest(str(task['name']), {str(n) for n in workbook_names})}")
