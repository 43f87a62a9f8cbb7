"""``secrets``: fetch a secret at run time.

Config: ``provider`` (``env`` by default; ``credential``, ``google``, ``aws``, ``vault``),
``secret_name`` (alias ``name``, ``key``), ``field`` (pick one field of a structured secret), and
provider options (``project_id``/``project``, ``version``, ``region``, ``url``, ``mount_point``).

Result: ``{value, name, provider}``. The value is added to the call's secrets, so it is replaced by
``***`` in the event log, status documents, logs and error messages.
"""

from __future__ import annotations

from typing import Any

from noetl.errors import NotFoundError, ToolError
from noetl.secrets import SecretResolver
from noetl.tools._auth import remember_secrets
from noetl.tools.base import ToolCall


async def run_secrets(config: dict[str, Any], call: ToolCall) -> dict[str, Any]:
    provider = str(config.get("provider") or "env").lower()
    # `name` last: inside a pipeline it may be the task's own name rather than the secret's.
    name = config.get("secret_name") or config.get("key") or config.get("name")
    if not name:
        raise ToolError("secrets tool needs `secret_name`", kind="config")
    options = dict(config)
    if options.get("project") and not options.get("project_id"):
        options["project_id"] = options["project"]
    getter = call.services.get_credential if call.services is not None else None
    resolver = SecretResolver(getter)
    try:
        value = await resolver.resolve(provider, str(name), field=config.get("field"), options=options)
    except NotFoundError as exc:
        raise ToolError(str(exc), kind="secret_not_found") from None
    remember_secrets(call, value)
    return {"value": value, "name": str(name), "provider": provider}
