"""The web console: a server-rendered view of the store (executions, catalog, credentials).

``noetl server start`` serves it at ``/`` beside the REST API; ``noetl ui`` serves it over the
local store (see :mod:`noetl.server.console.local`). Templates and static assets ship inside the
package; nothing is loaded from elsewhere.
"""
