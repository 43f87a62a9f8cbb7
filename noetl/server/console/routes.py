"""The console's pages, live streams and actions, mounted on a FastAPI app by ``install_console``.

Pages are rendered on the server from the store's read models; the page script only repaints
what the live stream sends (rendered and escaped here too) and posts actions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match

from noetl.engine.events import EXECUTION_STATUSES
from noetl.errors import InputError, NoetlError, NotFoundError
from noetl.server.console import readmodel, source
from noetl.server.console.auth import COOKIE, ConsoleAuthError, RoleLookup, allows, page_role, require_action
from noetl.server.console.graph import playbook_graph
from noetl.server.console.live import LiveStreams
from noetl.server.console.render import HERE, diff_lines, environment, workload_fields
from noetl.server.console.source import ConsoleSource, ExecutionFilter, parse_since

PAGE_SIZE = 50
# The last page of the list: an offset of a million executions, the API's bound (a page of
# 99999999999999999999999 was PostgreSQL's "bigint out of range", a 503).
MAX_PAGE = 1_000_000 // PAGE_SIZE
# Event rows on an execution's page, and per "Show the next" click: 2,000 rows made a 10,000-item
# loop's page half a megabyte of table that Chromium took over a second to lay out.
EVENT_ROWS = 200
MAX_STREAM_ROWS = 2000  # event rows one live update carries at most
MAX_PAGE_LOG_LINES = 5000  # streamed lines on an execution's page (`noetl logs` prints them all)
POLL_SECONDS = 0.5


@dataclass(slots=True)
class ConsoleConfig:
    source: Callable[[Request], ConsoleSource]
    roles: Callable[[Request], RoleLookup | None]
    where: str  # shown in the header: which store this console is a view of
    server: bool  # the distributed runtime (the REST API is beside the console)


def install_console(app: FastAPI, config: ConsoleConfig) -> None:
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(_router(app, config))


class _Pages:
    def __init__(self, app: FastAPI, config: ConsoleConfig) -> None:
        self.app = app
        self.config = config
        self.env = environment()
        self.live = LiveStreams()

    def html(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        role = page_role(request, self.config.roles(request))
        base = {"base": "", "where": self.config.where, "role": role if self.config.roles(request) else None,
                "auth_enabled": self.config.roles(request) is not None, "api_docs": self.config.server}
        body = self.env.get_template(template).render(**base, **context)
        return HTMLResponse(body, status_code=status_code, headers=_SECURITY_HEADERS)

    def error(self, request: Request, exc: NoetlError) -> HTMLResponse:
        """A page's answer to a bad address: 404 for what does not exist, 400 for a malformed value."""
        from noetl.server.errors import status_for

        status = status_for(exc)
        return self.html(request, "error.html", status, title="Not found" if status == 404 else "Bad request",
                         message=str(exc).splitlines()[0])

    def fragment(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(base="", **context)

    def viewer(self, request: Request) -> str | None:
        return page_role(request, self.config.roles(request))

    def serves(self, path: str, method: str = "POST") -> bool:
        """Whether this app answers ``method path`` (rerun and resume exist only where the API has
        them). Asked of the app's router, as a request would be: included routers are not flattened
        into ``app.routes``, so comparing route paths there missed them (the server's console
        showed Rerun and Resume as not available)."""
        scope = {"type": "http", "path": path, "method": method, "root_path": ""}
        return any(route.matches(scope)[0] == Match.FULL for route in self.app.router.routes)


# No inline script or style runs, and nothing loads from elsewhere: escaped user data that slipped
# through would still not execute.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _router(app: FastAPI, config: ConsoleConfig) -> APIRouter:
    pages = _Pages(app, config)
    router = APIRouter(include_in_schema=False)

    def guard(request: Request) -> Response | None:
        if pages.viewer(request) is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return None

    @router.get("/login")
    async def login(request: Request, next: str = "/") -> Response:
        # A token this browser holds that the server does not accept (mistyped, or revoked): say so,
        # rather than show the same empty form again.
        refused = COOKIE in request.cookies and pages.viewer(request) is None
        return pages.html(request, "login.html", next=_page_of_this_console(next), refused=refused)

    @router.get("/")
    async def executions(request: Request, status: str = "", path: str = "", since: str = "", id: str = "",
                         page: str = "") -> Response:
        if (redirect := guard(request)) is not None:
            return redirect
        if id.strip():
            return RedirectResponse(f"/executions/{id.strip()}", status_code=303)
        number, page_problem = _page_number(page)
        flt, problem = _filter(status, path, since, number)
        problem = problem or page_problem
        await config.source(request).settle()
        rows, more = await source.list_executions(config.source(request).store, flt)
        query = {"status": status, "path": path, "since": since}
        return pages.html(request, "executions.html", nav="executions", rows=rows, more=more, flt=flt,
                          since=since, problem=problem, statuses=EXECUTION_STATUSES, filtered=bool(status or path or since),
                          prev_url=_url("/", query, number - 1), next_url=_url("/", query, number + 1),
                          live_url=_url("/console/stream-list", query, number))

    @router.get("/executions/{execution_id}/results/{step}")
    async def step_result(request: Request, execution_id: str, step: str) -> Response:
        """A step's whole result as JSON, for the page's *as JSON* link: the browser sends the
        console's cookie, which the API does not take, and `noetl ui` has no API."""
        if (redirect := guard(request)) is not None:
            return redirect
        from noetl.results.read import step_result_chunks

        try:
            chunks = await step_result_chunks(config.source(request).store, execution_id, step)
        except NoetlError as exc:
            return pages.error(request, exc)
        return StreamingResponse(chunks, media_type="application/json", headers={"X-Content-Type-Options": "nosniff"})

    @router.get("/executions/{execution_id}")
    async def execution(request: Request, execution_id: str) -> Response:
        if (redirect := guard(request)) is not None:
            return redirect
        store = config.source(request).store
        await config.source(request).settle()
        try:
            record = await source.execution_or_404(store, execution_id)
        except NotFoundError as exc:
            return pages.html(request, "error.html", 404, title="Not found", message=str(exc))
        playbook = _playbook(record.playbook)
        names = [s.step for s in playbook.workflow] if playbook else []
        folded = await _fold_log(store, execution_id, names)
        events, truncated, steps = folded.events, folded.truncated, folded.steps.views
        streamed = readmodel.streamed_lines(await store.list_logs(execution_id, limit=MAX_PAGE_LOG_LINES))
        logs: dict[str, list[readmodel.LogLine]] = {}
        for line in readmodel.merged(folded.carried_lines, streamed):
            logs.setdefault(line.step, []).append(line)
        doc = source.status_of(events) if not truncated else {"status": record.status, "error": record.error,
                                                               "result": record.result}
        doc["status"] = record.status
        children = await store.list_executions(parent_execution_id=execution_id, limit=200)
        can_execute = allows(pages.viewer(request), "execute")
        return pages.html(
            request, "execution.html", nav="executions", record=record, doc=doc, events=events,
            events_truncated=truncated, last_event_id=folded.last_event_id, event_rows=EVENT_ROWS,
            last_log_id=streamed[-1].log_id if streamed else 0,
            graph=playbook_graph(playbook) if playbook else None, steps=steps, logs=logs,
            errors_at=_error_lines(record.playbook, record.path, steps),
            failure_at=_failure_lines(record.playbook, record.path, steps), timeline=folded.timeline.timeline(),
            children=children, can_execute=can_execute,
            catalog_link=await _catalog_link(store, record.path),
            action_urls={action: _recovery_url(pages, config, action, execution_id) for action in ("rerun", "resume")})

    @router.get("/console/stream/{execution_id}")
    async def stream_execution(request: Request, execution_id: str, after: int = 0, after_log: int = 0) -> Response:
        if pages.viewer(request) is None:
            return JSONResponse({"error": "log in first"}, status_code=401)
        src = config.source(request)
        record = await src.store.get_execution(execution_id)
        if record is None:
            return JSONResponse({"error": f"execution {execution_id} not found"}, status_code=404)
        names = [s.step for s in p.workflow] if (p := _playbook(record.playbook)) else []
        return pages.live.response(_execution_updates(request, pages, src, execution_id, names, after, after_log))

    @router.get("/console/events/{execution_id}")
    async def more_events(request: Request, execution_id: str, after: int = 0) -> Response:
        """The next rows of an execution's event table ("Show the next ... events")."""
        if pages.viewer(request) is None:
            return JSONResponse({"error": "log in first"}, status_code=401)
        store = config.source(request).store
        if await store.get_execution_state(execution_id) is None:
            return JSONResponse({"error": f"execution {execution_id} not found"}, status_code=404)
        found = await source.events(store, execution_id, after_id=max(after, 0), limit=EVENT_ROWS + 1)
        rows = found[:EVENT_ROWS]
        return JSONResponse({"rows": pages.fragment("event_rows.html", events=rows),
                             "last_event_id": rows[-1].event_id if rows else after, "more": len(found) > EVENT_ROWS})

    @router.get("/console/stream-list")
    async def stream_executions(request: Request, status: str = "", path: str = "", since: str = "",
                                page: int = 0) -> Response:
        if pages.viewer(request) is None:
            return JSONResponse({"error": "log in first"}, status_code=401)
        flt, _ = _filter(status, path, since, page)
        return pages.live.response(_list_updates(request, pages, config.source(request), flt))

    @router.get("/catalog")
    async def catalog(request: Request) -> Response:
        if (redirect := guard(request)) is not None:
            return redirect
        entries = await config.source(request).store.list_catalog()
        return pages.html(request, "catalog.html", nav="catalog", entries=entries)

    @router.get("/catalog/entry")
    async def catalog_entry(request: Request, path: str, version: str = "") -> Response:
        if (redirect := guard(request)) is not None:
            return redirect
        store = config.source(request).store
        try:
            entry = await source.catalog_entry(store, path, _int(version, "version"))
            versions = await source.catalog_versions(store, path)
        except NoetlError as exc:
            return pages.error(request, exc)
        playbook = _playbook(entry.content) if entry.kind == "Playbook" else None
        fields = workload_fields(playbook.workload) if playbook else []
        return pages.html(request, "entry.html", nav="catalog", entry=entry, versions=versions, fields=fields,
                          can_execute=allows(pages.viewer(request), "execute"))

    @router.get("/catalog/diff")
    async def catalog_diff(request: Request, path: str, a: str, b: str) -> Response:
        if (redirect := guard(request)) is not None:
            return redirect
        store = config.source(request).store
        try:
            old = await source.catalog_entry(store, path, _int(a, "a"))
            new = await source.catalog_entry(store, path, _int(b, "b"))
        except NoetlError as exc:
            return pages.error(request, exc)
        lines = diff_lines(old.content, new.content, f"{path}@{old.version}", f"{path}@{new.version}")
        return pages.html(request, "diff.html", nav="catalog", path=path, a=old.version, b=new.version, lines=lines)

    @router.get("/credentials")
    async def credentials(request: Request) -> Response:
        if (redirect := guard(request)) is not None:
            return redirect
        records = await source.credentials(config.source(request).store)
        return pages.html(request, "credentials.html", nav="credentials", credentials=records)

    @router.get("/schedules")
    async def schedules(request: Request) -> Response:
        if (redirect := guard(request)) is not None:
            return redirect
        from noetl.scheduling.service import next_fire

        store = config.source(request).store
        schedules = await store.list_schedules()
        fires = {s.name: await store.list_fires(s.name, limit=5) for s in schedules}
        next_fires = {s.name: next_fire(s) if s.enabled else None for s in schedules}
        return pages.html(request, "schedules.html", nav="schedules", schedules=schedules, fires=fires,
                          next_fires=next_fires, can_execute=allows(pages.viewer(request), "execute"), triggers=await store.list_triggers(), hooks=await store.list_hooks())

    @router.post("/console/actions/run")
    async def run(request: Request) -> Response:
        async def act() -> dict[str, Any]:
            require_action(request, config.roles(request), "execute")
            body = await _json_body(request)
            src = config.source(request)
            entry = await source.catalog_entry(src.store, str(body.get("path") or ""),
                                               _int(str(body.get("version") or ""), "version"))
            execution_id = await src.start(entry, _payload(body))
            return {"execution_id": execution_id, "url": f"/executions/{execution_id}"}

        return await _answer(act)

    @router.post("/console/actions/trigger-schedule")
    async def trigger_schedule(request: Request) -> Response:
        """A schedule's "Run now" (`noetl schedule trigger`), on the server's workers or in `noetl ui`."""
        async def act() -> dict[str, Any]:
            require_action(request, config.roles(request), "execute")
            name = (await _json_body(request)).get("name")
            if not isinstance(name, str) or not name:
                raise InputError("name: the schedule's name")
            execution_id = await config.source(request).trigger_schedule(name)
            return {"execution_id": execution_id, "url": f"/executions/{execution_id}"}

        return await _answer(act)

    @router.post("/console/actions/cancel/{execution_id}")
    async def cancel(request: Request, execution_id: str) -> Response:
        async def act() -> dict[str, Any]:
            require_action(request, config.roles(request), "execute")
            src = config.source(request)
            await source.execution_or_404(src.store, execution_id)
            return await src.cancel(execution_id)

        return await _answer(act)

    if not config.server:
        @router.post("/console/actions/{action}/{execution_id}")
        async def recover(request: Request, action: str, execution_id: str) -> Response:
            """`noetl ui`: rerun and resume run in this process (the server has them in its API)."""
            async def act() -> dict[str, Any]:
                require_action(request, config.roles(request), "execute")
                src = config.source(request)
                await source.execution_or_404(src.store, execution_id)
                run = {"rerun": getattr(src, "rerun", None), "resume": getattr(src, "resume", None)}.get(action)
                if run is None:
                    raise NotFoundError(f"no console action {action!r}")
                result: dict[str, Any] = await run(execution_id)
                return result

            return await _answer(act)

    return router


def _recovery_url(pages: _Pages, config: ConsoleConfig, action: str, execution_id: str) -> str | None:
    """Where the page's Rerun / Resume button posts: the server's API, or on `noetl ui` the console."""
    if not config.server:
        return f"/console/actions/{action}/{execution_id}"
    url = f"/api/executions/{execution_id}/{action}"
    return url if pages.serves(url) else None


async def _answer(act: Callable[[], Any]) -> Response:
    """An action's JSON answer; the user's mistakes are 4xx with one line, never a 500."""
    from noetl.server.errors import status_for

    try:
        return JSONResponse(await act())
    except ConsoleAuthError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    except NoetlError as exc:
        return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=status_for(exc))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InputError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


