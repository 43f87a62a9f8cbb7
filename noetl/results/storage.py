"""Where results stored by reference live, and how they are read back.

| kind | where | uri |
|---|---|---|
| `db` (and `auto`) | the store's ``result`` table (SQLite locally, PostgreSQL distributed) | ``noetl://result/<id>`` |
| `disk` | a JSON file under ``$NOETL_RESULTS_DIR`` (default ``$NOETL_HOME/results``) | ``file:///...`` |
| `memory` | this process (local runtime only: workers store it in the table, as another process may read it) | ``memory://<id>`` |
| `s3` | ``s3://$NOETL_RESULTS_S3_BUCKET/$NOETL_RESULTS_S3_PREFIX/...`` (boto3, the ``aws`` extra) | ``s3://bucket/key`` |

Reads come in two flavours on purpose: :meth:`ResultStorage.fetch` (async, for the CLI, the API and
the artifact tool) and :meth:`ResultStorage.read` (sync, the loader templates resolve references
through while they render inside the event loop). Both go through one small cache of decoded
results, bounded in bytes, so a template that reads ``big.data.rows[0]`` and ``big.data.rows[1]``
loads the blob once.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import ParseResult, unquote, urlparse

from noetl.clock import utc_now
from noetl.errors import InputError, NotFoundError, StoreError
from noetl.results import loops
from noetl.results.codec import dumps, loads
from noetl.results.refs import LOOP_PREFIX, make_ref
from noetl.settings import Settings, load_settings
from noetl.store.base import ResultRecord, Store
from noetl.store.common import NO_BOUND

DB_PREFIX = "noetl://result/"
MEMORY_PREFIX = "memory://"
CACHE_BYTES = 8 * 1024 * 1024  # decoded results kept for repeated reads, by JSON size (decoded: several times more)
_EXPIRY_MARK = ".exp"


class ResultStorage:
    """Result blobs of one runtime process, beside its ``store``."""

    def __init__(self, store: Store, *, settings: Settings | None = None, shared: bool = False) -> None:
        self.store = store
        self.settings = settings or load_settings()
        self.shared = shared  # other processes read these results (the distributed runtime)
        self._memory: dict[str, bytes] = {}
        self._cache: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()
        self._s3_client: Any = None

    # writing ---------------------------------------------------------------------------
    async def put(self, data: bytes | list[bytes], *, sha256: str, kind: str = "auto", execution_id: str | None = None,
                  step: str | None = None, name: str | None = None, ttl_seconds: float | None = None,
                  preview: str = "", now: datetime | None = None) -> dict[str, Any]:
        """Store ``data`` (the result's JSON text, or pieces of it to join) and return its reference
        ``{_ref: {...}}``. Pieces go into SQLite's result table one at a time, never joined."""
        now = now or utc_now()
        result_id = uuid.uuid4().hex
        expires = now + timedelta(seconds=ttl_seconds) if ttl_seconds else None
        size = len(data) if isinstance(data, bytes) else sum(len(part) for part in data)
        record = ResultRecord(result_id=result_id, data=b"", sha256=sha256, size=size, execution_id=execution_id,
                              step=step, name=name, created_at=now.isoformat(),
                              expires_at=expires.isoformat() if expires else None)
        in_parts = getattr(self.store, "put_result_parts", None)
        if in_parts is not None and not isinstance(data, bytes) and kind not in ("memory", "disk", "s3"):
            await in_parts(record, data)
            return make_ref(uri=DB_PREFIX + result_id, size=size, sha256=sha256, preview=preview)
        whole = data if isinstance(data, bytes) else b"".join(data)
        if kind == "memory" and not self.shared and name is None:
            uri = MEMORY_PREFIX + result_id
            self._memory[result_id] = whole
        elif kind == "disk":
            uri = await asyncio.to_thread(self._write_file, whole, execution_id, result_id, expires)
        elif kind == "s3":
            uri = await asyncio.to_thread(self._write_s3, whole, execution_id, result_id)
        else:
            uri = DB_PREFIX + result_id
            record.data = whole
            await self.store.put_result(record)
        return make_ref(uri=uri, size=size, sha256=sha256, preview=preview)

    def _write_file(self, data: bytes, execution_id: str | None, result_id: str, expires: datetime | None) -> str:
        folder = self.settings.result_dir / (execution_id or "artifacts")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        suffix = f"{_EXPIRY_MARK}{int(expires.timestamp())}" if expires else ""
        path = folder / f"{result_id}{suffix}.json"
        # Written under a temporary name first: a reader never sees half a file.
        partial = path.with_suffix(".part")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        partial.replace(path)
        return path.resolve().as_uri()

    def _s3(self) -> Any:
        if self._s3_client is None:
            bucket = self.settings.results_s3_bucket
            if not bucket:
                raise InputError("output.store.kind s3 needs NOETL_RESULTS_S3_BUCKET")
            try:
                import boto3  # type: ignore[import-untyped]
            except ImportError as exc:
                raise InputError("output.store.kind s3 needs boto3: pip install 'noetl[aws]'") from exc
            self._s3_client = boto3.client("s3", endpoint_url=self.settings.results_s3_endpoint)
        return self._s3_client

    def _write_s3(self, data: bytes, execution_id: str | None, result_id: str) -> str:
        bucket = self.settings.results_s3_bucket
        key = f"{self.settings.results_s3_prefix.strip('/')}/{execution_id or 'artifacts'}/{result_id}.json"
        self._s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
        return f"s3://{bucket}/{key}"

    # reading ---------------------------------------------------------------------------
    def read(self, uri: str, fresh: bool = False) -> Any:
        """The decoded result at ``uri`` (synchronous: the loader templates resolve through).
        ``fresh``: a copy of its own, for a caller that may change it (a tool's inputs)."""
        if uri.startswith(LOOP_PREFIX):
            return self.read_items(uri, 0, NO_BOUND)  # a tool given a loop's results gets them all
        if fresh:
            return loads(self._read_bytes(uri))
        cached = self._cached(uri)
        if cached is not None:
            return cached
        return self._remember(uri, self._read_bytes(uri))

    def read_piece(self, uri: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the result at ``uri``, read without the rest (synchronous, like
        :meth:`read`): the pieces a result's layout names (results/layout.py)."""
        length = max(end - start, 0)
        if uri.startswith(DB_PREFIX):
            reader = getattr(self.store, "read_result_slice", None)
            if reader is None:
                return self._read_bytes(uri)[start:end]
            data = reader(uri[len(DB_PREFIX):], start, length)
            if data is None:
                raise NotFoundError(f"result {uri} not found (pruned, or stored by another NoETL)")
            return bytes(data)
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            try:
                with self._result_file(uri, parsed.path).open("rb") as handle:
                    handle.seek(start)
                    return handle.read(length)
            except FileNotFoundError:
                raise NotFoundError(f"result {uri} not found (pruned?)") from None
        if parsed.scheme == "s3" and length:
            body = self._s3().get_object(Bucket=parsed.netloc, Key=self._result_key(uri, parsed),
                                         Range=f"bytes={start}-{end - 1}")["Body"]
            return bytes(body.read())
        return self._read_bytes(uri)[start:end]  # memory: already in this process

    def read_items(self, uri: str, start: int, stop: int) -> list[Any]:
        """Items [start, stop) of a loop's results by reference (synchronous, like :meth:`read`)."""
        reader = getattr(self.store, "read_loop_reports", None)
        if reader is None:
            raise StoreError(f"result {uri}: this store cannot read a loop's results while a template renders")
        return loops.read_items(reader, uri, start, stop)

    async def fetch(self, uri: str) -> Any:
        if uri.startswith(LOOP_PREFIX):
            return [item async for page in loops.fetch_pages(self.store, uri) for item in page]
        cached = self._cached(uri)
        if cached is not None:
            return cached
        if uri.startswith(DB_PREFIX):
            record = await self.store.get_result(uri[len(DB_PREFIX):])
            if record is None:
                raise NotFoundError(f"result {uri} not found (pruned, or stored by another NoETL)")
            return self._remember(uri, record.data)
        return self._remember(uri, await asyncio.to_thread(self._read_bytes, uri))

    async def stream_bytes(self, uri: str) -> AsyncIterator[bytes]:
        """The result's JSON text as stored, in slices where the store can read it so (PostgreSQL's
        result table); a missing result is found before the first slice is yielded, so a caller
        can answer with an error rather than a broken stream (see :func:`prefetched`)."""
        slices = getattr(self.store, "iter_result_bytes", None)
        if slices is not None and uri.startswith(DB_PREFIX):
            async for chunk in slices(uri[len(DB_PREFIX):]):
                yield chunk
            return
        yield await self.fetch_bytes(uri)

    async def fetch_bytes(self, uri: str) -> bytes:
        """The result's JSON text as stored (for writing it out without decoding it)."""
        if uri.startswith(LOOP_PREFIX):
            return b"".join([chunk async for chunk in loop_json(self.store, uri)])
        if uri.startswith(DB_PREFIX):
            record = await self.store.get_result(uri[len(DB_PREFIX):])
            if record is None:
                raise NotFoundError(f"result {uri} not found (pruned, or stored by another NoETL)")
            return record.data
        return await asyncio.to_thread(self._read_bytes, uri)

    def _read_bytes(self, uri: str) -> bytes:
        if uri.startswith(DB_PREFIX):
            reader = getattr(self.store, "read_result", None)
            if reader is None:
                raise StoreError(f"result {uri}: this store cannot be read while a template renders")
            record = reader(uri[len(DB_PREFIX):])
            if record is None:
                raise NotFoundError(f"result {uri} not found (pruned, or stored by another NoETL)")
            return bytes(record.data)
        if uri.startswith(MEMORY_PREFIX):
            data = self._memory.get(uri[len(MEMORY_PREFIX):])
            if data is None:
                raise NotFoundError(f"result {uri} is gone: `kind: memory` results live only as long as their run")
            return data
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            try:
                return self._result_file(uri, parsed.path).read_bytes()
            except FileNotFoundError:
                raise NotFoundError(f"result {uri} not found (pruned?)") from None
        if parsed.scheme == "s3":
            body = self._s3().get_object(Bucket=parsed.netloc, Key=self._result_key(uri, parsed))["Body"]
            return bytes(body.read())
        raise InputError(f"unknown result reference {uri!r}")

    # A reference is data that a payload, an event or a playbook can carry, naming any file or
    # object: only what this storage writes (its directory, its bucket and prefix) is a result.
    def _result_file(self, uri: str, path: str) -> Path:
        root = self.settings.result_dir.resolve()
        target = Path(unquote(path)).resolve()
        if not target.is_relative_to(root):
            raise InputError(f"result {uri} is outside the results directory ({root})")
        return target

    def _result_key(self, uri: str, parsed: ParseResult) -> str:
        key = parsed.path.lstrip("/")
        prefix = self.settings.results_s3_prefix.strip("/")
        within = key.startswith(f"{prefix}/") if prefix else True
        if parsed.netloc != self.settings.results_s3_bucket or not within or ".." in key.split("/"):
            raise InputError(f"result {uri} is outside the results bucket "
                             f"(s3://{self.settings.results_s3_bucket}/{prefix})")
        return key

    def _cached(self, uri: str) -> Any:
        with self._lock:
            entry = self._cache.get(uri)
            if entry is None:
                return None
            self._cache.move_to_end(uri)
            return entry[1]

    def _remember(self, uri: str, data: bytes) -> Any:
        value = loads(data)
        size = len(data)
        if size > CACHE_BYTES // 4:
            return value  # too big to keep: it would push everything else out
        with self._lock:
            if uri not in self._cache:
                self._cache[uri] = (size, value)
                self._cache_bytes += size
            while self._cache_bytes > CACHE_BYTES and self._cache:
                _, (old_size, _) = self._cache.popitem(last=False)
                self._cache_bytes -= old_size
        return value

    # pruning ---------------------------------------------------------------------------
    async def prune(self, *, older_than: datetime | None = None, now: datetime | None = None) -> int:
        """Delete results created before ``older_than`` and every result whose ttl has passed (the
        store's table and the disk folder); return how many were deleted."""
        now = now or utc_now()
        deleted = await self.store.delete_results(
            created_before=older_than.isoformat() if older_than else None, expired_by=now.isoformat())
        return deleted + await asyncio.to_thread(self._prune_files, older_than, now)

    def _prune_files(self, older_than: datetime | None, now: datetime) -> int:
        root = self.settings.result_dir
        if not root.is_dir():
            return 0
        deleted = 0
        for path in root.glob("*/*.json"):
            if _file_expired(path, older_than, now):
                path.unlink(missing_ok=True)
                deleted += 1
        for folder in root.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return deleted


def _file_expired(path: Path, older_than: datetime | None, now: datetime) -> bool:
    stem = path.name[: -len(".json")]
    if _EXPIRY_MARK in stem:
        expiry = stem.rsplit(_EXPIRY_MARK, 1)[1]
        if expiry.isdigit() and int(expiry) <= now.timestamp():
            return True
    return older_than is not None and path.stat().st_mtime < older_than.timestamp()


async def loop_json(store: Store, uri: str) -> AsyncIterator[bytes]:
    """A loop's results by reference as one JSON array, written a page at a time."""
    yield b"["
    first = True
    async for page in loops.fetch_pages(store, uri):
        body = dumps(page)[1:-1]
        if body:
            yield body if first else b"," + body
            first = False
    yield b"]"


_storages: dict[int, ResultStorage] = {}


def storage_for(store: Store, *, shared: bool = False) -> ResultStorage:
    """The process's one :class:`ResultStorage` per store (its memory kind and cache are shared by
    every execution the process runs on that store, children included)."""
    storage = _storages.get(id(store))
    if storage is None or storage.store is not store:
        storage = ResultStorage(store, shared=shared)
        _storages[id(store)] = storage
        while len(_storages) > 16:
            _storages.pop(next(iter(_storages)))
    return storage


async def prefetched(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` with its first chunk already read: an error reading it (a missing result) is
    raised here, before a response has started, instead of breaking a stream after its headers."""
    first = await anext(chunks, None)

    async def replay() -> AsyncIterator[bytes]:
        if first is not None:
            yield first
        async for chunk in chunks:
            yield chunk

    return replay()
