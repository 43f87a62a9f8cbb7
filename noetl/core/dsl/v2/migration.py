"""``from noetl.core.dsl.v2.migration import migrate_v1_to_v2`` (seed 002): the older forms
rewritten in the canonical form, as ``noetl migrate`` does (:mod:`noetl.dsl.migrate`)."""

from __future__ import annotations

from noetl.dsl.migrate import canonical_yaml
from noetl.dsl.parse import load_playbook_text


def migrate_v1_to_v2(v1_yaml: str) -> str:
    """The canonical YAML of a playbook written in an older form; raises PlaybookError when it is
    invalid."""
    loaded = load_playbook_text(v1_yaml, "<v1 playbook>")
    loaded.require()
    return canonical_yaml(loaded)


__all__ = ["migrate_v1_to_v2"]
