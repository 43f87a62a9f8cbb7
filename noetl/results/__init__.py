"""Results of any size (SPEC section 19).

A tool result larger than ``inline_max_bytes`` (64 KiB unless a step's ``output`` says otherwise)
is stored outside the event log and the event carries a reference ``{_ref: {uri, size, sha256,
preview}}`` instead, beside the top-level fields ``output_select`` keeps inline.

- :mod:`noetl.results.refs` -- what a reference is (pure: the DSL and engine import it);
- :mod:`noetl.results.spec` -- the ``output:`` block of a step or task;
- :mod:`noetl.results.storage` -- where blobs go (the store's result table, disk, memory, S3);
- :mod:`noetl.results.shape` -- turning a result into what the event records.

The engine only ever sees references. Templates resolve them lazily: the render environment wraps a
reference in :class:`noetl.results.refs.LazyResult` when a template looks inside it, and that loads
the blob (through the loader the runtime installed) on first access.
"""
