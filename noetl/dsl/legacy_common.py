"""Pieces shared by the normaliser of older DSL forms (:mod:`noetl.dsl.legacy`) and its case-era
part (:mod:`noetl.dsl.legacy_case`).

They live apart so that the two modules can both use them without importing each other.
"""

from __future__ import annotations

from typing import Any

Note = tuple[tuple[Any, ...], str]

UNSUPPORTED = "unsupported:"  # notes starting with this are shown as warnings


def retry_rule(retry: dict[str, Any]) -> dict[str, Any]:
    """A v1/v2 `retry:` block as one policy rule."""
    attempts = int(retry.get("max_attempts", retry.get("attempts", 3)))
    delay = float(retry.get("initial_delay", retry.get("delay", 0)))
    multiplier = float(retry.get("backoff_multiplier", 2 if retry.get("backoff") == "exponential" else 1))
    backoff = retry.get("backoff") if retry.get("backoff") in ("none", "linear", "exponential") else (
        "exponential" if multiplier > 1 else "none")
    condition = "output.status == 'error'"
    retry_when = retry.get("retry_when", retry.get("when"))  # `when:` in NoETL's simple retry form
    if retry_when:
        condition += f" and ({_strip_braces(retry_when)})"
    if retry.get("stop_when"):
        condition += f" and not ({_strip_braces(retry['stop_when'])})"
    action: dict[str, Any] = {"do": "retry", "attempts": attempts, "delay": delay, "backoff": backoff}
    if retry.get("max_delay") is not None:
        action["max_delay"] = float(retry["max_delay"])
    return {"when": "{{ " + condition + " }}", "then": action}


# The request fields a case-era `retry:` may change for a re-run of the call (pagination).
RECALL_FIELDS = ("params", "url", "endpoint", "json", "body", "data", "payload", "headers", "args", "input", "with")


def recall_fields(retry: dict[str, Any]) -> dict[str, Any]:
    """The request fields of a case-era `retry: {params: {...}}`: a re-run with them changed."""
    return {key: retry[key] for key in RECALL_FIELDS if isinstance(retry.get(key), dict | str)}


def retry_rules(retry: Any, task: str) -> list[dict[str, Any]]:
    """A step's `retry:` as policy rules of its task, in every spelling NoETL had: one block
    (`{max_attempts, ..., retry_when | when, stop_when}`), `{on_error: {...}, on_success: {while,
    max_attempts, next_call, collect}}`, or a list of `{when, then: {...}}` where a `then` with
    `next_call` or `collect` asks for the next call on success (pagination) and any other retries
    on error. Error rules come first, then the success rules, then one that collects the last call
    and makes the collected list the step's result."""
    if isinstance(retry, list):
        entries = [(e.get("when"), e.get("then") or {}) for e in retry if isinstance(e, dict)]
    elif isinstance(retry, dict) and ({"on_error", "on_success"} & set(retry)):
        on_error, on_success = retry.get("on_error") or {}, retry.get("on_success") or {}
        entries = [(on_error.get("when"), on_error)] if on_error else []
        if on_success:
            entries.append((on_success.get("while", on_success.get("when")), {**on_success, "next_call": on_success.get("next_call") or {}}))
    elif isinstance(retry, dict):
        return [retry_rule(retry)]
    else:
        return []
    errors = [retry_rule({**then, "when": when}) for when, then in entries
              if isinstance(then, dict) and "next_call" not in then and "collect" not in then]
    successes = [(when, then) for when, then in entries
                 if isinstance(then, dict) and ("next_call" in then or "collect" in then)]
    rules = errors + [_next_call_rule(when, then, task) for when, then in successes if then.get("next_call") is not None]
    collect = next((then["collect"] for _, then in successes if isinstance(then.get("collect"), dict)), None)
    if collect is not None:
        into = _ctx_ref(str(collect.get("into") or "iter.collected"))
        rules.append({"when": "{{ output.status == 'ok' }}",
                      "then": {"do": "continue", "set": {into: collect_template(collect)}, "result": "{{ " + into + " }}"}})
    return rules


_CALLS = "iter._noetl_calls"  # calls made so far in this step run (bounds `max_attempts`)


def _next_call_rule(when: Any, then: dict[str, Any], task: str) -> dict[str, Any]:
    """Another call while ``when`` holds, with `next_call`'s request fields changed, at most
    `max_attempts` calls in all (then the step goes on with what it collected)."""
    limit = int(then.get("max_attempts", then.get("max_iterations", 100)))
    condition = f"output.status == 'ok' and ({_CALLS} | default(1)) < {limit}"
    if when:
        condition += f" and ({_strip_braces(when)})"
    updates: dict[str, Any] = {_CALLS: "{{ (" + _CALLS + " | default(1)) + 1 }}"}
    if isinstance(then.get("collect"), dict):
        collect = then["collect"]
        updates[_ctx_ref(str(collect.get("into") or "iter.collected"))] = collect_template(collect)
    call = recall_fields(then.get("next_call") or {})
    return {"when": "{{ " + condition + " }}",
            "then": {"do": "jump", "to": task, "call": call, "attempts": limit, "set": updates}}


def _ctx_ref(name: str) -> str:
    return name if name.startswith(("ctx.", "vars.", "iter.")) else f"ctx.{name}"


def collect_template(collect: dict[str, Any]) -> str:
    """A `collect:` block as the template of its variable's next value. The value is `from` (an
    expression), or `path` read under `response` (`path: data.items`), else the response itself.
    `mode: extend | append | replace` (case-era) adds a list's elements, adds the value as one
    element, or replaces; `strategy:` (the retry-era spelling) `append` adds a list's elements and
    any other value as one element, `replace` replaces."""
    if collect.get("from") is not None:
        source = _strip_braces(collect["from"])
    elif collect.get("path"):
        source = "response." + str(collect["path"]).strip(".")
    else:
        source = "response"
    into = _ctx_ref(str(collect.get("into") or "iter.collected"))
    mode = collect.get("mode") or {"append": "elements", "extend": "extend"}.get(
        str(collect.get("strategy")), collect.get("strategy") or "extend")
    if mode == "replace":
        return "{{ " + source + " }}"
    current = f"({into} | default([]))"
    if mode == "elements":
        addition = f"(({source}) if ({source}) is sequence and ({source}) is not string and ({source}) is not mapping " \
                   f"else [{source}])"
    else:
        addition = f"({source})" if mode == "extend" else f"[{source}]"
    return "{{ " + current + " + " + addition + " }}"


def _strip_braces(expr: Any) -> str:
    text = str(expr).strip()
    if text.startswith("{{") and text.endswith("}}"):
        return text[2:-2].strip()
    return text


def _target(item: Any) -> dict[str, Any] | None:
    if isinstance(item, str):
        return {"step": item}
    if isinstance(item, dict) and "step" in item:
        arc: dict[str, Any] = {"step": item["step"]}
        payload = {}
        for key in ("with", "args", "data", "input"):
            if isinstance(item.get(key), dict):
                payload.update(item[key])
        if payload:
            arc["input"] = payload
        if "when" in item:
            arc["when"] = item["when"]
        if isinstance(item.get("set"), dict):
            arc["set"] = item["set"]
        return arc
    return None
