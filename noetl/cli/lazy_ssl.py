"""asyncio without its ssl support until something uses TLS.

Importing asyncio imports ssl (the module and OpenSSL, about 30 M instructions, 3 % of a short
`noetl run`) although most playbooks never open a TLS connection. The command line therefore
imports asyncio while ssl is marked missing (asyncio supports interpreters built without ssl), then
gives asyncio's three modules that refer to ssl a stand-in. The first attribute read on the
stand-in (asyncio starting TLS, or checking a socket's type) imports the real ssl and hands it to
those modules, with the one constant asyncio derives from it at import. Code that imports ssl
itself (httpx for the http tool, a user's python code) gets the real module as always.

Only on the interpreters whose asyncio this was checked against; anywhere else, and in a process
that imported asyncio or ssl already, nothing changes.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

_CHECKED_VERSIONS = ((3, 11), (3, 12), (3, 13))
_lock = threading.Lock()


def import_asyncio_without_ssl() -> None:
    if sys.version_info[:2] not in _CHECKED_VERSIONS or "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # `import ssl` raises ImportError
    try:
        import asyncio.base_events
        import asyncio.selector_events
        import asyncio.sslproto
    finally:
        del sys.modules["ssl"]
    users = (asyncio.base_events, asyncio.selector_events, asyncio.sslproto)
    if any(getattr(module, "ssl", False) is not None for module in users) \
            or hasattr(asyncio.sslproto, "SSLAgainErrors"):
        _give_asyncio_ssl()  # not the asyncio this was checked against: the real ssl, at once
        return
    stand_in = _SslOnFirstUse("ssl")
    for module in users:
        module.ssl = stand_in  # type: ignore[attr-defined]


class _SslOnFirstUse(types.ModuleType):
    """Stands in for ssl in asyncio's modules; any attribute read imports the real ssl."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_give_asyncio_ssl(), name)


def _give_asyncio_ssl() -> types.ModuleType:
    with _lock:
        import asyncio.base_events
        import asyncio.selector_events
        import asyncio.sslproto
        import ssl

        for module in (asyncio.base_events, asyncio.selector_events, asyncio.sslproto):
            module.ssl = ssl  # type: ignore[attr-defined]
        # What asyncio.sslproto computes from ssl at import when ssl is there (Python 3.11 to 3.13).
        asyncio.sslproto.SSLAgainErrors = (ssl.SSLWantReadError, ssl.SSLSyscallError)  # type: ignore[attr-defined]
        return ssl
