"""Bearer-token authentication of every /api route when NOETL_API_TOKEN is set."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from noetl.server.state import server_state


async def require_token(request: Request) -> None:
    token = server_state(request).config.api_token
    if not token:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token (NOETL_API_TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})
