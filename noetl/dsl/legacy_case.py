"""Normalise case-era `case:` rules into the canonical form.

Part of the normaliser of older DSL forms (:mod:`noetl.dsl.legacy`, the entry point). A step's
`case:` rules split in two: rules that route to other steps become `next.arcs` (exclusive, the
first matching rule wins), and rules that act inside the step's run (on step.enter, or with
collect/call/result/retry/fail) become policy rules of the step's tasks.
"""

from __future__ import annotations

import re
from typing import Any

from noetl.dsl.legacy_common import (
    UNSUPPORTED,
    Note,
    _ctx_ref,
    _target,
    collect_template,
    recall_fields,
    retry_rule,
)

CASE_EVENTS = ("call.done", "call.error", "loop.done")
PIPELINE_ACTIONS = frozenset({"collect", "call", "result", "retry", "fail"})
RULE_ACTIONS = PIPELINE_ACTIONS | {"next", "set", "sink"}
CASE_RERUN_LIMIT = 100  # same-step re-runs (`call`) allowed within one step entry
_STEP_EXIT_TEST = re.compile(r"""event\.name\s*==\s*(['"])step\.exit\1""")


def _case_arcs(rules: Any, path: tuple[Any, ...], notes: list[Note]) -> list[dict[str, Any]]:
    arcs: list[dict[str, Any]] = []
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        then = _then(rule)
        when = rule.get("when")
        if "sink" in then and not _holds_after_success(when):
            notes.append(((*path, index, "then", "sink"), f"{UNSUPPORTED} a `sink` in a case rule that does "
                          "not test step.exit or call.done is ignored (a sink task runs after a successful call)"))
        if _is_pipeline_rule(rule):
            continue  # runs inside the step's pipeline (see _attach_case_policy)
        when = _on_step_exit(when)
        rule_set = _case_set(then.get("set"))
        targets = then.get("next")
        target_arcs = [a for a in (_target(t) for t in _as_list(targets)) if a] if targets else []
        if not target_arcs:
            arcs.append({"step": None, "when": when, "set": rule_set, "group": index})
            continue
        for position, arc in enumerate(target_arcs):
            arc["when"] = when
            arc["group"] = index
            arc["set"] = {**(rule_set if position == 0 else {}), **(arc.get("set") or {})}
            arcs.append(arc)
    return arcs

def _on_step_exit(when: Any, test: str = "(output.status == 'ok')") -> Any:
    """A routing rule's test of `event.name == 'step.exit'` holds when the step has ended successfully:
    arcs are evaluated as the step ends, with `event.name` the event that ended it (call.done,
    loop.done), and a failed step is not routed by such a rule (its failure is not masked). In a
    rule that acts inside the step's run (retry, collect, ...) it holds once the call has ended
    (``test`` true: such rules see call.done or call.error)."""
    if not isinstance(when, str) or "step.exit" not in when:
        return when
    return _STEP_EXIT_TEST.sub(test, when)


def _case_rules(step: dict[str, Any]) -> list[dict[str, Any]]:
    rules = step.get("case")
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def _then(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's actions: `then: {next, set, ...}`, a list of targets (`then: [{step: x}]`), or a
    list of actions (`then: [{sink: ...}, {next: [...]}]`)."""
    then = rule.get("then") or {}
    if not isinstance(then, list):
        return then if isinstance(then, dict) else {}
    if then and all(isinstance(item, dict) and "step" not in item and set(item) & RULE_ACTIONS for item in then):
        merged: dict[str, Any] = {}
        for item in then:
            merged.update(item)
        return merged
    return {"next": then}


def case_sink(step: dict[str, Any]) -> Any:
    """The `sink` of the step's first case rule that has one: it writes the step's result after each
    successful call, as a `sink:` block on the step does (the rule's own condition, typically
    `event.name == 'step.exit' and response is defined`, says just that)."""
    return next((_then(rule)["sink"] for rule in _case_rules(step)
                 if isinstance(_then(rule).get("sink"), dict) and _holds_after_success(rule.get("when"))), None)


def _holds_after_success(when: Any) -> bool:
    """Whether a rule may hold once a call has succeeded, where a sink task after the tool runs (a
    rule on call.error only would otherwise write after every successful call)."""
    if when is None or when is True:
        return True
    return isinstance(when, str) and ("step.exit" in when or "call.done" in when) and "call.error" not in when


def _is_enter_rule(rule: dict[str, Any]) -> bool:
    return "step.enter" in str(rule.get("when"))


def _routes_after_collecting(rule: dict[str, Any]) -> bool:
    """A routing rule that also collects or sets the step's result (`collect`, `result` beside
    `next`): those act inside the step's run, as in a rule without `next`, and its arc routes after."""
    then = _then(rule)
    return bool(then.get("next")) and not _is_enter_rule(rule) and bool({"collect", "result"} & set(then))


