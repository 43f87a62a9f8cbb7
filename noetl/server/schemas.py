"""Request bodies of the REST API (kept apart from the DSL models on purpose: the API may evolve
its spellings without touching the playbook language)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class ExecuteRequest(_Body):
    path: str | None = None
    catalog_id: str | None = None
    version: int | str | None = None
    payload: dict[str, Any] | None = Field(default=None, description="Merged over the playbook's workload.")
    merge: bool = False
    parent_execution_id: str | int | None = None


class SqlRequest(_Body):
    query: str | None = None
    sql: str | None = None
    params: list[Any] | dict[str, Any] | None = None
    schema_: str | None = Field(default=None, alias="schema")
