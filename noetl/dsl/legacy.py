"""Normalise the older DSL spellings (v1, case era) into the canonical form.

The engine only knows the canonical model; every older form is rewritten here, once, on the raw
YAML data. Each rewrite leaves a note ("a newer spelling exists") that `noetl validate` shows.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from noetl.dsl.kinds import EVENT_LOG_STORAGE, LEGACY_TYPE_NAMES, ROUTING_KINDS
from noetl.dsl.legacy_case import _attach_case_policy, _case_arcs, _is_pipeline_rule, case_sink
from noetl.dsl.legacy_common import UNSUPPORTED as UNSUPPORTED  # re-exported: parse.py reads it from here
from noetl.dsl.legacy_common import Note, _strip_braces, _target, retry_rules

# Keys that belong to the step itself; any other key on a step with `type:` is a tool field.
STEP_KEYS = frozenset(
    {"step", "desc", "description", "input", "with", "data", "args", "loop", "tool", "set", "next",
     "case", "vars", "retry", "save", "sink", "type", "call", "spec", "pipeline", "when", "then", "else",
     "output", "set_ctx", "return"}
)
TOOL_KINDS_AS_TYPE = LEGACY_TYPE_NAMES
_CREDENTIAL_ALIAS_KINDS = frozenset({"postgres", "http", "duckdb"})


def normalize_playbook(raw: dict[str, Any]) -> tuple[dict[str, Any], list[Note]]:
    """Return the canonical raw document and the notes about older spellings found."""
    doc = copy_document(raw)
    notes: list[Note] = []
    _lift_top_level_identity(doc, notes)
    workflow = doc.get("workflow")
    if isinstance(workflow, list):
        workflow = _returns_as_results(workflow, notes)
        taken = {step.get("step") for step in workflow if isinstance(step, dict)}
        doc["workflow"] = [
            out
            for i, step in enumerate(workflow)
            for out in (_normalize_step_with_save(step, ("workflow", i), notes, taken)
                        if isinstance(step, dict) else [step])
        ]
    workbook = doc.get("workbook")
    if isinstance(workbook, list):
        doc["workbook"] = [
            _normalize_workbook_entry(e, ("workbook", i), notes) if isinstance(e, dict) else e
            for i, e in enumerate(workbook)
        ]
    return doc, notes


def _returns_as_results(workflow: list[Any], notes: list[Note]) -> list[Any]:
    """`return: X` on a v1 step without a tool (often the `end` step) makes X the step's result,
    so the playbook returns it: X names a step, or a workbook entry (the result of the last step
    that runs it), or is a template."""
    steps = [s for s in workflow if isinstance(s, dict)]
    names = {s.get("step") for s in steps}
    ran_entry = {_workbook_entry_of(s): s.get("step") for s in steps if _workbook_entry_of(s)}
    out: list[Any] = []
    for i, step in enumerate(workflow):
        value = step.get("return") if isinstance(step, dict) else None
        if value is None or (step.get("tool") not in (None, *ROUTING_KINDS)) or (
                step.get("type") not in (None, *ROUTING_KINDS)):
            out.append(step)
            continue
        if isinstance(value, str) and "{{" not in value and "{%" not in value:
            target = value if value in names else ran_entry.get(value, value)
            value = "{{ " + str(target) + " }}"
        notes.append((("workflow", i, "return"), "`return:` on a step: newer spelling is the playbook's "
                      "`executor.spec.final_step` (or a `noop` tool whose `result` is the value)"))
        rest = {k: v for k, v in step.items() if k not in ("return", "tool", "type")}
        out.append({**rest, "tool": {"kind": "noop", "result": value}})
    return out


def _workbook_entry_of(step: dict[str, Any]) -> Any:
    """The workbook entry a v1 `type: workbook` step (or `tool: workbook`) runs, if it is one."""
    if "workbook" not in (step.get("type"), step.get("tool")):
        return None
    return step.get("name") or step.get("task")


_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


def copy_document(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy`` for a parsed document (no cycles: the YAML check refuses recursive
    aliases), faster on its dicts, lists and plain scalars; anything else goes to deepcopy. Like
    deepcopy it keeps shared parts (YAML aliases) shared in the copy."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if memo is None:
        memo = {}
    found = memo.get(id(value))
    if found is not None:
        return found
    copied: Any
    if kind is dict:
        copied = {key: item if type(item) in _IMMUTABLE else copy_document(item, memo) for key, item in value.items()}
    elif kind is list:
        copied = [item if type(item) in _IMMUTABLE else copy_document(item, memo) for item in value]
    else:
        copied = copy.deepcopy(value, memo)
    memo[id(value)] = copied
    return copied


# v1 playbooks named themselves at the top level (`name:`, `path:`) before `metadata` existed.
TOP_LEVEL_IDENTITY_KEYS = ("name", "path")


def lifts_top_level_identity(raw: dict[str, Any]) -> bool:
    """True when the document has no `metadata` and names itself with top-level `name`/`path`."""
    return "metadata" not in raw and any(key in raw for key in TOP_LEVEL_IDENTITY_KEYS)


def _lift_top_level_identity(doc: dict[str, Any], notes: list[Note]) -> None:
    if not lifts_top_level_identity(doc):
        return
    first = next(key for key in TOP_LEVEL_IDENTITY_KEYS if key in doc)
    doc["metadata"] = {key: doc.pop(key) for key in TOP_LEVEL_IDENTITY_KEYS if key in doc}
    notes.append(((first,), "top-level `name:`/`path:`: newer spelling is `metadata: {name: ..., path: ...}`"))


def _normalize_workbook_entry(entry: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": entry.get("name")}
    if "assert" in entry:
        out["assert"] = entry["assert"]
    body = {k: v for k, v in entry.items() if k not in ("name", "assert", "desc", "description", "save", "sink")}
    tool = body.pop("tool", None)
    kind = body.pop("type", None)
    if isinstance(tool, dict) and isinstance(tool.get("assert"), dict) and "assert" not in entry:
        # `assert: {expects, returns}` inside the entry's tool (NoETL's own composition fixtures)
        # is the entry's contract
        out["assert"], tool = tool["assert"], {k: v for k, v in tool.items() if k != "assert"}
        notes.append(((*path, "tool", "assert"), "`assert:` inside a workbook entry's tool: newer spelling is "
                      "`assert:` beside the entry's `tool`"))
    if isinstance(tool, dict | list):
        tasks, _ = _as_task_list(tool, path, notes)
        if entry_input := _step_input(entry, path, notes):
            # `input` beside the tool: defaults of each task's own input (which the caller's beat)
            tasks = [{**t, "input": {**entry_input, **(t.get("input") or {})}}
                     if isinstance(t, dict) and isinstance(t.get("input") or {}, dict) else t  # else refused at its line
                     for t in tasks]
    elif (kind := tool if isinstance(tool, str) else kind) is not None:
        notes.append((path, "`tool: <kind>` / `type:` with fields on the entry: newer spelling is `tool: {kind: ..., ...}`"))
        tasks, _ = _as_task_list({"kind": kind, **body}, path, notes)
    else:
        tasks = []
    out["tool"] = _attach_sink({"step": entry.get("name"), **entry}, tasks, path, notes)
    return out


def _normalize_step_with_save(step: dict[str, Any], path: tuple[Any, ...], notes: list[Note],
                              taken: set[Any]) -> list[dict[str, Any]]:
    """A v1 iterator step's own `save:` writes the loop's aggregated result once, after the loop:
    it becomes a step of its own that the iterator step goes on to (the iterator's `next` moves
    there), with the loop's result as `result`, `results`, `count`, `data` and `this.result`.
    `taken` holds the playbook's step names; the new step's name is added to it."""
    if not (_is_iterator(step) and isinstance(step.get("save") or step.get("sink"), dict)):
        return [_normalize_step(step, path, notes)]
    save_name = f"{step.get('step')}_save"
    while save_name in taken:
        save_name += "_"
    taken.add(save_name)
    loop_result = "{{ " + str(step.get("step")) + " }}"
    names = _result_names("output.data.results", result="output.data", results="output.data.results",
                          count="output.data.results | length")
    bind = _keeping_result({"kind": "noop", "name": "loop_result", "result": loop_result, "set": names})
    save_step: dict[str, Any] = {"step": save_name, "tool": [bind], "next": step.get("next"),
                                 **{k: step[k] for k in ("save", "sink") if k in step}}
    if "case" in step:
        # The case rules route the loop step as it ends (on loop.done), through the save step.
        loop_out = _normalize_step({k: v for k, v in step.items() if k not in ("save", "sink")}, path, notes)
        loop_out["next"], save_step["next"] = _routed_through(loop_out["next"], save_name, path[-1])
        return [loop_out, _normalize_step(save_step, path, notes)]
    loop_step = {k: v for k, v in step.items() if k not in ("save", "sink", "next")}
    loop_step["next"] = {"arcs": [{"step": save_name}]}
    return [_normalize_step(loop_step, path, notes), _normalize_step(save_step, path, notes)]


def _routed_through(routing: dict[str, Any], save_name: str, index: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A case-era iterator step's routing, split around its save step: the loop step's arcs keep
    their conditions, `set`s and order, and each goes to the save step marking which of them fired
    (`ctx.noetl_routes.w<index>.a<j>`); the save step then goes where the fired arcs pointed, with
    their inputs, and clears the marks (so a later entry of the loop routes afresh)."""
    marks = f"ctx.noetl_routes.w{index}"
    loop_arcs: list[dict[str, Any]] = []
    save_arcs: list[dict[str, Any]] = []
    for j, arc in enumerate(routing.get("arcs") or []):
        if not isinstance(arc, dict) or not arc.get("step"):
            loop_arcs.append(arc)  # an arc that only sets variables
            continue
        mark = f"{marks}.a{j}"
        loop_arcs.append({**{k: v for k, v in arc.items() if k != "input"}, "step": save_name,
                          "set": {**(arc.get("set") or {}), mark: True}})
        save_arcs.append({"step": arc["step"], "when": "{{ " + mark + " | default(false) }}",
                          **({"input": arc["input"]} if arc.get("input") else {})})
    save_arcs.append({"set": {marks: {}}})
    return {**routing, "arcs": loop_arcs}, {"spec": {"mode": "inclusive"}, "arcs": save_arcs}


