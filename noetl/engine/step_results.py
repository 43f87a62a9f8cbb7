"""Step results as templates read them, with a pipeline's task results beside them.

A pipeline step's result is its last task's result (that is what the status document shows and
what ``{{ step.field }}`` reads), yet every named task's result stays readable as
``{{ step.results.<task> }}`` and ``{{ step.<task> }}``. The task results travel in the step's
``call.done`` event (``meta.tasks``) and are folded into ``ExecutionState.task_results``; the views
here answer for them without copying any result.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_MISSING = object()


class StepResultView(dict[str, Any]):
    """A mapping step result that also answers ``results`` (every named task's result) and each
    task's name; the result's own keys win. It is a dict of the result's items, so it renders and
    serialises exactly as the result does."""

    __slots__ = ("tasks",)

    def __init__(self, result: Mapping[str, Any], tasks: Mapping[str, Any]) -> None:
        super().__init__(result)
        self.tasks = tasks

    def get(self, key: Any, default: Any = None) -> Any:
        value = dict.get(self, key, _MISSING)
        if value is not _MISSING:
            return value
        if key == "results":
            return dict(self.tasks)
        return self.tasks.get(key, default)

    def __reduce__(self) -> Any:
        return (StepResultView, (dict(self), dict(self.tasks)))


def with_task_results(result: Any, tasks: Mapping[str, Any] | None) -> Any:
    """``result`` as templates should see it: a view when the step has task results to offer."""
    if not tasks or not isinstance(result, Mapping):
        return result
    return StepResultView(result, tasks)


class StepResults(Mapping[str, Any]):
    """The render-context layer of step results: ``results`` with ``task_results`` attached."""

    __slots__ = ("results", "task_results")

    def __init__(self, results: Mapping[str, Any], task_results: Mapping[str, Mapping[str, Any]]) -> None:
        self.results = results
        self.task_results = task_results

    def __getitem__(self, key: str) -> Any:
        return with_task_results(self.results[key], self.task_results.get(key))

    def get(self, key: str, default: Any = None) -> Any:
        value = self.results.get(key, _MISSING)
        if value is _MISSING:
            return default
        return with_task_results(value, self.task_results.get(key))

    def __contains__(self, key: object) -> bool:
        return key in self.results

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)
