"""The status document of the execution `noetl run` started, kept up to date from its events.

`noetl run --json` must print one document even when Ctrl-C stops the run: the runtime records the
cancellation on the way out, and this fold of the published events (the same fold the store's
status document is made from) is what gets printed then. Child executions publish through the same
listener; only the first execution's events are folded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from noetl.engine import events as ev
from noetl.engine.events import Event
from noetl.engine.status import StatusFolder


class RootStatus:
    def __init__(self, forward: Callable[[Event], None] | None = None) -> None:
        self.forward = forward
        self._folder = StatusFolder()
        self._root: str | None = None

    def __call__(self, event: Event) -> None:
        if self._root is None and event.event_type == ev.PLAYBOOK_INITIALIZED:
            self._root = event.execution_id
        if event.execution_id == self._root:
            self._folder.apply(event)
        if self.forward is not None:
            self.forward(event)

    @property
    def doc(self) -> dict[str, Any] | None:
        """The document, once the execution has started."""
        return self._folder.doc if self._root is not None else None