def _payload(body: dict[str, Any]) -> dict[str, Any]:
    """The run form: a JSON payload, then each field as ``--set key=value`` would read it."""
    from noetl.api import apply_sets, parse_payload

    raw = body.get("payload") or ""
    if not isinstance(raw, str) or raw.startswith("@"):
        raise InputError("payload: a JSON object")
    sets = body.get("set") or {}
    if not isinstance(sets, dict):
        raise InputError("set: a mapping of field to value")
    return apply_sets(parse_payload(raw, "payload"), [f"{key}={value}" for key, value in sets.items()])


def _filter(status: str, path: str, since: str, page: int) -> tuple[ExecutionFilter, str | None]:
    problem = None
    if status and status not in EXECUTION_STATUSES:
        problem, status = f"unknown status {status!r}: one of {', '.join(EXECUTION_STATUSES)}", ""
    try:
        since_time = parse_since(since) if since else None
    except InputError as exc:
        problem, since_time = str(exc), None
    page = min(max(0, page), MAX_PAGE)
    return ExecutionFilter(status or None, path or None, since_time, PAGE_SIZE, page * PAGE_SIZE), problem


def _page_number(value: str) -> tuple[int, str | None]:
    """The list's page from its address; a page that is not a number shows the first page, saying so
    (a hand-edited address gets the page with a line, not the API's JSON error)."""
    text = value.strip()
    if not text:
        return 0, None
    try:
        return int(text), None
    except ValueError:
        return 0, f"page {value!r} is not a number: showing the first page"


