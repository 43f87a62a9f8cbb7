"""``noop``: a pure routing step; returns the given ``result`` or ``{status: ok}``."""

from __future__ import annotations

from typing import Any

from noetl.tools.base import ToolCall


async def run_noop(config: dict[str, Any], call: ToolCall) -> Any:
    if "result" in config:
        return config["result"]
    return {"status": "ok"}