def _is_pipeline_rule(rule: dict[str, Any]) -> bool:
    """Rules handled inside the step's run: on step.enter, or with collect/call/result/retry/fail."""
    then = _then(rule)
    return _is_enter_rule(rule) or (bool(PIPELINE_ACTIONS & set(then)) and not then.get("next"))


def _attach_case_policy(step: dict[str, Any], tasks: list[dict[str, Any]], path: tuple[Any, ...],
                        notes: list[Note]) -> list[dict[str, Any]]:
    """Case rules that act inside the step become task policies (pagination, collect, result, retry).

    `step.enter` rules run first, as a routing-only task; call.done/call.error rules become the main
    task's policy rules, in order, so the first matching rule still wins.
    """
    rules = [r for r in _case_rules(step) if _is_pipeline_rule(r) or _routes_after_collecting(r)]
    if not rules or not tasks:
        return tasks
    enter_sets: dict[str, Any] = {}
    policy_rules: list[dict[str, Any]] = []
    main = dict(tasks[0])
    main.setdefault("name", step.get("step"))
    for rule in rules:
        then = _then(rule)
        if _is_enter_rule(rule):
            enter_sets.update(_case_set(then.get("set")))
            continue
        if _routes_after_collecting(rule):  # its `next` (and `set`) are the rule's arc: _case_arcs
            then = {key: then[key] for key in ("collect", "result") if key in then}
        policy_rules.append({"when": _on_step_exit(rule.get("when"), "true"), "then": _case_action(then, main["name"])})
    spec = dict(main.get("spec") or {})
    policy = dict(spec.get("policy") or {})
    policy["rules"] = [*policy_rules, *(policy.get("rules") or []),
                       {"when": "{{ output.status == 'error' }}", "then": {"do": "fail"}},
                       {"then": {"do": "continue"}}]
    spec["policy"] = policy
    main["spec"] = spec
    out = [main, *tasks[1:]]
    if enter_sets:
        out.insert(0, {"kind": "noop", "name": "_on_enter",
                       "spec": {"policy": {"rules": [{"then": {"do": "continue", "set": enter_sets}}]}}})
    notes.append((path, "case-era pipeline actions: newer spelling is a task policy (`do: jump`, `set`)"))
    return out


def _case_action(then: dict[str, Any], task_name: str) -> dict[str, Any]:
    action: dict[str, Any] = {"do": "continue", "set": _case_set(then.get("set"))}
    collect = then.get("collect")
    if isinstance(collect, dict) and collect.get("into"):
        action["set"][f"ctx.{collect['into']}"] = collect_template(collect)
    if isinstance(then.get("result"), dict) and then["result"].get("from"):
        action["result"] = "{{ " + _ctx_ref(str(then["result"]["from"])) + " }}"
    if isinstance(then.get("call"), dict):
        action.update({"do": "jump", "to": task_name, "call": then["call"], "attempts": CASE_RERUN_LIMIT})
    elif isinstance(then.get("retry"), dict) and recall_fields(then["retry"]):
        # `retry: {params: {page: ...}}` on call.done re-runs the call with those request fields
        # changed, as `call:` does (pagination); `max_attempts` bounds the re-runs
        retry = then["retry"]
        action.update({"do": "jump", "to": task_name, "call": recall_fields(retry),
                       "attempts": int(retry.get("max_attempts", CASE_RERUN_LIMIT))})
    elif isinstance(then.get("retry"), dict):
        rule = retry_rule(then["retry"])
        action.update({k: v for k, v in rule["then"].items() if k != "set"})
    elif "fail" in then and then["fail"] not in (False, None):
        action["do"] = "fail"
    return action


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _case_set(value: Any) -> dict[str, Any]:
    """`set: {ctx: {a: 1}}`, `set: {a: 1}` and `set: [{name: a, value: 1}]` all write ctx variables."""
    if isinstance(value, list):
        return {f"ctx.{item['name']}": item.get("value") for item in value
                if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]}
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("ctx", "vars") and isinstance(item, dict):
            out.update({f"ctx.{k}": v for k, v in item.items()})
        else:
            out[key] = item
    return out
