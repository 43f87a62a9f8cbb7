"""`noetl migrate`: print a playbook in canonical form (older spellings rewritten)."""

from __future__ import annotations

from typing import Any

import yaml

from noetl.dsl.code_templates import context_names, unrender_code
from noetl.dsl.parse import LoadedPlaybook


def canonical_document(loaded: LoadedPlaybook) -> dict[str, Any]:
    """The canonical document with defaults and internal-only fields left out."""
    playbook = loaded.require()
    doc: dict[str, Any] = {"apiVersion": "noetl.io/v2", "kind": "Playbook",
                           "metadata": playbook.metadata.model_dump(exclude_none=True)}
    for key in ("workload", "keychain"):
        value = getattr(playbook, key)
        if value:
            doc[key] = value
    if playbook.workbook:
        doc["workbook"] = [{"name": w.name, "tool": _tool(w.tool, len(w.tool) > 1),
                            **({"assert": w.assert_} if w.assert_ else {})} for w in playbook.workbook]
    spec = playbook.executor.spec.model_dump(exclude_none=True)
    if spec or playbook.executor.profile != "auto":
        doc["executor"] = {"profile": playbook.executor.profile, **({"spec": spec} if spec else {})}
    doc["workflow"] = [_step(s) for s in playbook.workflow]
    if playbook.schedules:
        doc["schedules"] = playbook.schedules
    return _code_without_templates(doc)


def _tool(tasks: list[Any], pipeline: bool) -> Any:
    dumped = [t.model_dump(exclude_none=True, exclude_defaults=True) for t in tasks]
    return dumped if pipeline else dumped[0]


def _code_without_templates(doc: dict[str, Any]) -> dict[str, Any]:
    """Templates of context names written into python code become `input` bindings (python code
    is never rendered, see noetl.dsl.code_templates)."""
    known = context_names({**doc, "workflow": [{**s, "tool": _as_list(s.get("tool"))} for s in doc["workflow"]]})
    for step in doc["workflow"]:
        tool = step.get("tool")
        if isinstance(tool, list):
            step["tool"] = [_unrendered_python(task, known) for task in tool]
        elif isinstance(tool, dict):
            step["tool"] = _unrendered_python(tool, known)
    return doc


def _as_list(tool: Any) -> list[Any]:
    return tool if isinstance(tool, list) else [tool] if tool else []


def _unrendered_python(task: dict[str, Any], known: set[str]) -> dict[str, Any]:
    if task.get("kind") != "python" or not isinstance(task.get("code"), str):
        return task
    rewritten = unrender_code(task["code"], dict(task.get("input") or {}), known)
    if rewritten is None:
        return task
    code, bindings = rewritten
    return {**task, "input": {**(task.get("input") or {}), **bindings}, "code": code}


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (code, SQL) as `|` blocks, as people write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value and all(line == line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_str(value)


_BlockDumper.add_representer(str, _represent_str)


def _step(step: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"step": step.step}
    if step.desc:
        out["desc"] = step.desc
    if step.input:
        out["input"] = step.input
    if step.loop:
        out["loop"] = step.loop.model_dump(by_alias=True, exclude_none=True)
        if step.loop.cursor is None:
            out["loop"]["spec"].pop("frame", None)  # frame settings belong to cursor loops only
    if step.tool:
        out["tool"] = _tool(step.tool, step.pipeline)
    if step.spec:
        out["spec"] = step.spec.model_dump(exclude_none=True)
    if step.set:
        out["set"] = step.set
    if step.next.arcs:
        arcs = []
        for arc in step.next.arcs:
            data = arc.model_dump(exclude_none=True, exclude_defaults=True)
            if arc.step is None:
                data["step"] = None
            arcs.append(data)
        out["next"] = {"spec": {"mode": step.next.spec.mode}, "arcs": arcs}
    return out


def canonical_yaml(loaded: LoadedPlaybook) -> str:
    return yaml.dump(canonical_document(loaded), Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=110)
