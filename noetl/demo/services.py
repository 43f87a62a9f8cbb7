"""Stand-in HTTP services for the examples, so they run without the internet.

One threaded HTTP/1.1 server (``noetl demo services``) with:

- ``GET /v1/forecast?latitude=..&longitude=..&current_weather=true[&hourly=temperature_2m]``: the
  shape of Open-Meteo's forecast API. Temperatures are derived from the coordinates, so the same
  city always gets the same weather. With an API key configured, the key must be sent as the
  ``X-API-Key`` header (or the ``apikey`` query parameter), else 401.
- ``/anything[/...]`` (any method): httpbin's echo (``args``, ``data``, ``form``, ``json``,
  ``headers``, ``method``, ``origin``, ``url``), plus a deterministic ``profile`` when a
  ``traveler_id`` is given (query or JSON body), e.g. ``/anything/traveler-profile?traveler_id=7``.
- ``GET /paginated?page=N[&page_size=S&total=T]``: ``{items, page, page_size, total, hasMore}``.
- ``GET /get``: httpbin's ``/get``; ``/status/<code>``: answers with that status.
- ``GET /health`` and ``GET /``: liveness and an index of the routes (never delayed or failed).

Latency and failures are configurable for the whole server (:class:`ServiceSettings`) and per
request with the query parameters ``latency_ms`` and ``failure_rate``. Whether a request fails is
decided by a hash of the seed, the request and how many times that same request was seen, so a
run is reproducible whatever order concurrent requests arrive in, and a retried request gets a
fresh draw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_PORT = 8765
_REQUEST_LOG_SIZE = 10_000
_UNDELAYED = frozenset({"", "health"})  # routes that ignore latency and failure injection

AIRPORTS = ("LHR", "CDG", "JFK", "SFO", "NRT", "SIN", "FRA", "AMS", "MAD", "YYZ", "SYD", "DXB")
TIERS = ("basic", "silver", "gold", "platinum")
SEATS = ("window", "aisle", "middle")
MEALS = ("standard", "vegetarian", "vegan", "kosher", "halal", "gluten-free")


@dataclass(frozen=True)
class ServiceSettings:
    """Behaviour of the whole server; each field may be overridden per request where noted."""

    latency_ms: float = 0.0  # added to every answer (query: latency_ms)
    jitter_ms: float = 0.0  # plus a deterministic 0..jitter_ms
    failure_rate: float = 0.0  # share of requests answered with failure_status (query: failure_rate)
    failure_status: int = 503
    seed: int = 42
    api_key: str | None = None  # required by the weather API when set
    page_size: int = 10  # /paginated defaults
    total_items: int = 35


def _draw(*parts: Any) -> float:
    """A number in [0, 1) determined by ``parts`` (stable across processes and runs)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _pick(options: tuple[str, ...], *parts: Any) -> str:
    return options[int(_draw(*parts) * len(options))]


# --------------------------------------------------------------------------------------------
# Response bodies (pure functions of their inputs and the seed)
# --------------------------------------------------------------------------------------------


def weather_forecast(latitude: float, longitude: float, seed: int, *, current: bool, hourly: list[str],
                     now: dt.datetime) -> dict[str, Any]:
    """An Open-Meteo style forecast: milder near 20°N/S, a stable per-place offset."""
    place = f"{latitude:.2f},{longitude:.2f}"
    base = 28.0 - abs(abs(latitude) - 20.0) * 0.25
    temperature = round(base + (_draw(seed, "temp", place) - 0.5) * 8, 1)
    body: dict[str, Any] = {
        "latitude": round(latitude, 2),
        "longitude": round(longitude, 2),
        "generationtime_ms": 0.05,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": round(_draw(seed, "elevation", place) * 300, 1),
    }
    quarter = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    if current:
        body["current_weather_units"] = {"time": "iso8601", "interval": "seconds", "temperature": "°C",
                                         "windspeed": "km/h", "winddirection": "°", "is_day": "",
                                         "weathercode": "wmo code"}
        body["current_weather"] = {
            "time": quarter.strftime("%Y-%m-%dT%H:%M"),
            "interval": 900,
            "temperature": temperature,
            "windspeed": round(_draw(seed, "wind", place) * 30, 1),
            "winddirection": int(_draw(seed, "winddir", place) * 360),
            "is_day": 1 if 6 <= quarter.hour < 20 else 0,
            "weathercode": int(_draw(seed, "code", place) * 4),
        }
    if "temperature_2m" in hourly:
        day = quarter.replace(hour=0, minute=0)
        hours = [day + dt.timedelta(hours=h) for h in range(24)]
        body["hourly_units"] = {"time": "iso8601", "temperature_2m": "°C"}
        body["hourly"] = {
            "time": [h.strftime("%Y-%m-%dT%H:%M") for h in hours],
            "temperature_2m": [round(temperature + 4 * (_draw(seed, "hour", place, h) - 0.5) - 3 * abs(h - 14) / 14, 1)
                               for h in range(24)],
        }
    return body


