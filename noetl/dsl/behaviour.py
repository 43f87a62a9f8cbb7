"""What the playbook models do besides holding fields, apart from pydantic.

The pydantic models of :mod:`noetl.dsl.model` (the one description of the DSL) inherit these
classes, and so do the plain records of them that a run uses (:mod:`noetl.dsl.records`), so both
have a playbook's entry step, a step's kind and a task's config from one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


class Shape:
    """A playbook model or a record of one (what :func:`plain_dump` descends into)."""

    __slots__ = ()


class PlaybookBehaviour(Shape):
    __slots__ = ()
    if TYPE_CHECKING:  # the model's fields (annotated here only for the type checker, not for pydantic)
        metadata: Any
        executor: Any
        workflow: list[Any]
        workbook: list[Any]

    @property
    def path(self) -> str:
        return str(self.metadata.path or self.metadata.name)

    def step_map(self) -> dict[str, Any]:
        return {s.step: s for s in self.workflow}

    @property
    def entry_step(self) -> str:
        if self.executor.spec.entry_step:
            return str(self.executor.spec.entry_step)
        names = [s.step for s in self.workflow]
        return "start" if "start" in names else str(names[0])

    def workbook_entry(self, name: str) -> Any:
        return next((w for w in self.workbook if w.name == name), None)


class StepBehaviour(Shape):
    __slots__ = ()
    if TYPE_CHECKING:
        tool: list[Any]

    @property
    def kind(self) -> str:
        return str(self.tool[0].kind) if len(self.tool) == 1 else ("pipeline" if self.tool else "noop")


class TaskBehaviour(Shape):
    __slots__ = ()
    if TYPE_CHECKING:
        __pydantic_extra__: dict[str, Any] | None

    def config(self) -> dict[str, Any]:
        """The tool's own fields (everything but kind/name/spec)."""
        return dict(self.__pydantic_extra__ or {})


BEHAVIOUR: dict[str, type[Shape]] = {"Playbook": PlaybookBehaviour, "Step": StepBehaviour, "Task": TaskBehaviour}


def plain_dump(model: Shape) -> dict[str, Any]:
    """``model.model_dump(exclude_none=True)`` of a playbook model or record, without pydantic's
    serializer (a run turns every task into a plain dict for its command): fields, then extra
    fields, by name; a None field is left out, values inside dicts and lists are kept as they are."""
    values = {**model.__dict__, **(getattr(model, "__pydantic_extra__", None) or {})}
    return {name: _plain(value) for name, value in values.items() if value is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Shape):
        return plain_dump(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    return value
