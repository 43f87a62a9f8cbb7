"""Request bodies of the REST API (kept apart from the DSL models on purpose: the API may evolve
its spellings without touching the playbook language)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from noetl.dsl.suggest import suggest


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class RegisterRequest(_Body):
    content: str = Field(description="Playbook YAML, plain or base64-encoded.")


class SeedRegisterRequest(_Body):
    playbook_yaml: str | None = None
    content: str | None = None


class CatalogListRequest(_Body):
    kind: str | None = None


class ResourceRequest(_Body):
    path: str | None = None
    catalog_id: str | None = None
    version: int | str | None = None


class ExecuteRequest(BaseModel):
    """Unknown fields are refused (422 naming the field): a misspelt `payload` or `merge` would
    otherwise start a run with the playbook's defaults, which nobody asked for."""

    model_config = ConfigDict(extra="forbid")  # what the OpenAPI schema says; the check below words it

    path: str | None = None
    catalog_id: str | None = None
    version: int | str | None = None
    payload: dict[str, Any] | None = Field(default=None, description="Merged over the playbook's workload.")
    merge: bool = False
    parent_execution_id: str | int | None = None
    strict: bool = Field(default=False, description="Undefined template names are errors, not warnings.")

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = frozenset(cls.model_fields)
            for key in data:
                if key not in known:
                    raise PydanticCustomError(
                        "unknown_field", "unknown field {field}{hint}; the fields are: {fields}",
                        {"field": repr(str(key)[:100]), "hint": suggest(str(key), known),
                         "fields": ", ".join(cls.model_fields)})
        return data


class SqlRequest(_Body):
    query: str | None = None
    sql: str | None = None
    params: list[Any] | dict[str, Any] | None = None
    schema_: str | None = Field(default=None, alias="schema")
    connection_string: str | None = Field(default=None, description="Query this database instead (read-only).")
    credential: str | None = Field(default=None, description="Query the database of this postgres credential.")
    write: bool = Field(default=False, description="Allow a statement that changes data (NOETL_SQL_API_WRITE).")


class ExternalEvent(_Body):
    """``POST /api/events``: an event from outside the server.

    - ``call.done`` / ``call.error``: the outcome of a leased command, reported as a worker would
      (``node_name`` and ``meta.command_id``, ``meta.attempt``, ``meta.worker`` name the lease);
    - ``execution.cancelled``: cancel the execution (``error.message`` is the reason);
    - ``workflow.start``: start an execution of a catalog playbook (``path`` or ``catalog_id``,
      optional ``version`` and ``payload``; ``execution_id`` optional), as seed 002 posts it.

    ``type`` and ``name`` are accepted spellings of ``event_type``.
    """

    execution_id: StrictStr | StrictInt | None = None
    event_type: StrictStr | None = None
    type: StrictStr | None = None
    name: StrictStr | None = None
    node_name: StrictStr | None = None
    result: Any = None
    error: dict[str, Any] | StrictStr | None = None
    meta: dict[str, Any] | None = None
    path: StrictStr | None = None
    catalog_id: StrictStr | None = None
    version: StrictInt | StrictStr | None = None
    payload: dict[str, Any] | None = None

    def kind(self) -> str | None:
        return self.event_type or self.type or self.name
