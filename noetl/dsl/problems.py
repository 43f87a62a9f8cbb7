"""A problem found in a playbook (error, warning or note), kept apart from the checks that find them
so that loading a playbook from the cache does not import the checks."""

from __future__ import annotations

from typing import NamedTuple

# The code of a warning about a template name nothing defines: a run renders it leniently (or, in
# strict mode, fails on it when it is used), so unlike other warnings it does not stop `run --strict`.
UNDEFINED_NAME = "undefined-name"


class Problem(NamedTuple):
    severity: str  # error | warning | note
    where: str  # file:line:col
    message: str
    code: str = ""  # what kind of problem, where callers treat kinds differently (UNDEFINED_NAME)

    def __str__(self) -> str:
        return f"{self.where}: {self.severity}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "where": self.where, "message": self.message}
