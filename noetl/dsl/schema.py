"""`noetl schema`: a JSON Schema of the playbook DSL for editors' YAML plugins.

Built from the canonical pydantic models, then loosened where users may write a shorter form
(a single tool instead of a list; older `next` lists), so editors do not flag valid playbooks.
"""

from __future__ import annotations

from typing import Any

from noetl.dsl.kinds import KNOWN_KINDS
from noetl.dsl.model import Playbook


def playbook_schema() -> dict[str, Any]:
    schema = Playbook.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "NoETL playbook"
    defs = schema.get("$defs", {})
    step = defs.get("Step", {}).get("properties", {})
    if "tool" in step:
        step["tool"] = {"anyOf": [{"$ref": "#/$defs/Task"}, {"type": "array", "items": {"$ref": "#/$defs/Task"}},
                                  {"type": "string"}], "description": "one tool, or a pipeline of tasks"}
    if "next" in step:
        step["next"] = {"anyOf": [{"$ref": "#/$defs/Next"}, {"type": "array"}, {"type": "string"}]}
    step.pop("pipeline", None)
    for arc_field in ("group", "fallback"):
        defs.get("Arc", {}).get("properties", {}).pop(arc_field, None)
    task = defs.get("Task", {}).get("properties", {})
    if "kind" in task:
        task["kind"] = {**task["kind"], "enum": sorted(KNOWN_KINDS)}
    entry = defs.get("WorkbookEntry", {}).get("properties", {})
    if "tool" in entry:
        entry["tool"] = step.get("tool", entry["tool"])
    return schema
