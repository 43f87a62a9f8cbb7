"""The worker's warm-up checks a real playbook: one that stopped being valid would leave every first
command paying the imports again, without an error anywhere."""

from __future__ import annotations

from noetl.dsl.parse import load_playbook_text
from noetl.runtime.warmup import COMMON_TOOLS, WARM_UP_PLAYBOOK, warm_up
from noetl.tools import base


def test_the_warm_up_playbook_is_valid_and_uses_the_common_tools() -> None:
    playbook = load_playbook_text(WARM_UP_PLAYBOOK, "<worker warm-up>").require()
    kinds = {task.kind for step in playbook.workflow for task in step.tool}
    assert kinds == set(COMMON_TOOLS)


def test_warm_up_loads_the_common_tools() -> None:
    warm_up()
    assert set(COMMON_TOOLS) <= set(base._loaded)
