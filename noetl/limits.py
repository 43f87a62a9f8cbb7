"""Input limits shared by every door into NoETL (CLI files, API bodies, credential files).

They exist so that a small hostile document cannot cost a lot: an alias bomb (a few hundred bytes of
YAML that expand to gigabytes), a document nested thousands deep (a RecursionError somewhere far
from the input), a value PostgreSQL or a JSON reader refuses later (NaN, NUL, lone surrogates).
"""

from __future__ import annotations

# Containers (mappings and lists) inside one another. Real playbooks and payloads stay far below.
MAX_DEPTH = 100
# Nodes reached again through YAML aliases, summed over a document. Anchors reused a few times in a
# playbook cost a few hundred; a "billion laughs" document needs billions.
MAX_ALIAS_NODES = 10_000
# Request bodies of the REST API (NOETL_MAX_BODY_BYTES overrides it).
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
# An answer of the SQL endpoint or `noetl query` (either store): its rows, its JSON, its time.
MAX_QUERY_ROWS = 10_000
MAX_QUERY_BYTES = 16 * 1024 * 1024
QUERY_TIMEOUT_SECONDS = 30