def _is_iterator(step: dict[str, Any]) -> bool:
    tool = step.get("tool")
    return step.get("type") == "iterator" or tool == "iterator" or isinstance(tool, dict) and (
        tool.get("kind") == "iterator" or tool.get("type") == "iterator")


# The step result stays the task's own, not the sink's written-rows count after it (a v1 `save:`
# does not change what the step returned).
_KEEP_RESULT_RULE: dict[str, Any] = {"when": "{{ output.status != 'error' }}",
                                     "then": {"do": "continue", "result": "{{ output.data }}"}}


def _keeping_result(task: dict[str, Any]) -> dict[str, Any]:
    spec = dict(task.get("spec") or {}) if isinstance(task.get("spec") or {}, dict) else {}
    policy = dict(spec.get("policy") or {}) if isinstance(spec.get("policy") or {}, dict) else {}
    rules: list[Any] = policy["rules"] if isinstance(policy.get("rules"), list) else []
    return {**task, "spec": {**spec, "policy": {**policy, "rules": [*rules, _KEEP_RESULT_RULE]}}}


def _result_names(value: str, **more: str) -> dict[str, Any]:
    """Task-level `set` that gives a v1 `save:` the names it reads: `data`, `this.data` and
    `this.result` (the expression `value`), `result` (`value` unless given) and any name in `more`."""
    names = {"result": value, **more}
    out: dict[str, Any] = {k: "{{ " + e + " }}" for k, e in names.items()}
    out["data"] = "{{ " + value + " }}"
    out["this"] = {"data": out["data"], "result": out["data"]}
    return out