def traveler_profile(traveler_id: str, seed: int) -> dict[str, Any]:
    """A made-up but stable profile for one traveler id."""
    return {
        "traveler_id": traveler_id,
        "loyalty_tier": _pick(TIERS, seed, "tier", traveler_id),
        "home_airport": _pick(AIRPORTS, seed, "airport", traveler_id),
        "preferred_seat": _pick(SEATS, seed, "seat", traveler_id),
        "meal_preference": _pick(MEALS, seed, "meal", traveler_id),
        "trips_last_year": int(_draw(seed, "trips", traveler_id) * 40),
        "member_since": 2005 + int(_draw(seed, "since", traveler_id) * 20),
    }


def paginated_items(page: int, page_size: int, total: int) -> dict[str, Any]:
    first = (page - 1) * page_size
    items = [{"id": i + 1, "name": f"item-{i + 1:04d}", "value": (i + 1) * 10}
             for i in range(max(first, 0), min(first + page_size, total))]
    return {"items": items, "page": page, "page_size": page_size, "total": total,
            "hasMore": first + page_size < total}


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class KeepAliveHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server whose close joins the handler threads, and which can wake the handler
    threads idling on keep-alive connections (:meth:`drop_connections`) so that close does not wait
    for the clients to hang up."""

    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Wake handler threads idling on keep-alive connections so they can finish."""
        with self.sockets_lock:
            for sock in list(self.open_sockets):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive) request handler that logs nothing."""

    protocol_version = "HTTP/1.1"
    timeout = 15  # an idle keep-alive connection does not hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base-class signature
        pass


class _Server(KeepAliveHTTPServer):
    request_queue_size = 128  # a parallel loop opens many connections at once
    allow_reuse_address = True

    def __init__(self, owner: DemoServices, host: str, port: int) -> None:
        self.owner = owner
        super().__init__((host, port), _Handler)


class _Request:
    """One parsed request, as the route functions see it."""

    def __init__(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = parts.path
        self.route = parts.path.strip("/").split("/")
        self.query: dict[str, Any] = {
            k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query, keep_blank_values=True).items()
        }
        self.headers = dict(handler.headers.items())
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""
        host = handler.headers.get("Host") or handler.server.owner.address
        self.url = f"http://{host}{handler.path}"
        self.origin = handler.client_address[0]

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json_body(self) -> Any:
        if self.body and "json" in (self.header("Content-Type") or ""):
            with suppress(ValueError):
                return json.loads(self.body)
        return None

    def form_body(self) -> dict[str, Any]:
        if "x-www-form-urlencoded" in (self.header("Content-Type") or ""):
            return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}
        return {}


Reply = tuple[int, Any]


class _Handler(KeepAliveHandler):
    server: _Server

    def _send(self, status: int, body: Any) -> None:
        bodyless = status in (204, 304)
        payload = b"" if bodyless else json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        if not bodyless:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def _handle(self) -> None:
        request = _Request(self)
        status, body = self.server.owner.answer(request)
        self._send(status, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class DemoServices:
    """The stand-in services on ``host:port`` (0 picks a free port), served from a thread or the
    caller's thread (:meth:`serve_forever`). Keeps a log of recent requests and counts how many
    were in flight at once, which the tests use to check a loop's concurrency bound."""

    def __init__(self, settings: ServiceSettings | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 access_log: Callable[[str], None] | None = None) -> None:
        self.settings = settings or ServiceSettings()
        self.access_log = access_log
        self._host = host
        self.requests: deque[dict[str, Any]] = deque(maxlen=_REQUEST_LOG_SIZE)
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0
        self._server = _Server(self, host, port)
        self._thread: threading.Thread | None = None
        self._routes: dict[str, Callable[[_Request, ServiceSettings], Reply]] = {
            "": self._index, "health": _health, "v1": _weather, "anything": _anything, "get": _get,
            "paginated": _paginated, "status": _status,
        }

    # addresses -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    # running -------------------------------------------------------------------------------
    def start(self) -> DemoServices:
        """Serve from a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="noetl-demo-services", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve from the calling thread until interrupted (the CLI's foreground mode)."""
        try:
            self._server.serve_forever()
        finally:
            self._close()

    def stop(self) -> None:
        self._server.shutdown()
        self._close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _close(self) -> None:
        self._server.drop_connections()
        self._server.server_close()

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self._seen.clear()
            self.peak_in_flight = 0

    # answering -----------------------------------------------------------------------------
    def answer(self, request: _Request) -> Reply:
        route = self._routes.get(request.route[0])
        if route is None:
            return 404, {"error": f"no route {request.path}", "routes": sorted(r for r in self._routes if r)}
        if request.route[0] in _UNDELAYED:
            return route(request, self.settings)
        settings = self._request_settings(request)
        draw = self._draw_for(request, settings)
        self._enter()
        try:
            time.sleep((settings.latency_ms + settings.jitter_ms * draw[1]) / 1000)
            if draw[0] < settings.failure_rate:
                status, body = settings.failure_status, {"error": "injected failure", "status": settings.failure_status}
            else:
                status, body = route(request, settings)
        finally:
            self._leave()
        self._log(request, status)
        return status, body

    def _request_settings(self, request: _Request) -> ServiceSettings:
        """Server settings with the per-request overrides from the query string."""
        settings = self.settings
        with suppress(ValueError, TypeError):
            if "latency_ms" in request.query:
                settings = replace(settings, latency_ms=float(request.query["latency_ms"]))
            if "failure_rate" in request.query:
                settings = replace(settings, failure_rate=float(request.query["failure_rate"]))
        return settings

    def _draw_for(self, request: _Request, settings: ServiceSettings) -> tuple[float, float]:
        """(failure draw, jitter draw) for this request and the number of times it was seen."""
        key = f"{request.method} {request.path}?{sorted(request.query.items())}"
        with self._lock:
            self._seen[key] += 1
            seen = self._seen[key]
        return _draw(settings.seed, "fail", key, seen), _draw(settings.seed, "jitter", key, seen)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _log(self, request: _Request, status: int) -> None:
        with self._lock:
            self.requests.append({"method": request.method, "path": request.path, "query": request.query,
                                  "headers": request.headers, "status": status})
        if self.access_log is not None:
            self.access_log(f"{request.method} {request.url} -> {status}")

    def _index(self, _request: _Request, settings: ServiceSettings) -> Reply:
        return 200, {
            "service": "noetl demo services",
            "routes": {
                "/v1/forecast?latitude=51.51&longitude=-0.13&current_weather=true": "Open-Meteo style weather",
                "/anything/traveler-profile?traveler_id=1": "httpbin-style echo with a traveler profile",
                "/paginated?page=1": "paginated items (page, page_size, total, hasMore)",
                "/get": "httpbin-style GET echo",
                "/status/<code>": "answers with that status",
                "/health": "liveness",
            },
            "settings": {k: v for k, v in vars(settings).items() if k != "api_key"}
            | {"api_key_required": settings.api_key is not None},
        }