def _int(value: str, name: str) -> int | None:
    if value in ("", "latest"):
        return None
    if not value.isdigit():
        raise InputError(f"{name} must be a version number, got {value!r}")
    return int(value)


def _url(path: str, query: dict[str, str], page: int) -> str:
    from urllib.parse import urlencode

    params = {k: v for k, v in query.items() if v}
    if page > 0:
        params["page"] = str(page)
    return f"{path}?{urlencode(params)}" if params else path


def _playbook(text: str) -> Any:
    from noetl.dsl.parse import load_playbook_text

    if not text:
        return None
    try:
        return load_playbook_text(text, "<playbook>").require()
    except NoetlError:
        return None


async def _catalog_link(store: Any, path: str) -> str | None:
    from urllib.parse import quote

    return f"/catalog/entry?path={quote(path)}" if path and await store.get_catalog(path) else None


def _error_lines(playbook_text: str, file: str, steps: dict[str, readmodel.StepView]) -> dict[str, str]:
    from noetl.dsl.codelines import error_location

    out = {}
    for name, view in steps.items():
        if view.error and (where := error_location(playbook_text, name, view.error, file)):
            out[name] = where
    return out


def _failure_lines(playbook_text: str, file: str, steps: dict[str, readmodel.StepView]) -> dict[str, str]:
    from noetl.dsl.codelines import error_location

    out = {}
    for name, view in steps.items():
        for index, error in view.failures:
            if where := error_location(playbook_text, name, error, file):
                out[f"{name}/{index}"] = where
    return out


