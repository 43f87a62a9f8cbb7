"""How a leased command travels between the server and a remote worker (see gateway.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from noetl.dsl.render import RenderContext
from noetl.engine.step_results import StepResults
from noetl.runtime.services import SecretNamespace

# How a `secret` namespace travels inside an encoded render context (see encode_context).
_SECRETS_MARK = "__noetl_secret_namespace__"
# How the step results layer travels with a pipeline's task results (`{{ step.<task> }}`), which
# its items alone do not carry.
_STEP_RESULTS_MARK = "__noetl_step_results__"


def encode_context(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The layers of a render context as JSON-ready dicts (first match wins, as in RenderContext)."""
    layers = []
    for layer in context.layers if isinstance(context, RenderContext) else (context,):
        if isinstance(layer, StepResults):
            layers.append({_STEP_RESULTS_MARK: {"results": dict(layer.results),
                                                "task_results": dict(layer.task_results)}})
            continue
        encoded: dict[str, Any] = {}
        for key, value in layer.items():
            if isinstance(value, SecretNamespace):
                value = {_SECRETS_MARK: {"resolved": dict(value.resolved), "missing": dict(value.missing)}}
            elif isinstance(value, Mapping) and not isinstance(value, dict):
                value = dict(value)
            encoded[key] = value
        layers.append(encoded)
    return layers


def decode_context(layers: list[dict[str, Any]]) -> RenderContext:
    decoded: list[Mapping[str, Any]] = []
    for layer in layers:
        if _STEP_RESULTS_MARK in layer:
            marked = layer[_STEP_RESULTS_MARK]
            decoded.append(StepResults(marked.get("results") or {}, marked.get("task_results") or {}))
            continue
        out = dict(layer)
        for key, value in layer.items():
            if isinstance(value, dict) and _SECRETS_MARK in value:
                namespace = SecretNamespace()
                namespace.resolved.update(value[_SECRETS_MARK].get("resolved") or {})
                namespace.missing.update(value[_SECRETS_MARK].get("missing") or {})
                out[key] = namespace
        decoded.append(out)
    return RenderContext(*decoded)


def child_execution_id(command_id: str, call_index: int) -> str:
    """A child's id, derived from the parent command and the call's position in it: a command re-run
    after a crash finds the child it already started instead of starting another."""
    digest = hashlib.blake2b(f"{command_id}#{call_index}".encode(), digest_size=8).digest()
    return str((int.from_bytes(digest, "big") & (2**62 - 1)) or 1)
