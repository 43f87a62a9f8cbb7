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
    if retry.get("retry_when"):
        condition += f" and ({_strip_braces(retry['retry_when'])})"
    if retry.get("stop_when"):
        condition += f" and not ({_strip_braces(retry['stop_when'])})"
    action: dict[str, Any] = {"do": "retry", "attempts": attempts, "delay": delay, "backoff": backoff}
    if retry.get("max_delay") is not None:
        action["max_delay"] = float(retry["max_delay"])
    return {"when": "{{ " + condition + " }}", "then": action}


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
