"""The stand-in services the examples use (`noetl demo services`) and `noetl demo postgres`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from noetl.demo.postgres import PostgresUnavailable, find_postgres_bindir, free_port
from noetl.demo.services import DemoServices, ServiceSettings, running_services


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def services() -> Iterator[DemoServices]:
    with running_services() as server:
        yield server


# shapes ----------------------------------------------------------------------------------------


def test_weather_has_the_open_meteo_shape_and_is_stable_per_place(services: DemoServices) -> None:
    url = f"{services.url}/v1/forecast?latitude=51.51&longitude=-0.13&current_weather=true"
    status, body = get(url)
    assert status == 200
    assert {"latitude", "longitude", "generationtime_ms", "utc_offset_seconds", "timezone", "elevation",
            "current_weather_units", "current_weather"} <= set(body)
    current = body["current_weather"]
    assert set(current) == {"time", "interval", "temperature", "windspeed", "winddirection", "is_day", "weathercode"}
    assert isinstance(current["temperature"], float)
    assert get(url)[1]["current_weather"]["temperature"] == current["temperature"]
    madrid = get(f"{services.url}/v1/forecast?latitude=40.42&longitude=-3.70&current_weather=true")[1]
    assert madrid["current_weather"]["temperature"] != current["temperature"]


def test_weather_hourly_series_and_bad_requests(services: DemoServices) -> None:
    status, body = get(f"{services.url}/v1/forecast?latitude=1&longitude=2&hourly=temperature_2m")
    assert status == 200 and "current_weather" not in body
    assert len(body["hourly"]["time"]) == len(body["hourly"]["temperature_2m"]) == 24
    status, body = get(f"{services.url}/v1/forecast?latitude=north")
    assert status == 400 and body["error"] is True


def test_weather_api_key_when_configured() -> None:
    with running_services(ServiceSettings(api_key="key-1234")) as server:
        url = f"{server.url}/v1/forecast?latitude=51.51&longitude=-0.13&current_weather=true"
        assert get(url)[0] == 401
        assert get(url, headers={"X-API-Key": "wrong"})[0] == 401
        assert get(url, headers={"X-API-Key": "key-1234"})[0] == 200
        assert get(url + "&apikey=key-1234")[0] == 200
        assert server.requests[-1]["query"]["apikey"] == "key-1234"


def test_anything_echoes_and_adds_a_stable_traveler_profile(services: DemoServices) -> None:
    status, body = get(f"{services.url}/anything/traveler-profile?traveler_id=7&traveler_name=Traveler%207")
    assert status == 200
    assert body["args"] == {"traveler_id": "7", "traveler_name": "Traveler 7"}
    assert body["method"] == "GET" and body["url"].endswith("/anything/traveler-profile?traveler_id=7&traveler_name=Traveler%207")
    profile = body["profile"]
    assert profile["traveler_id"] == "7"
    assert {"loyalty_tier", "home_airport", "preferred_seat", "meal_preference", "trips_last_year",
            "member_since"} <= set(profile)
    assert get(f"{services.url}/anything/traveler-profile?traveler_id=7")[1]["profile"] == profile
    other = [get(f"{services.url}/anything/x?traveler_id={i}")[1]["profile"] for i in range(1, 6)]
    assert len({json.dumps(p, sort_keys=True) for p in other}) == 5

    status, posted = get(f"{services.url}/anything/traveler-profile", data=json.dumps({"traveler_id": 9}).encode(),
                         headers={"Content-Type": "application/json"})
    assert status == 200 and posted["method"] == "POST"
    assert posted["json"] == {"traveler_id": 9} and posted["profile"]["traveler_id"] == "9"
    assert "profile" not in get(f"{services.url}/anything")[1]


def test_get_echoes_like_httpbin(services: DemoServices) -> None:
    status, body = get(f"{services.url}/get?a=1&b=two", headers={"X-Trace": "t-1"})
    assert status == 200
    assert body["args"] == {"a": "1", "b": "two"}
    assert body["headers"]["X-Trace"] == "t-1"
    assert body["url"] == f"{services.url}/get?a=1&b=two" and body["origin"] == "127.0.0.1"


def test_pagination_walks_every_item_once(services: DemoServices) -> None:
    page, seen = 1, []
    while True:
        status, body = get(f"{services.url}/paginated?page={page}&page_size=8&total=30")
        assert status == 200 and body["page"] == page
        seen += [item["id"] for item in body["items"]]
        if not body["hasMore"]:
            break
        page += 1
    assert seen == list(range(1, 31)) and page == 4
    default = get(f"{services.url}/paginated")[1]
    assert (default["page_size"], default["total"], default["hasMore"]) == (10, 35, True)
    assert get(f"{services.url}/paginated?page=99")[1] == {
        "items": [], "page": 99, "page_size": 10, "total": 35, "hasMore": False}
    assert get(f"{services.url}/paginated?page=0")[0] == 400
    assert get(f"{services.url}/status/418")[0] == 418
    assert get(f"{services.url}/nowhere")[0] == 404


# latency, failures, concurrency ----------------------------------------------------------------


def timed(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    status = get(url)[0]
    return status, time.perf_counter() - started


def test_latency_from_settings_and_per_request() -> None:
    with running_services(ServiceSettings(latency_ms=150)) as server:
        status, elapsed = timed(f"{server.url}/get")
        assert status == 200 and elapsed >= 0.15
        assert timed(f"{server.url}/get?latency_ms=0")[1] < 0.15
        assert timed(f"{server.url}/health")[1] < 0.15  # liveness is never delayed
    with running_services() as server:
        assert timed(f"{server.url}/get?latency_ms=120")[1] >= 0.12


def failure_pattern(settings: ServiceSettings, count: int = 200) -> list[int]:
    with running_services(settings) as server:
        return [get(f"{server.url}/anything/traveler-profile?traveler_id={i}")[0] for i in range(count)]


def test_failure_rate_is_seeded_and_reproducible() -> None:
    pattern = failure_pattern(ServiceSettings(failure_rate=0.3, seed=7))
    failed = pattern.count(503)
    assert set(pattern) == {200, 503}
    assert 0.2 * len(pattern) < failed < 0.4 * len(pattern)
    assert failure_pattern(ServiceSettings(failure_rate=0.3, seed=7)) == pattern
    assert failure_pattern(ServiceSettings(failure_rate=0.3, seed=8)) != pattern
    assert set(failure_pattern(ServiceSettings(failure_rate=1.0, failure_status=429), 5)) == {429}


def test_a_retried_request_gets_a_fresh_draw() -> None:
    with running_services(ServiceSettings(failure_rate=0.5, seed=3)) as server:
        attempts = [get(f"{server.url}/get?same=1")[0] for _ in range(20)]
        assert {200, 503} == set(attempts)
        assert get(f"{server.url}/get?failure_rate=1")[0] == 503
        assert get(f"{server.url}/health")[0] == 200


def test_sustains_25_requests_in_flight() -> None:
    with running_services(ServiceSettings(latency_ms=500)) as server:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=25) as pool:
            statuses = list(pool.map(lambda i: get(f"{server.url}/anything/p?traveler_id={i}")[0], range(25)))
        elapsed = time.perf_counter() - started
        assert statuses == [200] * 25
        assert server.peak_in_flight == 25
        assert elapsed < 0.5 * 4  # concurrently, not one after another (25 x 0.5 s)


# the commands ----------------------------------------------------------------------------------


def noetl_command(*args: str, home: Path, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "noetl.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NOETL_HOME": str(home)}, **kwargs)


def test_demo_services_command_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = noetl_command("demo", "services", "--port", "0", "--latency-ms", "5", "--api-key", "k-5678",
                            home=tmp_path)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert get(f"{url}/health") == (200, {"status": "ok"})
        status, index = get(url)
        assert status == 200 and index["settings"]["latency_ms"] == 5 and index["settings"]["api_key_required"]
        assert get(f"{url}/v1/forecast?latitude=1&longitude=2", headers={"X-API-Key": "k-5678"})[0] == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "stopped" in stderr


def test_demo_services_command_reports_a_busy_port(tmp_path: Path) -> None:
    with running_services() as server:
        process = noetl_command("demo", "services", "--port", str(server.port), home=tmp_path)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert stderr.startswith("error: cannot listen on 127.0.0.1:")


def postgres_binaries_or_skip() -> None:
    try:
        find_postgres_bindir()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "noetl.cli.main", *args], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "NOETL_HOME": str(home)})


def test_demo_postgres_starts_registers_restarts_and_stops(tmp_path: Path) -> None:
    import psycopg

    postgres_binaries_or_skip()
    home = tmp_path / "home"
    cluster_dir = Path(tempfile.mkdtemp(prefix="noetl-demo-pg-"))  # short: it holds the unix socket
    port = str(free_port())
    try:
        started = run_cli("demo", "postgres", "--dir", str(cluster_dir), "--port", port, "--register", home=home)
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url == f"postgresql://noetl_demo:demo-pg-pass@127.0.0.1:{port}/noetl_demo"
        assert "noetl register credential -f" in started.stderr
        assert "registered credential 'pg_local'" in started.stderr
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT current_user").fetchone() == ("noetl_demo",)
        listed = run_cli("credential", "list", "--json", home=home)
        assert {"name": "pg_local", "type": "postgres"}.items() <= json.loads(listed.stdout)[0].items()

        again = run_cli("demo", "postgres", "--dir", str(cluster_dir), home=home)
        assert again.returncode == 0 and "already running" in again.stderr and again.stdout.strip() == url

        stopped = run_cli("demo", "postgres", "--dir", str(cluster_dir), "--stop", home=home)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=3).close()
        restarted = run_cli("demo", "postgres", "--dir", str(cluster_dir), home=home)
        assert restarted.returncode == 0 and "started" in restarted.stderr
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        run_cli("demo", "postgres", "--dir", str(cluster_dir), "--stop", home=home)
        shutil.rmtree(cluster_dir, ignore_errors=True)
    assert "was not running" in run_cli("demo", "postgres", "--dir", str(cluster_dir), "--stop", home=home).stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user PostgreSQL runs as that user, in NOETL_HOME")
def test_as_root_the_demo_cluster_lives_outside_noetl_home() -> None:
    home = Path(tempfile.mkdtemp(prefix="noetl-home-"))  # in /tmp: its parents are reachable
    try:
        home.chmod(0o755)  # reachable by the postgres account, for now
        code = "from noetl.demo.postgres import default_demo_dir; print(default_demo_dir())"
        chosen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env={**os.environ, "NOETL_HOME": str(home)}).stdout.strip()
        assert chosen == str(Path(tempfile.gettempdir()) / "noetl-demo-postgres")
        # why: the first command that opens the store makes NOETL_HOME owner-only, and a cluster
        # inside it would lose its data directory (PostgreSQL stops at its next checkpoint)
        assert run_cli("credential", "list", home=home).returncode == 0
        assert home.stat().st_mode & 0o777 == 0o700
    finally:
        shutil.rmtree(home, ignore_errors=True)
