"""NoETL's own names that a playbook may take over (SPEC section 3).

`result` (in a step's input: the result of the step whose arc scheduled it) and `args` (in a
tool's config: the step's input, an older spelling) are NoETL's meanings of those names unless the
playbook itself uses the name: a step is called that, or a key of the run's workload is (the
playbook's workload merged with the execution's payload, so `--set result=...` counts too).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any


def alias_applies(name: str, steps: Container[str], workload: Mapping[str, Any] | None) -> bool:
    """Whether `name` keeps NoETL's meaning: no step and no key of the run's workload is called that."""
    return name not in steps and name not in (workload or {})
