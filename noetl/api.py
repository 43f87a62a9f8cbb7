"""The library API behind the CLI and ``noetl.run`` / ``noetl.validate``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noetl.dsl.parse import LoadedPlaybook, load_playbook, load_playbook_text
from noetl.dsl.problems import Problem
from noetl.errors import InputError, NoetlError, NotFoundError, PlaybookError
from noetl.limits import MAX_DEPTH
from noetl.runtime.local import EventListener, LocalRuntime
from noetl.runtime.request import RunRequest
from noetl.safejson import check_value
from noetl.settings import load_settings
from noetl.store.base import Store

if TYPE_CHECKING:
    from noetl.store.records import TriggerRecord

log = logging.getLogger("noetl.triggers")

CATALOG_SCHEME = "catalog://"


def parse_payload(raw: str | None, field: str = "--payload") -> dict[str, Any]:
    """``--payload``: a JSON object, or ``@file.json``; errors name ``field`` (the console's form
    field is ``payload``)."""
    if not raw:
        return {}
    where = field
    text = raw
    if raw.startswith("@"):
        where = raw[1:]
        try:
            text = Path(raw[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{field}: cannot read file {raw[1:]}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text, parse_constant=_not_a_number)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{where}: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None
    check_value(value, where)
    if not isinstance(value, dict):
        raise InputError(f"{where}: the payload must be a JSON object, got {type(value).__name__}")
    return value


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def apply_sets(payload: dict[str, Any], sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value``: the value is a YAML scalar; a dotted key sets a nested value."""
    out = json.loads(json.dumps(payload))
    for item in sets:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        if not key:
            raise InputError(f"--set {item!r}: empty key")
        from noetl.safeyaml import load_yaml  # here: a run without --set does not import YAML

        try:
            value = load_yaml(raw, f"--set {key}") if raw != "" else ""
        except NoetlError:
            value = raw  # not YAML: the text itself
        node = out
        parts = key.split(".")
        if len(parts) > MAX_DEPTH:
            raise InputError(f"--set {key[:40]}...: nested more than {MAX_DEPTH} levels deep")
        check_value(value, f"--set {key}")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def split_catalog_ref(ref: str) -> tuple[str, int | None]:
    body = ref[len(CATALOG_SCHEME):] if ref.startswith(CATALOG_SCHEME) else ref
    if "@" in body:
        path, version = body.rsplit("@", 1)
        if not version.isdigit():
            raise InputError(f"{ref}: version must be a number, got {version!r}")
        return path, int(version)
    return body, None


async def resolve_playbook(ref: str, store: Store) -> LoadedPlaybook:
    """A file path, YAML text, or ``catalog://path[@version]``. A bare catalog path that is not
    a file (``noetl exec batch_execution/multi_playbook_batch``, as the guides write it) is looked
    up in the catalog too. Loading goes through the cache of validated playbooks in NOETL_HOME (a
    playbook found there is a plain record of the model: a run needs no pydantic)."""
    cache_dir = playbook_cache_dir()
    if ref.startswith(CATALOG_SCHEME):
        path, version = split_catalog_ref(ref)
        entry = await store.get_catalog(path, version)
        if entry is None:
            at = f" version {version}" if version else ""
            raise NotFoundError(f"{ref}: no catalog entry for path {path!r}{at}")
        return load_playbook_text(entry.content, f"catalog://{path}@{entry.version}", cache_dir=cache_dir, records=True)
    if _may_be_catalog_path(ref):
        entry = await store.get_catalog(ref, None)
        if entry is not None:
            return load_playbook_text(entry.content, f"catalog://{ref}@{entry.version}", cache_dir=cache_dir, records=True)
        if os.path.isdir(ref):
            raise InputError(_directory_message(ref))
        if not os.path.lexists(ref):  # it was looked for as both: say so, not only "file not found"
            raise PlaybookError(f"{ref}: file not found, and no catalog entry has that path"
                                f" (register it with `noetl catalog register FILE`)")
    return load_playbook(ref, cache_dir=cache_dir, records=True)


