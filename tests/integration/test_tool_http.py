"""The http tool against a real local HTTP server: result shape, bodies, auth, errors."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.httpserver import LocalHTTPServer  # noqa: E402
from support.pgcluster import free_port  # noqa: E402
from support.tools import CredentialServices, make_call, open_store, run_async  # noqa: E402

from noetl.errors import ToolError  # noqa: E402
from noetl.tools import http as http_tool  # noqa: E402
from noetl.tools.http import get_http_client, run_http  # noqa: E402

CREDENTIALS = [
    {"name": "api_bearer", "type": "bearer", "data": {"token": "tok-a1b2c3d4e5f6"}},
    {"name": "api_basic", "type": "basic", "data": {"username": "alice", "password": "wonderland-42"}},
    {"name": "api_key_header", "type": "api_key", "data": {"api_key": "key-9f8e7d6c"}},
    {"name": "api_key_query", "type": "api_key", "data": {"api_key": "key-9f8e7d6c", "in": "query"}},
    {"name": "pg_cred", "type": "postgres", "data": {"host": "h", "database": "d", "password": "x"}},
]


@pytest.fixture(autouse=True)
def _credential_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)


def call_http(config: dict[str, Any], *, with_credentials: bool = False) -> Any:
    async def main() -> Any:
        services = CredentialServices(await open_store(*CREDENTIALS)) if with_credentials else None
        call = make_call(services)
        result = await run_http(config, call)
        return result, call

    return run_async(main)


def http_error(config: dict[str, Any], **kwargs: Any) -> ToolError:
    with pytest.raises(ToolError) as caught:
        call_http(config, **kwargs)
    return caught.value


# --- result shape and bodies ------------------------------------------------------------------


def test_get_returns_status_headers_url_elapsed_and_parsed_json(http_server: LocalHTTPServer) -> None:
    result, _ = call_http({"url": f"{http_server.url}/echo", "params": {"q": "London", "n": 3, "hot": True}})
    assert set(result) == {"status_code", "headers", "url", "elapsed", "data"}
    assert result["status_code"] == 200
    assert result["headers"]["content-type"] == "application/json"
    assert result["url"].startswith(f"{http_server.url}/echo?")
    assert isinstance(result["elapsed"], float) and result["elapsed"] >= 0
    assert result["data"]["method"] == "GET"
    assert result["data"]["query"] == {"q": "London", "n": "3", "hot": "true"}


def test_endpoint_is_an_alias_of_url_and_headers_are_sent(http_server: LocalHTTPServer) -> None:
    result, _ = call_http({"endpoint": f"{http_server.url}/echo", "headers": {"X-Trace": "abc", "X-Num": 7}})
    assert result["data"]["headers"]["x-trace"] == "abc"
    assert result["data"]["headers"]["x-num"] == "7"


def test_post_json_payload(http_server: LocalHTTPServer) -> None:
    result, _ = call_http(
        {"method": "post", "url": f"{http_server.url}/echo", "json": {"a": [1, 2], "b": None}}
    )
    assert result["data"]["method"] == "POST"
    assert result["data"]["json"] == {"a": [1, 2], "b": None}


def test_body_mapping_is_json_and_body_string_is_sent_raw(http_server: LocalHTTPServer) -> None:
    as_json, _ = call_http({"method": "PUT", "url": f"{http_server.url}/echo", "body": {"k": "v"}})
    assert as_json["data"]["json"] == {"k": "v"}
    raw, _ = call_http(
        {
            "method": "POST",
            "url": f"{http_server.url}/echo",
            "body": "a,b\n1,2",
            "headers": {"Content-Type": "text/csv"},
        }
    )
    assert raw["data"]["body"] == "a,b\n1,2"
    assert raw["data"]["headers"]["content-type"] == "text/csv"


def test_data_mapping_is_form_encoded_on_post_and_query_on_get(http_server: LocalHTTPServer) -> None:
    posted, _ = call_http(
        {"method": "POST", "url": f"{http_server.url}/echo", "data": {"user": "bob", "n": 2}}
    )
    assert posted["data"]["form"] == {"user": "bob", "n": "2"}
    got, _ = call_http({"url": f"{http_server.url}/echo", "data": {"city": "Paris"}})
    assert got["data"]["query"] == {"city": "Paris"}


def test_non_json_response_is_text(http_server: LocalHTTPServer) -> None:
    result, _ = call_http({"url": f"{http_server.url}/text"})
    assert result["data"] == "hello, world"


def test_empty_json_response_is_null(http_server: LocalHTTPServer) -> None:
    result, _ = call_http({"method": "DELETE", "url": f"{http_server.url}/empty"})
    assert result["status_code"] == 204
    assert result["data"] is None


def test_invalid_json_under_json_content_type_is_a_decode_error(http_server: LocalHTTPServer) -> None:
    error = http_error({"url": f"{http_server.url}/badjson"})
    assert error.kind == "http_decode"
    assert error.retryable is False
    assert error.details["data"] == "{not json"


def test_redirects_are_followed_unless_disabled(http_server: LocalHTTPServer) -> None:
    followed, _ = call_http({"url": f"{http_server.url}/redirect"})
    assert followed["data"]["path"] == "/echo"
    error = http_error({"url": f"{http_server.url}/redirect", "follow_redirects": False})
    assert error.details["http"]["status"] == 302


# --- errors -----------------------------------------------------------------------------------


def test_server_error_is_retryable_http_error_with_status_and_body(http_server: LocalHTTPServer) -> None:
    url = f"{http_server.url}/status/503"
    error = http_error({"url": url})
    assert error.kind == "server_error"
    assert error.retryable is True
    assert error.message == f"HTTP 503 from GET {url}"
    as_dict = error.to_dict()
    assert as_dict["http"]["status"] == 503
    assert as_dict["data"] == {"error": "status 503", "code": 503}


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [(429, "rate_limit", True), (500, "server_error", True), (503, "server_error", True),
     (404, "not_found", False), (400, "client_error", False), (422, "client_error", False),
     (401, "auth", False), (403, "auth", False)],
)
def test_error_kind_classifies_the_status_and_only_429_and_5xx_are_retryable(
        http_server: LocalHTTPServer, status: int, kind: str, retryable: bool) -> None:
    error = http_error({"url": f"{http_server.url}/status/{status}"})
    assert (error.kind, error.retryable, error.details["http"]["status"]) == (kind, retryable, status)


def test_flaky_endpoint_fails_then_succeeds_on_later_calls(http_server: LocalHTTPServer) -> None:
    url = f"{http_server.url}/flaky/shape-test?fail=2&status=429"
    for _ in range(2):
        error = http_error({"url": url})
        assert error.retryable and error.details["http"]["status"] == 429
    result, _ = call_http({"url": url})
    assert result["data"] == {"ok": True, "attempts": 3}


def test_connection_refused_is_retryable_connection_error() -> None:
    error = http_error({"url": f"http://127.0.0.1:{free_port()}/nothing"})
    assert error.kind == "connection"
    assert error.retryable is True
    assert error.details["http"] == {"status": None, "headers": {}}


def test_a_password_in_the_url_never_reaches_an_error_message(http_server: LocalHTTPServer) -> None:
    """A URL built from a workload or a payload (``https://user:password@host``): nothing marks its
    password secret, and the message names the URL (an execution's error, events, logs)."""
    closed = http_error({"url": f"http://alice:url-password-7@127.0.0.1:{free_port()}/x"})
    assert closed.kind == "connection" and "http://alice:***@127.0.0.1" in str(closed), closed
    status = http_error({"url": http_server.url.replace("http://", "http://alice:url-password-7@") + "/status/404"})
    assert status.kind == "not_found" and "url-password-7" not in str(status), status
    assert "url-password-7" not in str(http_error({"url": "http://alice:url-password-7@[::1"}))


def test_what_authenticates_a_request_is_a_secret_of_the_call_whatever_it_came_from(
        http_server: LocalHTTPServer, tmp_path: Path) -> None:
    """A token from a workload in the Authorization header, a cookie, a URL's password: a server
    that echoes them back (an error page quoting the request) put them in the stored result."""
    url = http_server.url.replace("http://", "http://alice:url-password-8@")
    _, call = call_http({"url": f"{url}/echo", "headers": {"Authorization": "Bearer workload-token-5",
                                                            "Cookie": "session=cookie-value-6"}})
    assert {"workload-token-5", "session=cookie-value-6", "url-password-8"} <= call.secrets
    from noetl.api import run_playbook

    playbook = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: echo_auth, path: tests/echo_auth}
workflow:
  - step: start
    tool: {kind: http, url: "{{ workload.api }}/echo", headers: {Authorization: "Bearer {{ workload.token }}"}}
"""
    doc = run_playbook(playbook, {"api": http_server.url, "token": "workload-token-5"},
                       store_url=f"sqlite:///{tmp_path / 'noetl.db'}")
    assert doc["status"] == "completed", doc["error"]
    assert doc["steps"]["start"]["result"]["data"]["headers"]["authorization"] == "Bearer ***"


def test_slow_response_past_timeout_is_retryable_timeout(http_server: LocalHTTPServer) -> None:
    error = http_error({"url": f"{http_server.url}/slow?seconds=1.5", "timeout": 0.3})
    assert error.kind == "timeout"
    assert error.retryable is True
    assert error.details["http"] == {"status": None, "headers": {}}
    # `timeout_seconds`, as newer NoETL playbooks spell it, is the same limit
    assert http_error({"url": f"{http_server.url}/slow?seconds=1.5", "timeout_seconds": 0.3}).kind == "timeout"


def test_missing_url_and_unsupported_scheme_are_config_errors() -> None:
    assert http_error({"method": "GET"}).kind == "config"
    assert http_error({"url": "ftp://example.invalid/file"}).kind == "config"


# --- auth -------------------------------------------------------------------------------------


def test_bearer_credential_becomes_authorization_header_and_is_marked_secret(
    http_server: LocalHTTPServer,
) -> None:
    result, call = call_http(
        {"url": f"{http_server.url}/bearer", "auth": "api_bearer"}, with_credentials=True
    )
    assert result["data"] == {"authenticated": True, "scheme": "bearer"}
    assert "tok-a1b2c3d4e5f6" in call.secrets


def test_basic_credential_and_v1_auth_mapping(http_server: LocalHTTPServer) -> None:
    result, call = call_http(
        {"url": f"{http_server.url}/basic", "auth": {"type": "basic", "credential": "api_basic"}},
        with_credentials=True,
    )
    assert result["data"]["user"] == "alice"
    assert "wonderland-42" in call.secrets
    assert "alice" not in call.secrets  # user names stay readable


def test_api_key_in_header_or_query(http_server: LocalHTTPServer) -> None:
    header, _ = call_http(
        {"url": f"{http_server.url}/apikey", "auth": "api_key_header"}, with_credentials=True
    )
    assert header["data"]["authenticated"] is True
    query, _ = call_http({"url": f"{http_server.url}/apikey", "auth": "api_key_query"}, with_credentials=True)
    assert query["data"]["authenticated"] is True
    assert http_server.requests[-1]["query"] == {"api_key": "key-9f8e7d6c"}


def test_v1_auth_alias_mapping_names_the_credential(http_server: LocalHTTPServer) -> None:
    """v1 playbooks write `auth: {alias: {type, key}}`: one alias naming a stored credential."""
    result, _ = call_http(
        {"url": f"{http_server.url}/basic", "auth": {"api": {"type": "basic", "key": "api_basic"}}},
        with_credentials=True,
    )
    assert result["data"]["authenticated"] is True and result["data"]["user"] == "alice"


def test_unified_auth_env_and_aliases_with_placement(http_server: LocalHTTPServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Unified-auth playbooks read a token from the environment (`env: VAR`, found as
    `{{ secret.VAR }}` is), and give a referenced api key its header beside the reference."""
    monkeypatch.setenv("API_BEARER_TOKEN", "tok-a1b2c3d4e5f6")
    result, call = call_http({"url": f"{http_server.url}/bearer", "auth": {"type": "bearer", "env": "API_BEARER_TOKEN"}})
    assert result["data"]["authenticated"] is True
    assert "tok-a1b2c3d4e5f6" in call.secrets
    both, _ = call_http({"url": f"{http_server.url}/echo", "auth": {
        "key": {"type": "api_key", "key": "api_key_header", "header": "X-Service-Key"},
        "id": {"type": "header", "name": "X-Pipeline-ID", "value": "run-1"}}}, with_credentials=True)
    assert both["data"]["headers"]["x-service-key"] == "key-9f8e7d6c"
    assert both["data"]["headers"]["x-pipeline-id"] == "run-1"
    missing = http_error({"url": f"{http_server.url}/bearer", "auth": {"type": "bearer", "env": "NO_SUCH_TOKEN_VAR"}})
    assert missing.kind == "credential" and "NO_SUCH_TOKEN_VAR" in missing.message


def test_wrong_or_missing_auth(http_server: LocalHTTPServer) -> None:
    assert http_error({"url": f"{http_server.url}/bearer"}).details["http"]["status"] == 401
    unknown = http_error({"url": f"{http_server.url}/bearer", "auth": "nope"}, with_credentials=True)
    assert unknown.kind == "credential"
    assert "credential 'nope' not found" in unknown.message
    wrong_type = http_error({"url": f"{http_server.url}/bearer", "auth": "pg_cred"}, with_credentials=True)
    assert wrong_type.kind == "config"


# --- pooling ----------------------------------------------------------------------------------


def test_concurrent_calls_share_a_bounded_set_of_pooled_clients(http_server: LocalHTTPServer) -> None:
    async def main() -> tuple[list[Any], set[int], bool]:
        before = {id(get_http_client()) for _ in range(20)}
        results = await asyncio.gather(
            *(
                run_http({"url": f"{http_server.url}/echo", "params": {"i": i}}, make_call())
                for i in range(40)
            )
        )
        clients = [get_http_client() for _ in range(20)]
        after = {id(c) for c in clients}
        await http_tool.close_http_clients()
        return list(results), before | after, all(c.is_closed for c in clients)

    results, client_ids, all_closed = run_async(main)
    # 50 keep-alive connections by default, spread over clients of 10 connections each.
    assert len(client_ids) == 5
    assert all_closed
    assert sorted(int(r["data"]["query"]["i"]) for r in results) == list(range(40))


def test_verify_and_redirect_settings_get_separate_clients() -> None:
    async def main() -> bool:
        return get_http_client(verify_ssl=False) is not get_http_client(verify_ssl=True)

    assert run_async(main)
