"""What a runtime offers the tools of one execution: credentials, secrets, results storage, child playbooks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noetl.dsl.parse import LoadedPlaybook, load_playbook, load_playbook_text
from noetl.dsl.render import RenderContext, render_data
from noetl.errors import NoetlError, NotFoundError, PlaybookError, TemplateError, ToolError
from noetl.results.storage import ResultStorage, storage_for
from noetl.runtime.childcalls import check_child_call
from noetl.runtime.request import RunRequest
from noetl.sandbox import confine
from noetl.secrets import SecretResolver
from noetl.tools.base import ToolCall

if TYPE_CHECKING:
    from noetl.store.base import Store

# Runs a child execution to its end and returns its status document (the local runtime's `run`).
ChildRunner = Callable[[RunRequest], Awaitable[dict[str, Any]]]

# How long a command whose child was cancelled together with this execution waits for this
# execution's watcher (which polls every 0.25 s) to stop it, before reporting the child's end.
CANCELLED_WITH_PARENT_GRACE_SECONDS = 2.5
_SECRET_NAME = re.compile(r"secret\.([A-Za-z_][A-Za-z0-9_]*)")


class ExecutionServices:
    """One per execution, on both runtimes: resolves secrets up front, gives tools credentials and
    the results storage, and runs child playbooks through ``run_child`` (the local runtime runs them
    in-process; the distributed runtime's workers override :meth:`run_child_playbook`)."""

    shares_results = False  # workers: results stored by reference must be readable by other processes

    def __init__(self, store: Store, request: RunRequest, execution_id: str, *,
                 run_child: ChildRunner | None = None) -> None:
        self.store = store
        self._run_child = run_child
        self.request = request
        self.execution_id = execution_id
        self.resolver = SecretResolver(self.get_credential)
        self.redactor = self.resolver.redactor
        self.redactor.add(*request.secrets)
        self.keychain: dict[str, Any] = {}
        self.secret = SecretNamespace()
        self.log_batcher: Any = None  # the runtime's LogBatcher: calls stream their output as logs

    @property
    def results(self) -> ResultStorage:
        """Where this execution's results stored by reference go (one per store and process)."""
        return storage_for(self.store, shared=self.shares_results)

    def globals_layer(self) -> dict[str, Any]:
        # The dicts are filled by prepare(); the engine holds them by reference.
        return {"keychain": self.keychain, "secret": self.secret}

    async def prepare(self) -> None:
        """Resolve the keychain and every `secret.NAME` the playbook mentions (templates render sync)."""
        playbook = self.request.playbook
        for name in sorted(set(_SECRET_NAME.findall(self.request.playbook_text or ""))):
            try:
                self.secret.resolved[name] = await self.resolver.lookup(name)
            except NotFoundError as exc:
                self.secret.missing[name] = str(exc)  # an error only if a template really uses it
        if playbook.keychain:
            from noetl.secrets import keychain_entries, resolve_keychain

            workload = {**playbook.workload, **self.request.payload}
            context = RenderContext({"workload": workload, "secret": self.secret, "keychain": self.keychain}, workload)
            # One entry at a time, in order: an entry's fields may read the entries before it
            # (an oauth2 entry's client_id: "{{ keychain.api_credentials.client_id }}").
            for index, entry in enumerate(keychain_entries(playbook.keychain)):
                rendered = render_data(entry, context, where=f"keychain[{index}]")
                self.keychain.update(await resolve_keychain([rendered], self.resolver, self))

    async def get_credential(self, name: str) -> dict[str, Any]:
        from noetl.credentials import get_credential
        from noetl.secrets import sensitive_values

        credential = await get_credential(self.store, name)
        self.redactor.add(sensitive_values(credential.get("data")))
        return credential

    async def run_child_playbook(self, *, path: str, payload: dict[str, Any], version: int | None,
                                 return_step: str | None, call: ToolCall) -> Any:
        ancestry = (*self.request.chain, self.request.playbook.path)
        check_child_call(ancestry, path)
        loaded, text, base_dir = await self._resolve_child(path, version)
        child = loaded.require()
        check_child_call(ancestry, child.path)
        if return_step and return_step not in child.step_map():
            raise ToolError(f"return_step {return_step!r} is not a step of {child.path!r}", kind="config")
        request = RunRequest(playbook=child, playbook_text=text, playbook_dir=base_dir, payload=dict(payload or {}),
                             parent_execution_id=self.execution_id, depth=self.request.depth + 1,
                             chain=ancestry, strict=self.request.strict, secrets=child_secrets(self.redactor, call))
        if self._run_child is None:
            raise ToolError("this runtime cannot run child playbooks here", kind="config")
        doc = await self._run_child(request)
        if doc["status"] == "cancelled" and await self._cancelled_in_store():
            # The child was cancelled with this execution: this execution's own watcher stops this
            # command within a poll. Reporting the child's end as a failure first would race it and
            # turn the cancel into a failure.
            await asyncio.sleep(CANCELLED_WITH_PARENT_GRACE_SECONDS)
        if doc["status"] != "completed":
            raise ToolError(f"child playbook {child.path!r} (execution {doc['execution_id']}) {doc['status']}: "
                            f"{doc.get('error')}", kind="playbook", details={"child_execution_id": doc["execution_id"]})
        if return_step:
            return (doc["steps"].get(return_step) or {}).get("result")
        return doc["result"]

    async def _cancelled_in_store(self) -> bool:
        record = await self.store.get_execution(self.execution_id)
        return record is not None and record.status == "cancelled"

    async def _resolve_child(self, path: str, version: int | None) -> tuple[LoadedPlaybook, str, Path | None]:
        base = self.request.playbook_dir
        if path.endswith((".yaml", ".yml")):
            file = Path(path) if Path(path).is_absolute() or base is None else base / path
            if not file.exists() and Path(path).exists():
                file = Path(path)
            return self._load_file(confine(file, what="playbook file", extra_roots=[base]), path)
        entry = await self.store.get_catalog(path, version)
        if entry is not None:
            return load_playbook_text(entry.content, f"catalog://{path}@{entry.version}", base), entry.content, base
        for candidate in _beside(base, path):
            if candidate.exists():
                return self._load_file(confine(candidate, what="playbook file", extra_roots=[base]), path)
        raise ToolError(f"playbook {path!r} not found in the catalog"
                        f"{f' or beside {base}' if base else ''}", kind="not_found")

    @staticmethod
    def _load_file(file: Path, path: str) -> tuple[LoadedPlaybook, str, Path | None]:
        try:
            loaded = load_playbook(str(file))
        except PlaybookError as exc:
            if "file not found" in str(exc):
                raise ToolError(f"child playbook file {path!r} not found ({file})", kind="not_found") from None
            raise
        return loaded, loaded.source.text, loaded.base_dir


class SecretNamespace(Mapping[str, Any]):
    """`{{ secret.NAME }}`: resolved values; a name that could not be resolved fails its template."""

    def __init__(self) -> None:
        self.resolved: dict[str, Any] = {}
        self.missing: dict[str, str] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self.resolved:
            return self.resolved[name]
        raise TemplateError(self.missing.get(name) or f"secret {name!r} not found")

    def get(self, name: str, default: Any = None) -> Any:
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.resolved)

    def __len__(self) -> int:
        return len(self.resolved)

    def __contains__(self, name: object) -> bool:
        return name in self.resolved or name in self.missing


def child_secrets(redactor: Any, call: ToolCall) -> frozenset[str]:
    """What a child playbook's log must redact: what its parent knows is secret, and the values the
    calling command resolved so far (a `secrets` task or a credential earlier in its pipeline),
    which its parent's redactor learns only with the command's report."""
    return frozenset(redactor.secrets) | frozenset(call.secrets)


def _beside(base: Path | None, path: str) -> list[Path]:
    if base is None:
        return [Path(f"{path}.yaml")]
    name = path.rsplit("/", 1)[-1]
    return [base / f"{path}.yaml", base / f"{name}.yaml", base / name / f"{name}.yaml"]


__all__ = ["ExecutionServices", "NoetlError", "NotFoundError"]
