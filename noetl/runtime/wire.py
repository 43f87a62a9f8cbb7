"""How a leased command travels between the server and a remote worker (see gateway.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from noetl.dsl.render import RenderContext
from noetl.engine.step_results import StepResults
from noetl.runtime.services import SecretNamespace

# Every encoded layer says what it is, beside the layer's own names rather than among them, so no
# name a playbook uses (a workload or ctx key) can be taken for one of NoETL's markers:
#   {"steps": {"results": ..., "task_results": ...}}    the step results layer (`{{ step.<task> }}`)
#   {"values": {...}, "secret_namespaces": {key: {...}}} any other layer; `secret` namespaces apart
_STEPS = "steps"
_VALUES = "values"
_SECRET_NAMESPACES = "secret_namespaces"


def encode_context(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The layers of a render context as JSON-ready dicts (first match wins, as in RenderContext)."""
    layers: list[dict[str, Any]] = []
    for layer in context.layers if isinstance(context, RenderContext) else (context,):
        if isinstance(layer, StepResults):
            layers.append({_STEPS: {"results": dict(layer.results), "task_results": dict(layer.task_results)}})
            continue
        values: dict[str, Any] = {}
        namespaces: dict[str, Any] = {}
        for key, value in layer.items():
            if isinstance(value, SecretNamespace):
                namespaces[key] = {"resolved": dict(value.resolved), "missing": dict(value.missing)}
            else:
                values[key] = dict(value) if isinstance(value, Mapping) and not isinstance(value, dict) else value
        layers.append({_VALUES: values, _SECRET_NAMESPACES: namespaces})
    return layers


def decode_context(layers: list[dict[str, Any]]) -> RenderContext:
    decoded: list[Mapping[str, Any]] = []
    for layer in layers:
        if _STEPS in layer:
            steps = layer[_STEPS]
            decoded.append(StepResults(steps.get("results") or {}, steps.get("task_results") or {}))
            continue
        out = dict(layer.get(_VALUES) or {})
        for key, marked in (layer.get(_SECRET_NAMESPACES) or {}).items():
            namespace = SecretNamespace()
            namespace.resolved.update(marked.get("resolved") or {})
            namespace.missing.update(marked.get("missing") or {})
            out[key] = namespace
        decoded.append(out)
    return RenderContext(*decoded)


def child_execution_id(command_id: str, call_index: int) -> str:
    """A child's id, derived from the parent command and the call's position in it: a command re-run
    after a crash finds the child it already started instead of starting another."""
    digest = hashlib.blake2b(f"{command_id}#{call_index}".encode(), digest_size=8).digest()
    return str((int.from_bytes(digest, "big") & (2**62 - 1)) or 1)