def _page_of_this_console(target: str) -> str:
    """``target`` when it is a path of this console, else ``/``. To a browser ``//host/...`` is
    another site, and so are ``/\\host`` and a path with a tab or newline after its first ``/``
    (browsers drop those): the login page would send the token just typed there."""
    if not target.startswith("/") or target.startswith("//") or any(c == "\\" or c < " " for c in target):
        return "/"
    return target


def _message(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


async def _execution_updates(request: Request, pages: _Pages, src: ConsoleSource, execution_id: str,
                             names: list[str], after: int, after_log: int = 0) -> AsyncIterator[str]:
    """Each poll's new events (as table rows), every step's status and loop progress, the lines
    calls printed meanwhile (streamed while they run), then ``end``."""
    store = src.store
    steps = readmodel.StepFold(names)
    last = 0
    async for page in source.head_pages(store, execution_id):
        steps.add(page)
        last = page[-1].event_id
    # The events after ``after``, as table rows (whole events: the table shows their meta).
    rows: list[Any] = await source.events(store, execution_id, after_id=after, limit=MAX_STREAM_ROWS) if last > after else []
    lines = await _new_lines(store, execution_id, after_log)
    quiet = 0.0
    while not await request.is_disconnected():
        await src.settle()
        # The light state (status, last event id), not the row with its playbook and result: this
        # runs every POLL_SECONDS for each open page, and events are read only when there are new
        # ones. Read before the events, a terminal status comes with every event before it.
        state = await store.get_execution_state(execution_id)
        if state is not None and state.last_event_id > last:
            fresh = await source.events(store, execution_id, after_id=last, limit=source.EVENT_PAGE)
            steps.add(fresh)
            rows.extend(fresh[:max(MAX_STREAM_ROWS - len(rows), 0)])
            last = fresh[-1].event_id if fresh else last
        status = state.status if state else "unknown"
        if rows or lines or quiet >= 15:
            yield _message("update", {
                "status": status,
                "steps": {name: view.live() for name, view in steps.views.items()},
                "rows": pages.fragment("event_rows.html", events=rows),
                "logs": [line.to_dict() for line in lines],
                "last_event_id": last})
            quiet = 0.0
        if state is None or (status != "running" and state.last_event_id <= last):
            yield _message("end", {"status": status})
            return
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
        rows = []
        after_log = lines[-1].log_id or after_log if lines else after_log
        lines = await _new_lines(store, execution_id, after_log)


@dataclass(slots=True)
class _FoldedLog:
    """An execution's whole event log folded a page at a time, for its page: step views and the
    timeline from every event, the event table and the lines events carry bounded."""

    steps: readmodel.StepFold
    timeline: readmodel.TimelineFold
    events: list[Any] = field(default_factory=list)  # the first EVENT_ROWS, whole, for the table
    truncated: bool = False
    carried_lines: list[readmodel.LogLine] = field(default_factory=list)
    last_event_id: int = 0


async def _fold_log(store: Any, execution_id: str, names: list[str]) -> _FoldedLog:
    folded = _FoldedLog(readmodel.StepFold(names), readmodel.TimelineFold())
    first = await source.events(store, execution_id, limit=EVENT_ROWS + 1)  # the table's rows, whole
    folded.events, folded.truncated = first[:EVENT_ROWS], len(first) > EVENT_ROWS
    async for page in source.head_pages(store, execution_id):
        folded.steps.add(page)
        folded.timeline.add(page)
        if len(folded.carried_lines) < MAX_PAGE_LOG_LINES:
            folded.carried_lines.extend(readmodel.log_lines(page)[:MAX_PAGE_LOG_LINES - len(folded.carried_lines)])
        folded.last_event_id = page[-1].event_id
    return folded


async def _new_lines(store: Any, execution_id: str, after_log: int) -> list[readmodel.LogLine]:
    return readmodel.streamed_lines(await store.list_logs(execution_id, after_id=after_log, limit=MAX_PAGE_LOG_LINES))


async def _list_updates(request: Request, pages: _Pages, src: ConsoleSource, flt: ExecutionFilter
                        ) -> AsyncIterator[str]:
    """The listing's rows again whenever an execution on the page starts, changes status or ends."""
    last: Any = None
    while not await request.is_disconnected():
        await src.settle()
        rows, _ = await source.list_executions(src.store, flt)
        signature = [(r.execution_id, r.status) for r in rows]
        if signature != last:
            # The first time too: an execution may have started between the page and this stream.
            yield _message("rows", {"html": pages.fragment("execution_rows.html", rows=rows, filtered=True)})
            last = signature
        else:
            yield ": idle\n\n"
        await asyncio.sleep(POLL_SECONDS * 2)