# routes --------------------------------------------------------------------------------------


def _health(_request: _Request, _settings: ServiceSettings) -> Reply:
    return 200, {"status": "ok"}


def _float_param(request: _Request, name: str) -> float | None:
    try:
        return float(request.query[name])
    except (KeyError, TypeError, ValueError):
        return None


def _weather(request: _Request, settings: ServiceSettings) -> Reply:
    if request.route[1:] != ["forecast"]:
        return 404, {"error": True, "reason": f"no route {request.path}"}
    if settings.api_key is not None and settings.api_key not in (request.header("X-API-Key"), request.query.get("apikey")):
        return 401, {"error": True, "reason": "missing or invalid API key (X-API-Key header or apikey parameter)"}
    latitude, longitude = _float_param(request, "latitude"), _float_param(request, "longitude")
    if latitude is None or longitude is None:
        return 400, {"error": True, "reason": "latitude and longitude are required numbers"}
    hourly = str(request.query.get("hourly", "")).split(",")
    current = str(request.query.get("current_weather", "")).lower() == "true"
    return 200, weather_forecast(latitude, longitude, settings.seed, current=current, hourly=hourly,
                                 now=dt.datetime.now(dt.UTC))


def _echo(request: _Request) -> dict[str, Any]:
    return {"args": request.query, "headers": request.headers, "origin": request.origin, "url": request.url}


def _get(request: _Request, _settings: ServiceSettings) -> Reply:
    return 200, _echo(request)


def _anything(request: _Request, settings: ServiceSettings) -> Reply:
    body = {
        **_echo(request),
        "method": request.method,
        "data": request.body.decode("utf-8", "replace"),
        "files": {},
        "form": request.form_body(),
        "json": request.json_body(),
    }
    payload = body["json"] if isinstance(body["json"], dict) else {}
    traveler_id = request.query.get("traveler_id", payload.get("traveler_id"))
    if traveler_id is not None:
        body["profile"] = traveler_profile(str(traveler_id), settings.seed)
    return 200, body


def _paginated(request: _Request, settings: ServiceSettings) -> Reply:
    try:
        page = int(request.query.get("page", 1))
        page_size = int(request.query.get("page_size", settings.page_size))
        total = int(request.query.get("total", settings.total_items))
    except (TypeError, ValueError):
        return 400, {"error": "page, page_size and total must be integers"}
    if page < 1 or page_size < 1:
        return 400, {"error": "page and page_size start at 1"}
    return 200, paginated_items(page, page_size, total)


def _status(request: _Request, _settings: ServiceSettings) -> Reply:
    try:
        code = int(request.route[1])
    except (IndexError, ValueError):
        return 400, {"error": "use /status/<code>"}
    return (code, {"status": code}) if 200 <= code < 600 else (400, {"error": "status must be 200..599"})


@contextmanager
def running_services(settings: ServiceSettings | None = None, *, host: str = "127.0.0.1",
                     port: int = 0) -> Iterator[DemoServices]:
    """The services in a background thread for the duration of the block."""
    services = DemoServices(settings, host=host, port=port).start()
    try:
        yield services
    finally:
        services.stop()
