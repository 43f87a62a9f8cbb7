"""``from noetl.server.api.events_v2 import router`` (seed 002): the routes of
:mod:`noetl.server.routes.executions`, which already answer ``/api/v2/events`` and
``/api/v2/execute``. ``create_app`` includes them; including this router in another FastAPI app
adds the same routes under ``/api``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from noetl.server.auth import authorize
from noetl.server.routes import catalog, executions, system

router = APIRouter(prefix="/api", dependencies=[Depends(authorize)])
for _module in (system, catalog, executions):
    router.include_router(_module.router)

__all__ = ["router"]