def playbook_cache_dir() -> Path:
    """Where validated playbooks are kept (:mod:`noetl.dsl.cache`); deleting it is always safe."""
    return load_settings().home / "cache" / "playbooks"


def _directory_message(ref: str) -> str:
    files = sorted(p.name for p in Path(ref).iterdir() if p.suffix in (".yaml", ".yml"))
    hint = f": run a file ({ref.rstrip('/')}/{files[0]}) or register it first" if files else ""
    return f"{ref}: is a directory, and no catalog entry has that path{hint}"


def _may_be_catalog_path(ref: str) -> bool:
    # os.path.isfile, unlike Path.is_file, is False (not an error) for over-long YAML text. A directory
    # may share its name with a catalog path (`examples/hello` from the repository root): the catalog wins.
    return "\n" not in ref and not ref.endswith((".yaml", ".yml", ".json")) and not os.path.isfile(ref)


def _source_file(loaded: LoadedPlaybook) -> dict[str, Any]:
    """The file a run's playbook came from, kept in its first event so that `noetl status` can point
    an error at that file's line (a catalog entry or a text has no file: errors name its path)."""
    import os

    return {"source_file": loaded.source.file} if os.path.isfile(loaded.source.file) else {}


async def run_async(
    ref: str,
    *,
    store: Store,
    payload: dict[str, Any] | None = None,
    merge: bool = False,
    strict: bool = False,
    listener: EventListener | None = None,
    loaded: LoadedPlaybook | None = None,
    execution_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    loaded = loaded or await resolve_playbook(ref, store)
    playbook = loaded.require(strict=strict)
    runtime = LocalRuntime(store, listener=listener)
    request = RunRequest(playbook=playbook, playbook_text=loaded.source.text, playbook_dir=loaded.base_dir,
                         payload=payload or {}, merge=merge, strict=strict, execution_id=execution_id,
                         meta={**_source_file(loaded), **(meta or {})})
    try:
        document = await runtime.run(request)
    finally:
        from noetl.tools.base import shutdown_tools

        await shutdown_tools()
    await _fire_local_triggers(store, str(document.get("execution_id", "")))
    return document


async def _fire_local_triggers(store: Store, execution_id: str) -> None:
    """Completion triggers locally: the executions a finished run triggers run in this process."""
    from noetl.triggers import fire_matching

    source = await store.get_execution(execution_id) if execution_id else None
    if source is None:
        return

    async def start(trigger: TriggerRecord, new_id: str, payload: dict[str, Any]) -> None:
        try:
            await run_async(trigger.run_path, store=store, payload=payload, execution_id=new_id,
                            meta={"trigger": trigger.name, "triggered_by": execution_id})
        except NoetlError as exc:  # the run that fired the trigger keeps its own outcome
            log.warning("trigger %s for execution %s failed: %s", trigger.name, execution_id, exc)

    await fire_matching(store, source, start)


async def open_store(url: str | None = None) -> Store:
    from noetl.store.factory import open_local_store, store_from_url

    if url:
        store = store_from_url(url)
        await store.open()
        return store
    return await open_local_store(load_settings())


def run_playbook(playbook: str, payload: dict[str, Any] | None = None, merge: bool = False,
                 store_url: str | None = None, *, strict: bool = False) -> dict[str, Any]:
    """Run ``playbook`` (file path or YAML text) locally; return the status document.
    ``strict``: undefined template names are errors instead of warnings."""

    async def main() -> dict[str, Any]:
        store = await open_store(store_url)
        try:
            return await run_async(playbook, store=store, payload=payload, merge=merge, strict=strict)
        finally:
            await store.close()

    return run_coroutine_blocking(main())


def run_coroutine_blocking(coro: Any) -> Any:
    """``asyncio.run``, also from code that already runs an event loop (Jupyter, async apps):
    there the coroutine runs on a private loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def validate_playbook(playbook: str) -> list[Problem]:
    """Every problem in ``playbook`` (errors, warnings, notes); an unreadable file is one error."""
    try:
        return load_playbook(playbook).problems
    except PlaybookError as exc:
        return [Problem("error", str(exc).split(": ", 1)[0], str(exc).split(": ", 1)[-1])]
