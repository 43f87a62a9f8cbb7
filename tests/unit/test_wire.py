"""A leased command's render context survives its trip to a worker through the server's API."""

from __future__ import annotations

import json

import pytest

from noetl.dsl.render import RenderContext
from noetl.engine.step_results import StepResults
from noetl.errors import TemplateError
from noetl.runtime.services import SecretNamespace
from noetl.runtime.wire import decode_context, encode_context


def _over_the_wire(context: RenderContext) -> RenderContext:
    return decode_context(json.loads(json.dumps(encode_context(context))))


def _secrets() -> SecretNamespace:
    namespace = SecretNamespace()
    namespace.resolved["token"] = "s3cr3t"
    namespace.missing["absent"] = "secret 'absent' is not in the keychain"
    return namespace


def test_step_results_plain_values_and_secrets_come_back_as_they_were() -> None:
    steps = StepResults({"fetch": {"rows": 3}}, {"fetch": {"load": {"ok": True}}})
    context = RenderContext({"workload": {"city": "Oslo"}, "secret": _secrets()}, steps)

    decoded = _over_the_wire(context)

    assert decoded["workload"] == {"city": "Oslo"}
    assert decoded["secret"]["token"] == "s3cr3t"
    with pytest.raises(TemplateError, match="not in the keychain"):
        decoded["secret"]["absent"]
    assert decoded["fetch"]["rows"] == 3
    assert decoded["fetch"].get("load") == {"ok": True}


@pytest.mark.parametrize("name", ["__noetl_step_results__", "__noetl_secret_namespace__", "steps",
                                  "values", "secret_namespaces"])
def test_a_playbook_name_never_passes_for_one_of_noetls_markers(name: str) -> None:
    """A workload or ctx key may be any name: one spelt like an encoding marker is still plain data."""
    layer = {name: {"results": {"x": 1}, "resolved": {"k": "v"}}, "other": 2}

    decoded = _over_the_wire(RenderContext(layer))

    assert decoded[name] == {"results": {"x": 1}, "resolved": {"k": "v"}}
    assert decoded["other"] == 2
    nested = _over_the_wire(RenderContext({"workload": {name: {"resolved": {}}}}))
    assert nested["workload"] == {name: {"resolved": {}}}