def _save_step_as_save_block(step: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> dict[str, Any]:
    """A v1 `type: save` step (`data:` and, optionally, `storage`, `table`, `auth`, `mode`, `key`)
    is a step without a tool whose `save:` block writes its data: to the event log by default (the
    step's result is the data), else as a sink after a `noop` giving the data as the result."""
    notes.append(((*path, "type"), "`type: save` step: newer spelling is a `noop` task (or a `sink` task)"))
    data = step.get("data", step.get("with", step.get("args", {})))
    block = {k: v for k, v in step.items() if k not in STEP_KEYS}
    block = {**block, "storage": block.get("storage", "event_log"), "data": data}
    rest = {k: v for k, v in step.items() if k in STEP_KEYS and k not in ("type", "data", "with", "args")}
    if _saves_to_event_log(block):
        return {**rest, "save": block}
    return {**rest, "tool": {"kind": "noop", "result": data}, "save": block}


def _normalize_step(step: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> dict[str, Any]:
    if step.get("type") == "save" and "tool" not in step and "save" not in step:
        step = _save_step_as_save_block(step, path, notes)
    out: dict[str, Any] = {"step": step.get("step")}
    for key in ("desc", "spec", "pipeline", "output"):
        if key in step:
            out[key] = step[key]
    if "description" in step and "desc" not in step:
        out["desc"] = step["description"]
    out["input"] = _step_input(step, path, notes)
    tool = _step_tool(step, path, notes)
    loop = step.get("loop")
    wrote_retry = "retry" in step  # loop.pagination becomes a retry: its own note says so
    if isinstance(loop, dict) and isinstance(loop.get("pagination"), dict):
        step = _pagination_as_retry(step, loop, path, notes)
        loop = {k: v for k, v in loop.items() if k != "pagination"} or None
    sink_holder, sink_path, retry_holder = step, path, step
    if isinstance(tool, dict) and tool.get("kind") == "iterator":
        loop, tool = _iterator_to_loop(tool, path, notes)
        tool, sink_holder = _task_save(tool, step)
        if sink_holder is not step:
            sink_path = (*path, "task")
        if isinstance(tool, dict) and "retry" in tool and "retry" not in step:
            # an iterator task's own `retry:` retries each iteration's call, as a step's does
            retry_holder = {"step": step.get("step"), "retry": tool["retry"]}
            tool = {k: v for k, v in tool.items() if k != "retry"}
    if loop is not None:
        out["loop"] = _normalize_loop(loop, path, notes)
    tasks, pipeline = _as_task_list(tool, path, notes)
    tasks = _attach_retry(retry_holder, tasks, path, notes if wrote_retry or retry_holder is not step else [])
    tasks = _attach_case_policy(step, tasks, path, notes)
    tasks = _attach_sink(sink_holder, tasks, sink_path, notes)
    out["tool"] = tasks
    out["pipeline"] = pipeline or len(tasks) > 1
    out["set"] = _step_set(step, path, notes)
    out["next"] = _normalize_next(step, path, notes)
    return out


def _pagination_as_retry(step: dict[str, Any], loop: dict[str, Any], path: tuple[Any, ...],
                         notes: list[Note]) -> dict[str, Any]:
    """`loop: {pagination: {continue_while, next_page, merge_strategy, merge_path, max_iterations,
    retry}}` (an older spelling of the retry-era pagination): the same as `retry:` with an error
    rule and a success rule (``noetl.dsl.legacy_common.retry_rules``)."""
    notes.append(((*path, "loop", "pagination"), "`loop.pagination`: newer spelling is a `jump` task policy "
                  "(or, older, `retry: [{when, then: {next_call, collect}}]`)"))
    pagination = loop["pagination"]
    entries: list[dict[str, Any]] = []
    if isinstance(pagination.get("retry"), dict):
        entries.append({"when": pagination["retry"].get("when"), "then": pagination["retry"]})
    entries.append({"when": pagination.get("continue_while"), "then": {
        "max_attempts": pagination.get("max_iterations", 100),
        "next_call": pagination.get("next_page") or {},
        "collect": {"strategy": pagination.get("merge_strategy", "append"), "path": pagination.get("merge_path")},
    }})
    return {**step, "retry": entries}


def _step_input(step: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in ("with", "data", "args"):
        value = step.get(key)
        if isinstance(value, dict):
            merged.update(value)
            notes.append(((*path, key), f"`{key}:` on a step: newer spelling is `input:`"))
    if isinstance(step.get("input"), dict):
        merged.update(step["input"])
    return merged


def _step_tool(step: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> Any:
    tool = step.get("tool")
    if isinstance(tool, dict | list):
        return tool
    call = step.get("call")
    if isinstance(call, dict):
        notes.append(((*path, "call"), "`call:` is an older spelling of `tool: {kind: ...}`"))
        task = dict(call)
        task["kind"] = task.pop("type", task.pop("kind", "playbook"))
        return task
    kind = tool if isinstance(tool, str) else step.get("type")
    if kind is None:
        return None
    if kind in ROUTING_KINDS:
        notes.append(((*path, "type" if "type" in step else "tool"),
                      f"`{kind}`: a routing-only step; newer spelling is no tool (or `tool: {{kind: noop}}`)"))
        return None
    notes.append(((*path, "type" if "type" in step else "tool"),
                  "tool fields on the step: newer spelling is `tool: {kind: ..., <fields>}`"))
    task = {k: v for k, v in step.items() if k not in STEP_KEYS or k in ("data",) and kind == "http"}
    task["kind"] = kind
    if kind in ("python",) and "args" in step and "input" not in task:
        pass  # step-level args already became the step input
    return task


def _iterator_to_loop(tool: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> tuple[dict[str, Any], Any]:
    notes.append((path, "`iterator` tool: newer spelling is `loop: {in, iterator, spec}` on the step"))
    mode = tool.get("mode", "sequential")
    loop = {
        "in": tool.get("collection", tool.get("in", [])),
        "iterator": tool.get("element", tool.get("iterator", "item")),
        "spec": {"mode": "parallel" if mode in ("async", "parallel") else "sequential"},
    }
    if tool.get("concurrency"):
        loop["spec"]["max_in_flight"] = tool["concurrency"]
    loop.update({key: tool[key] for key in ("where", "order_by", "limit", "chunk") if tool.get(key) is not None})
    task = tool.get("task") or tool.get("tool") or {"kind": "noop"}
    if isinstance(task, dict) and "kind" not in task:
        # `task: {type: http, ...}`, or `task: {tool: http, ...}` as the v1 step itself spells it
        spelling = "type" if "type" in task else "tool" if isinstance(task.get("tool"), str) else None
        if spelling is not None:
            task = {**{k: v for k, v in task.items() if k != spelling}, "kind": task[spelling]}
    return loop, task


def _task_save(task: Any, step: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The `save:` of an iterator's task runs after the task in every iteration, with the task's
    result as `result`, `data` and `this.data` (as in v1): the task and the step its sink hangs on."""
    key = next((k for k in ("save", "sink") if isinstance(task, dict) and isinstance(task.get(k), dict)), None)
    if key is None or step.get("save") or step.get("sink"):
        return task, step
    assert isinstance(task, dict)
    own_set: dict[str, Any] = task["set"] if isinstance(task.get("set"), dict) else {}
    bound = _keeping_result({**{k: v for k, v in task.items() if k != key},
                             "set": {**_result_names("output.data"), **own_set}})
    return bound, {**step, key: task[key]}


def _normalize_loop(loop: Any, path: tuple[Any, ...], notes: list[Note]) -> Any:
    if not isinstance(loop, dict):
        return loop
    out = dict(loop)
    spec = dict(out.get("spec") or {})
    for key in ("mode", "max_in_flight", "concurrency"):
        if key in out:
            value = out.pop(key)
            target = "max_in_flight" if key == "concurrency" else key
            spec.setdefault(target, value)
            notes.append(((*path, "loop", key), f"`loop.{key}`: newer spelling is `loop.spec.{target}`"))
    if spec.get("mode") == "async":
        spec["mode"] = "parallel"
    if "collection" in out and "in" not in out:
        out["in"] = out.pop("collection")
    if "element" in out and "iterator" not in out:
        out["iterator"] = out.pop("element")
    out["spec"] = spec
    return out


def _as_task_list(tool: Any, path: tuple[Any, ...], notes: list[Note]) -> tuple[list[dict[str, Any]], bool]:
    if tool is None:
        return [], False
    if isinstance(tool, list):
        return [_normalize_tool(_named_task(t, (*path, "tool", i), notes), (*path, "tool", i), notes)
                for i, t in enumerate(tool)], True
    return [_normalize_tool(tool, (*path, "tool"), notes)], False


def _named_task(task: Any, path: tuple[Any, ...], notes: list[Note]) -> Any:
    """`- fetch: {kind: http, ...}`, a pipeline task named by its one key, is `- name: fetch` with
    `kind:` beside it."""
    if not isinstance(task, dict) or len(task) != 1 or "kind" in task or "type" in task:
        return task
    ((name, body),) = task.items()
    if not isinstance(body, dict) or not ("kind" in body or "type" in body):
        return task
    notes.append((path, f"task `{name}:` holding its tool: newer spelling is `- name: {name}` with `kind:` beside it"))
    return {"name": name, **body}


def _normalize_tool(tool: Any, path: tuple[Any, ...], notes: list[Note]) -> Any:
    if isinstance(tool, list):
        return [_normalize_tool(t, (*path, i), notes) for i, t in enumerate(tool)]
    if not isinstance(tool, dict):
        return tool
    out = dict(tool)
    if "kind" not in out and "type" in out:
        out["kind"] = out.pop("type")
    if out.get("kind") == "playbooks":
        out["kind"] = "playbook"
    if out.get("kind") == "workbook" and "name" not in out and isinstance(out.get("task"), str):
        out["name"] = out.pop("task")  # `task:` names the workbook entry in some real playbooks
        notes.append(((*path, "task"), "workbook `task:`: newer spelling is `name:` (the workbook entry's name)"))
    for key in ("with", "args") + (("data",) if out.get("kind") not in ("http",) else ()):
        if isinstance(out.get(key), dict):
            value = out.pop(key)
            out["input"] = {**value, **(out.get("input") or {})}
    if out.get("kind") == "playbook" and isinstance(out.get("payload"), dict):
        out["input"] = {**out.pop("payload"), **(out.get("input") or {})}
    if out.get("kind") == "playbook" and "result_step" in out and "return_step" not in out:
        # newer NoETL playbooks' name of return_step; `return_result: true` (wait for the child's
        # result, not an async-start reply) is what a playbook step always does
        out["return_step"] = out.pop("result_step")
        notes.append(((*path, "result_step"), "`result_step:`: another spelling of `return_step:`"))
    if out.get("kind") == "playbook" and out.get("return_result") in (True, "true"):
        out.pop("return_result")
    if isinstance(out.get("spec"), dict):
        out["spec"] = _normalize_tool_spec(out["spec"])
    if out.get("kind") in ("postgres", "duckdb") and "commands" in out and "command" not in out:
        commands = out.pop("commands")  # v1's name of the SQL: a text, or a list of statements
        out["command"] = ";\n".join(str(c).rstrip().rstrip(";") for c in commands) if isinstance(commands, list) else commands
        notes.append(((*path, "commands"), "`commands:`: newer spelling is `command:`"))
    if out.get("kind") in _CREDENTIAL_ALIAS_KINDS and isinstance(out.get("credential"), str) and "auth" not in out:
        out["auth"] = out.pop("credential")  # `credential:` is the alias of `auth:` (a credential name)
    auth = out.get("auth")
    if isinstance(auth, dict) and "credential" in auth:
        out["auth"] = auth["credential"]
        notes.append(((*path, "auth"), "`auth: {type, credential}`: newer spelling is `auth: <credential name>`"))
    elif isinstance(auth, dict) and not auth:
        out.pop("auth")
    credentials = out.get("credentials")
    if (out.get("kind") in ("postgres", "http") and "auth" not in out and isinstance(credentials, dict)
            and len(credentials) == 1):
        # v1 `credentials: {alias: {key: name}}` on a tool that takes one credential is `auth: name`
        # (duckdb keeps `credentials`: each alias attaches a database).
        (binding,) = credentials.values()
        if isinstance(binding, dict) and isinstance(binding.get("key"), str):
            out["auth"] = binding["key"]
            out.pop("credentials")
            notes.append(((*path, "credentials"),
                          "`credentials: {alias: {key: name}}`: newer spelling is `auth: <credential name>`"))
    return out


def _normalize_tool_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Policy rules: `else: {then: {...}}` and the shorthand `else: {do: ...}` become a rule with no `when`."""
    policy = spec.get("policy")
    if not isinstance(policy, dict) or not isinstance(policy.get("rules"), list):
        return spec
    rules = []
    for rule in policy["rules"]:
        if isinstance(rule, dict) and "else" in rule and "when" not in rule:
            body = rule["else"] or {}
            rule = {"then": body.get("then", body) if isinstance(body, dict) else {}}
        rules.append(_outcome_as_output(rule))
    return {**spec, "policy": {**policy, "rules": rules}}


# `outcome` as a name of its own: not a field (`output.data.outcome`, `ctx.outcome`) nor a quoted string.
_OUTCOME_RESULT = re.compile(r"(?<![\w.'\"])outcome\.result\b")
_OUTCOME = re.compile(r"(?<![\w.'\"])outcome\b(?!['\"])")


def _outcome_as_output(rule: Any) -> Any:
    """A policy rule in an older spelling: `outcome` (`outcome.result` its data) for the task's
    envelope `output`, and `set_iter:` / `set_ctx:` for `set: {iter.*}` / `set: {ctx.*}`."""
    if not isinstance(rule, dict):
        return rule
    out = dict(rule)
    if isinstance(out.get("when"), str):
        out["when"] = _output_spelling(out["when"])
    then = out.get("then")
    if isinstance(then, dict):
        then = dict(then)
        merged = dict(then.get("set") or {}) if isinstance(then.get("set"), dict) else {}
        for key, scope in (("set_iter", "iter"), ("set_ctx", "ctx")):
            if isinstance(then.get(key), dict):
                merged.update({f"{scope}.{name}": value for name, value in then.pop(key).items()})
        if merged:
            then["set"] = merged
        # every template of the actions (`do` and a jump's `to` are names, not templates)
        out["then"] = {k: v if k in ("do", "to") else _output_spelling(v) for k, v in then.items()}
    return out


def _output_spelling(value: Any) -> Any:
    """``value`` with `outcome` spelt `output` in each of its strings (nested mappings and lists too)."""
    if isinstance(value, dict):
        return {k: _output_spelling(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_output_spelling(v) for v in value]
    if not isinstance(value, str) or "outcome" not in value:
        return value
    return _OUTCOME.sub("output", _OUTCOME_RESULT.sub("output.data", value))


def _retry_shorthand(retry: Any) -> Any:
    """NoETL's short retry forms: `retry: true` is the block with its defaults, `retry: 5` the
    block with `max_attempts: 5`; `retry: false` (or 0) retries nothing."""
    if retry is True or retry == "true":
        return {}
    if isinstance(retry, int) and not isinstance(retry, bool):
        return {"max_attempts": retry} if retry > 0 else None
    return retry


def _attach_retry(step: dict[str, Any], tasks: list[dict[str, Any]], path: tuple[Any, ...], notes: list[Note]) -> list[dict[str, Any]]:
    retry = _retry_shorthand(step.get("retry"))
    if not isinstance(retry, dict | list) or not tasks:
        return tasks
    notes.append(((*path, "retry"), "step `retry:`: newer spelling is a retry rule in `tool.spec.policy`"))
    first = dict(tasks[0])
    # a single unnamed task runs under the step's name: a next call jumps back to it so
    task = first.get("name") or (step.get("step") if len(tasks) == 1 else "task_0")
    spec = dict(first.get("spec") or {})
    policy = dict(spec.get("policy") or {})
    policy["rules"] = [*retry_rules(retry, str(task)), *(policy.get("rules") or [])]
    spec["policy"] = policy
    first["spec"] = spec
    return [first, *tasks[1:]]


def _attach_sink(step: dict[str, Any], tasks: list[dict[str, Any]], path: tuple[Any, ...], notes: list[Note]) -> list[dict[str, Any]]:
    block = step.get("save") or step.get("sink")
    key = "save" if "save" in step else "sink"
    if block is None and (block := case_sink(step)) is not None:
        key = "case"
    if isinstance(block, dict) and _saves_to_event_log(block):
        notes.append(((*path, key), "`save:` to the event log: newer spelling is a `noop` task giving the data as its result"))
        return _event_log_save(block, tasks)
    if not isinstance(block, dict) or not tasks:
        return tasks
    notes.append(((*path, key), f"`{'sink' if key == 'case' else key}:` "
                  f"{'in a case rule' if key == 'case' else 'block'}: newer spelling is a `sink` task after the tool"))
    sink = dict(block)
    sink["tool"] = sink.pop("storage", sink.get("tool", "postgres"))
    if isinstance(sink["tool"], dict):
        sink = {**sink["tool"], **{k: v for k, v in sink.items() if k != "tool"}}
        sink["tool"] = sink.pop("kind", sink.pop("type", "postgres"))
    for alias in ("args", "data"):
        if alias in sink and "data" not in sink or alias == "args" and alias in sink:
            sink["data"] = sink.pop(alias)
    if _is_sql_statement_sink(sink):
        return _sql_statement_sink(sink, tasks)
    sink["kind"] = "sink"
    sink.setdefault("name", "sink")
    main = dict(tasks[0])
    main.setdefault("name", step.get("step"))
    return [main, *tasks[1:], sink]


_SQL_SINK_TOOLS = ("postgres", "duckdb")
_SQL_SINK_FIELDS = ("statement", "command", "query", "sql", "commands")


def _is_sql_statement_sink(sink: dict[str, Any]) -> bool:
    """A sink that is a SQL tool with its own statement (`sink: {tool: {kind: postgres, statement:
    INSERT ...}}`) and no `table`: the statement does the writing."""
    return sink.get("tool") in _SQL_SINK_TOOLS and "table" not in sink and any(k in sink for k in _SQL_SINK_FIELDS)


def _sql_statement_sink(sink: dict[str, Any], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The statement runs as a SQL task after the tool, reading the step's result as `result` (and
    `data`, `this.data`), as a v1 save does; the step's result stays the tool's."""
    statement = {k: v for k, v in sink.items() if k not in ("tool", "statement", "data")}
    statement["kind"] = sink["tool"]
    if "statement" in sink and not any(k in sink for k in _SQL_SINK_FIELDS[1:]):
        statement["command"] = sink["statement"]
    statement.setdefault("name", "sink")
    return _then_writing(tasks, statement)


def _saves_to_event_log(block: dict[str, Any]) -> bool:
    storage = block.get("storage", block.get("tool", block.get("type")))
    if isinstance(storage, dict):
        storage = storage.get("kind", storage.get("type"))
    return storage in EVENT_LOG_STORAGE


def _event_log_save(block: dict[str, Any], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`save: {type: event_log, args: {...}}` records its rendered data in the event log, as the
    result of a `save` task: the step's own result on a step without a tool, else kept beside the
    tool's (`{{ step.results.save }}`), which stays the step's result."""
    data = block.get("args", block.get("data", {}))
    record = {"kind": "noop", "name": "save", "result": data}
    if not tasks:
        return [record]
    return _then_writing(tasks, record)


def _then_writing(tasks: list[dict[str, Any]], writer: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks, then `writer`, which reads the step's result as `result` (and `data`,
    `this.data`), as a v1 save does; the step's result stays the last task's."""
    *head, last = tasks
    own_set: dict[str, Any] = last["set"] if isinstance(last.get("set"), dict) else {}
    bound = _keeping_result({**last, "name": last.get("name") or "main",
                             "set": {**_result_names("output.data"), **own_set}})
    return [*head, bound, writer]


def _step_set(step: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> dict[str, Any]:
    out = dict(step.get("set") or {}) if isinstance(step.get("set"), dict) else {}
    for key in ("vars", "set_ctx"):
        block = step.get(key)
        if isinstance(block, dict):
            notes.append(((*path, key), f"`{key}:` is an older spelling of `set: {{ctx.<name>: ...}}`"))
            out.update({f"ctx.{k}": v for k, v in block.items()})
    return out


# A condition that holds only on one iteration's call: never while a loop step is routed.
_PER_CALL_TEST = re.compile(r"""event\.name\s*==\s*(['"])(call\.done|call\.error)\1""")
_OTHER_EVENTS = re.compile(r"\bor\b|loop\.done|step\.exit|\bnot\b")


def _note_per_call_routing(step: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> None:
    """A loop step is routed once, as its loop ends (SPEC section 5): a routing condition that asks
    for one iteration's `call.done`/`call.error` never holds then, and the arc it guards never fires."""
    if step.get("loop") is None and not _is_iterator(step):
        return
    nxt = step.get("next")
    arcs = nxt.get("arcs") if isinstance(nxt, dict) else None
    guarded = [((*path, "next", "arcs", j, "when"), arc.get("when")) for j, arc in
               enumerate(arcs if isinstance(arcs, list) else []) if isinstance(arc, dict) and arc.get("step")]
    rules = step.get("case")
    guarded += [((*path, "case", j, "when"), rule.get("when")) for j, rule in
                enumerate(rules if isinstance(rules, list) else [])
                if isinstance(rule, dict) and not _is_pipeline_rule(rule)]
    for where, when in guarded:
        if not isinstance(when, str):
            continue
        test = _PER_CALL_TEST.search(when)
        if test is not None and not _OTHER_EVENTS.search(when):
            notes.append((where, f"{UNSUPPORTED} step {step.get('step')!r}: this condition asks for "
                                 f"{test.group(2)}, but a loop step is "
                                 "routed once, when its loop is done (`event.name == 'loop.done'`): it never "
                                 "holds; act on each element with a task policy, or route on loop.done"))


def _normalize_next(step: dict[str, Any], path: tuple[Any, ...], notes: list[Note]) -> dict[str, Any]:
    _note_per_call_routing(step, path, notes)
    raw = step.get("next")
    case = step.get("case")
    canonical = isinstance(raw, dict) and ("arcs" in raw or "spec" in raw)
    if canonical and not case:
        assert isinstance(raw, dict)
        return {"spec": raw.get("spec") or {}, "arcs": [_arc_input_aliases(a) for a in raw.get("arcs") or []]}
    if isinstance(raw, dict) and not canonical:
        raw = [raw]
    plain = _legacy_next_arcs(raw, (*path, "next"), notes) if raw is not None else []
    if canonical:
        assert isinstance(raw, dict)
        plain = [_arc_input_aliases(a) for a in raw.get("arcs") or []]
    if not case:
        return {"spec": {"mode": "inclusive"}, "arcs": plain}
    notes.append(((*path, "case"), "`case:` rules: newer spelling is `next.arcs` with `when` and `set`"))
    arcs = _case_arcs(case, (*path, "case"), notes)
    for arc in plain:
        arcs.append({**arc, "fallback": True})
    return {"spec": {"mode": "exclusive"}, "arcs": arcs}


def _arc_input_aliases(arc: Any) -> Any:
    """`args:` / `with:` / `data:` on a canonical arc are its `input` (the target's inputs)."""
    if not isinstance(arc, dict) or not any(isinstance(arc.get(k), dict) for k in ("with", "args", "data")):
        return arc
    if not isinstance(arc.get("input") or {}, dict):
        return arc  # left for validation to refuse at the arc's line
    out = {k: v for k, v in arc.items() if k not in ("with", "args", "data")}
    merged: dict[str, Any] = {}
    for key in ("with", "data", "args"):
        if isinstance(arc.get(key), dict):
            merged.update(arc[key])
    out["input"] = {**merged, **(arc.get("input") or {})}
    return out


def _legacy_next_arcs(raw: Any, path: tuple[Any, ...], notes: list[Note]) -> list[dict[str, Any]]:
    items = raw if isinstance(raw, list) else [raw]
    arcs: list[dict[str, Any]] = []
    notes.append((path, "list-style `next:`: newer spelling is `next: {spec, arcs}`"))
    conditions: list[Any] = []  # of the items before, for an `- else:` item of its own
    for item in items:
        if isinstance(item, dict) and ("then" in item or "else" in item) and "step" not in item:
            if "when" not in item and "else" in item:
                # `- when: c1 ... - else: [...]` (an item of its own): fires when no item before matched
                item = {"when": _none_of(conditions), "then": item["else"],
                        **({"data": item["data"]} if "data" in item else {})}
            elif "when" in item:
                conditions.append(item["when"])
            arcs.extend(_when_then_else(item))
            continue
        if isinstance(item, dict) and "when" in item:
            conditions.append(item["when"])
        arc = _target(item)
        if arc is not None:
            arcs.append(arc)
    return arcs


def _none_of(conditions: list[Any]) -> Any:
    """A condition true when none of ``conditions`` is (YAML booleans or templates)."""
    if any(c is True for c in conditions):
        return False
    parts = [_strip_braces(c) for c in conditions if c is not False]
    return True if not parts else "{{ not (" + " or ".join(f"({p})" for p in parts) + ") }}"


def _when_then_else(item: dict[str, Any]) -> list[dict[str, Any]]:
    condition = item.get("when")
    shared_input = item.get("data") if isinstance(item.get("data"), dict) else None
    arcs: list[dict[str, Any]] = []
    for branch, negate in (("then", False), ("else", True)):
        targets = item.get(branch)
        if targets is None:
            continue
        for target in targets if isinstance(targets, list) else [targets]:
            arc = _target(target)
            if arc is None:
                continue
            if shared_input:
                arc["input"] = {**shared_input, **(arc.get("input") or {})}
            if condition is not None:
                arc["when"] = _negate(condition) if negate else condition
            arcs.append(arc)
    return arcs


def _negate(condition: Any) -> Any:
    if isinstance(condition, bool):
        return not condition
    return "{{ not (" + _strip_braces(condition) + ") }}"
