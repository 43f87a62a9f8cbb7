"""The console's templates: a normal autoescaping Jinja2 environment (not the playbook sandbox),
with the filters the pages use. Everything a page shows is user data and goes through escaping."""

from __future__ import annotations

import difflib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from noetl.runtime.sealing import SEALED_RESULT

HERE = Path(__file__).parent
# Results larger than this are cut on the page (the API still serves them whole).
MAX_SHOWN_CHARS = 20_000


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=False, lstrip_blocks=False)
    env.filters.update(json_block=json_block, shown_in_part=shown_in_part, when=when, duration=duration,
                       seconds=seconds, meta_summary=meta_summary, scalar=scalar,
                       without_kind=without_kind)
    return env


_INDENTED = json.JSONEncoder(indent=2, default=str, ensure_ascii=False)


def _shown_json(value: Any) -> tuple[str, bool]:
    """The JSON text a page shows of ``value`` (indented, at most MAX_SHOWN_CHARS) and whether it is
    cut. Encoded only as far as it is shown: the whole text of a 10,000-iteration loop's results took
    most of the time of its execution's page."""
    chunks: list[str] = []
    size = 0
    for chunk in _INDENTED.iterencode(value):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_SHOWN_CHARS:
            return "".join(chunks)[:MAX_SHOWN_CHARS], True
    return "".join(chunks), False


def json_block(value: Any) -> Markup:
    """Pretty JSON in a collapsible block; a long value is cut, with a note saying so."""
    text, cut = _shown_json(value)
    lines = text.count("\n") + 1
    body = Markup('<pre class="json">{}</pre>').format(text)
    if cut:
        body += Markup('<p class="muted truncated">… more characters not shown</p>')
    if lines <= 12 and not cut:
        return body
    return Markup('<details class="json"><summary>{} lines</summary>{}</details>').format(lines, body)


def without_kind(message: Any, kind: Any) -> str:
    """An error's message without its kind in front: the page prints the kind as its label, and a
    python error's message already starts with it ('ValueError: bad item 2')."""
    text = "" if message is None else str(message)
    prefix = f"{kind}: " if kind else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def shown_in_part(value: Any) -> bool:
    """The page shows only part of a result: stored by reference (a preview) or cut by json_block."""
    if isinstance(value, dict) and isinstance(value.get("_ref"), dict):
        return True
    return _shown_json(value)[1]  # as json_block measures it, indented


def when(value: Any) -> str:
    """An ISO timestamp to the second, in UTC as stored."""
    if not value:
        return ""
    text = str(value).replace("T", " ")
    return text[:19]


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes} min {rest} s" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def duration(record: Any) -> str:
    start, end = getattr(record, "started_at", None), getattr(record, "ended_at", None)
    if not start or not end:
        return "running" if getattr(record, "status", "") == "running" else ""
    try:
        return seconds((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    except ValueError:
        return ""


# A sealed result is ciphertext, of no use to a reader.
_NOT_SUMMARISED = frozenset({"logs", "set", "loop_index", SEALED_RESULT})


def meta_summary(meta: dict[str, Any]) -> str:
    shown = {k: v for k, v in (meta or {}).items() if k not in _NOT_SUMMARISED}
    text = ", ".join(f"{k}={v}" for k, v in shown.items())
    return text if len(text) <= 160 else text[:159] + "…"


def scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def workload_fields(workload: dict[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """One form field per workload value, keyed like ``--set`` (dotted for nested mappings), its
    default written as ``--set`` would read it back (so ``"10"`` stays a string)."""
    fields: list[dict[str, str]] = []
    for key, value in workload.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            fields.extend(workload_fields(value, f"{name}."))
            continue
        fields.append({"key": name, "value": _as_set_value(value), "kind": _kind(value)})
    return fields


def _as_set_value(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if value is None:
        return ""
    if isinstance(value, str):
        # Quote a string that --set would read as something else (a number, a boolean, ...).
        return value if _reads_as_string(value) else json.dumps(value)
    return json.dumps(value)


def _reads_as_string(text: str) -> bool:
    try:
        return isinstance(yaml.safe_load(text), str) and yaml.safe_load(text) == text
    except yaml.YAMLError:
        return True


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "text"


def diff_lines(old: str, new: str, old_name: str, new_name: str) -> list[tuple[str, str]]:
    out = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm=""):
        kind = "hunk" if line.startswith("@@") else "add" if line.startswith("+") else \
            "del" if line.startswith("-") else "ctx"
        out.append((kind, line))
    return out


def plain(text: str) -> str:
    return str(escape(text))
