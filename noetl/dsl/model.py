"""Canonical playbook models (the one internal form; older forms are normalised into it).

Tool configs keep extra fields (each tool documents its own); the structural parts are typed.

The models build their pydantic validators and serializers on first use (``defer_build``), not at
import: a playbook run again comes from the cache of validated playbooks (:mod:`noetl.dsl.cache`)
as plain records (:mod:`noetl.dsl.records`), which need neither; what the models do besides
holding fields is in :mod:`noetl.dsl.behaviour`, which the records share. For the same reason a
default that is a model is made with ``model_construct`` (a default is not validated anyway, so it is the same value).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from noetl.dsl.behaviour import PlaybookBehaviour, Shape, StepBehaviour, TaskBehaviour


class _Model(BaseModel, Shape):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


class PolicyAction(_Model):
    do: Literal["continue", "retry", "jump", "break", "fail"] = "continue"
    attempts: int = 3
    delay: float = 0.0
    # none | linear | exponential; any other name (`fixed`, ...) means a constant `delay` (noetl.backoff)
    backoff: str = "none"
    max_delay: float | None = None
    to: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    call: dict[str, Any] | None = None  # with `jump`: config fields to change for the re-run (pagination)
    result: Any = None  # a template: the step's result when the pipeline ends after this rule


class PolicyRule(_Model):
    when: str | bool | None = None  # None = else (matches anything)
    then: PolicyAction


class Policy(_Model):
    rules: list[PolicyRule] = Field(default_factory=list)


class TaskSpec(_Model):
    policy: Policy | None = None
    timeout: float | None = None


class Task(BaseModel, TaskBehaviour):
    """One tool invocation; tool-specific fields are kept as extra fields."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    kind: str
    name: str | None = None
    spec: TaskSpec | None = None
    # Evaluated after the task ran, with `output` bound (never rendered before): bare keys are names
    # for the rest of the step, `ctx.*` keys execution variables.
    set: dict[str, Any] | None = None


class FrameSpec(_Model):
    """How a cursor loop claims and runs its frames (one claim's rows = one frame)."""

    max_rows: int = Field(default=1, ge=1)  # rows one claim may return: the claim's `__frame_max_rows`
    max_seconds: float | None = Field(default=None, gt=0)  # a frame's time budget for its rows
    max_bytes: int | None = Field(default=None, ge=1)  # the most a frame's rows may weigh (as JSON)
    lease_seconds: float | None = Field(default=None, gt=0)  # the frame command's lease
    heartbeat_seconds: float | None = Field(default=None, gt=0)  # how often that lease is renewed
    row_concurrency: int = Field(default=1, ge=1)  # rows of one frame run at once (process: row)
    process: Literal["row", "frame"] = "row"


class LoopSpec(_Model):
    mode: Literal["sequential", "parallel", "cursor"] = "sequential"
    # A number, or a template rendered when the loop starts (`"{{ width }}"`).
    max_in_flight: int | str = 16
    frame: FrameSpec = Field(default_factory=FrameSpec.model_construct)

    @field_validator("max_in_flight")
    @classmethod
    def _positive_or_template(cls, value: int | str) -> int | str:
        if isinstance(value, str) and "{{" not in value:
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("max_in_flight must be a positive integer or a template") from None
        if isinstance(value, int) and value < 1:
            raise ValueError("max_in_flight must be at least 1")
        return value


class LoopCursor(BaseModel, Shape):
    """Where a cursor loop claims its rows: a postgres connection (``auth`` or ``connection``) and
    the ``claim`` SQL; other fields go to the postgres tool as they are."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    kind: Literal["postgres"] = "postgres"
    claim: str


class Loop(_Model):
    in_: Any = Field(default=None, alias="in")
    cursor: LoopCursor | None = None
    iterator: str = "item"
    spec: LoopSpec = Field(default_factory=LoopSpec.model_construct)
    # v1 iterator controls, applied to the rendered collection in this order (docs/dsl.md#loops)
    where: str | bool | None = None
    order_by: str | None = None
    limit: int | str | None = None
    chunk: int | str | None = None  # the chosen elements in lists of this size, one per iteration

    @field_validator("limit", "chunk")
    @classmethod
    def _count_or_template(cls, value: int | str | None, info: ValidationInfo) -> int | str | None:
        if isinstance(value, str) and "{{" not in value:
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError(f"{info.field_name} must be a whole number or a template") from None
        if isinstance(value, int) and value < 0:
            raise ValueError(f"{info.field_name} must be at least 0")
        return value


class Arc(_Model):
    step: str | None = None  # None: an arc that only applies its `set` (case-era rules)
    when: str | bool | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    input: dict[str, Any] | None = None  # overrides the target's inputs (v1 `with`, case-era `args`)
    group: int | None = None  # arcs of one case-era rule fire together
    fallback: bool = False  # fires only when no other arc fired (case-era plain `next`)


class NextSpec(_Model):
    mode: Literal["exclusive", "inclusive"] = "exclusive"


class Next(_Model):
    spec: NextSpec = Field(default_factory=NextSpec.model_construct)
    arcs: list[Arc] = Field(default_factory=list)


class Step(_Model, StepBehaviour):
    step: str
    desc: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    loop: Loop | None = None
    tool: list[Task] = Field(default_factory=list)  # empty = routing-only step (noop)
    pipeline: bool = False  # the playbook gave a list of tasks (not a single tool)
    set: dict[str, Any] = Field(default_factory=dict)
    next: Next = Field(default_factory=Next.model_construct)
    spec: TaskSpec | None = None
    output: dict[str, Any] | None = None  # where results go and what stays inline (noetl.results.spec)


class WorkbookEntry(_Model):
    name: str
    tool: list[Task]
    assert_: dict[str, Any] | None = Field(default=None, alias="assert")


class Metadata(_Model):
    name: str
    path: str | None = None
    description: str | None = None
    version: Any = None

    @field_validator("name")
    @classmethod
    def _name_not_empty(cls, value: str) -> str:
        if not str(value).strip():
            raise ValueError("metadata.name must not be empty")
        return value


class ExecutorSpec(_Model):
    entry_step: str | None = None
    final_step: str | None = None
    strict: bool = False  # undefined template names are errors, not warnings


class Executor(_Model):
    profile: Literal["local", "distributed", "auto"] = "auto"
    spec: ExecutorSpec = Field(default_factory=ExecutorSpec.model_construct)


class Playbook(_Model, PlaybookBehaviour):
    apiVersion: str = "noetl.io/v2"
    kind: str = "Playbook"
    metadata: Metadata
    workload: dict[str, Any] = Field(default_factory=dict)
    keychain: list[dict[str, Any]] = Field(default_factory=list)
    workbook: list[WorkbookEntry] = Field(default_factory=list)
    executor: Executor = Field(default_factory=Executor.model_construct)
    workflow: list[Step] = Field(min_length=1)
    schedules: list[dict[str, Any]] = Field(default_factory=list)  # checked by dsl.schedules
