"""`noetl migrate`: print a playbook in canonical form (older spellings rewritten)."""

from __future__ import annotations

from typing import Any

import yaml

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
    return doc


def _tool(tasks: list[Any], pipeline: bool) -> Any:
    dumped = [t.model_dump(exclude_none=True, exclude_defaults=True) for t in tasks]
    return dumped if pipeline else dumped[0]


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
    return yaml.safe_dump(canonical_document(loaded), sort_keys=False, allow_unicode=True, width=110)
