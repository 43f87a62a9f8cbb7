"""Secret providers, the secrets tool and keychain resolution (OAuth2 against a real local server)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.httpserver import LocalHTTPServer  # noqa: E402
from support.tools import CredentialServices, make_call, open_store, run_async  # noqa: E402

from noetl.errors import InputError, NotFoundError, ToolError  # noqa: E402
from noetl.secrets import SecretResolver, resolve_keychain  # noqa: E402
from noetl.tools.secrets import run_secrets  # noqa: E402

CREDENTIALS = [
    {"name": "api", "type": "bearer", "data": {"token": "tok-from-store"}},
    {
        "name": "pg",
        "type": "postgres",
        "data": {"host": "db.internal", "user": "app", "password": "pg-pass-777"},
    },
    {
        "name": "oauth_client",
        "type": "oauth2",
        "data": {"client_id": "noetl-client", "client_secret": "client-secret-5150"},
    },
]


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)


async def services() -> CredentialServices:
    return CredentialServices(await open_store(*CREDENTIALS))


def test_env_provider_tries_name_then_upper_then_noetl_secret_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("api_token", "exact-1111")
    monkeypatch.setenv("DB_PASSWORD", "upper-2222")
    monkeypatch.setenv("NOETL_SECRET_WEATHER_KEY", "prefixed-3333")

    async def main() -> list[Any]:
        resolver = SecretResolver()
        values = [await resolver.resolve("env", n) for n in ("api_token", "db_password", "weather-key")]
        return [values, resolver.values]

    values, recorded = run_async(main)
    assert values == ["exact-1111", "upper-2222", "prefixed-3333"]
    assert {"exact-1111", "upper-2222", "prefixed-3333"} <= recorded


def test_env_provider_never_reads_noetl_s_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`{{ secret.KEY }}` read NOETL_SECRET_KEY (the credentials' key), `{{ secret.NOETL_DATABASE_URL }}`
    the runtime's database: what a playbook's author must never get."""
    monkeypatch.setenv("NOETL_SECRET_KEY", "the-credential-key")
    monkeypatch.setenv("NOETL_DATABASE_URL", "postgresql://noetl:db-pass@db/noetl")
    monkeypatch.setenv("PGPASSWORD", "db-pass")
    monkeypatch.setenv("NOETL_SECRET_EXPORT_TOKEN", "given-to-playbooks")

    async def refused(name: str) -> str:
        resolver = SecretResolver()
        with pytest.raises(NotFoundError) as caught:
            await resolver.resolve("env", name)
        with pytest.raises(NotFoundError):
            await resolver.lookup(name)
        return str(caught.value)

    for name in ("KEY", "key", "NOETL_SECRET_KEY", "NOETL_DATABASE_URL", "noetl_database_url", "PGPASSWORD"):
        message = run_async(lambda name=name: refused(name))  # type: ignore[misc]
        assert "the-credential-key" not in message and "db-pass" not in message
    assert run_async(lambda: SecretResolver().lookup("export_token")) == "given-to-playbooks"


def test_missing_env_secret_names_what_was_tried() -> None:
    async def main() -> None:
        await SecretResolver().resolve("env", "nowhere_to_be_found")

    with pytest.raises(NotFoundError, match="NOETL_SECRET_NOWHERE_TO_BE_FOUND"):
        run_async(main)


def test_credential_provider_selects_a_field_and_lookup_falls_back_to_credentials() -> None:
    async def main() -> list[Any]:
        svc = await services()
        resolver = SecretResolver(svc.get_credential)
        field = await resolver.resolve("credential", "pg", field="password")
        lone = await resolver.resolve("credential", "api")
        via_lookup = await resolver.lookup("api")
        return [field, lone, via_lookup, resolver.redactor.redact("pw pg-pass-777 host db.internal")]

    field, lone, via_lookup, redacted = run_async(main)
    assert field == "pg-pass-777"
    assert lone == "tok-from-store"
    assert via_lookup == "tok-from-store"
    assert redacted == "pw *** host db.internal"


@pytest.mark.parametrize(
    ("provider", "package", "module"),
    [
        ("google", "google-cloud-secret-manager", "google.cloud.secretmanager"),
        ("aws", "boto3", "boto3"),
        ("vault", "hvac", "hvac"),
    ],
)
def test_cloud_providers_without_their_client_name_the_package(
    provider: str, package: str, module: str
) -> None:
    try:
        installed = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        installed = False
    if installed:
        pytest.skip(f"{package} is installed here")

    async def main() -> None:
        await SecretResolver().resolve(provider, "projects/p/secrets/s")

    with pytest.raises(ToolError) as caught:
        run_async(main)
    assert caught.value.kind == "config"
    assert f"pip install {package}" in caught.value.message


def test_unknown_provider_is_a_config_error() -> None:
    async def main() -> None:
        await SecretResolver().resolve("carrier-pigeon", "x")

    with pytest.raises(ToolError, match="unknown secret provider"):
        run_async(main)


# --- the secrets tool -------------------------------------------------------------------------


def test_secrets_tool_returns_the_value_and_marks_it_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHER_API_KEY", "wk-0987654321")

    async def main() -> Any:
        call = make_call(await services())
        from_env = await run_secrets({"secret_name": "WEATHER_API_KEY"}, call)
        from_cred = await run_secrets(
            {"provider": "credential", "secret_name": "pg", "field": "password"}, call
        )
        return from_env, from_cred, call.secrets

    from_env, from_cred, secrets = run_async(main)
    assert from_env == {"value": "wk-0987654321", "name": "WEATHER_API_KEY", "provider": "env"}
    assert from_cred["value"] == "pg-pass-777"
    assert {"wk-0987654321", "pg-pass-777"} <= secrets


def test_secrets_tool_errors() -> None:
    async def missing() -> None:
        await run_secrets({"secret_name": "NOT_SET_ANYWHERE_42"}, make_call())

    with pytest.raises(ToolError) as caught:
        run_async(missing)
    assert caught.value.kind == "secret_not_found"

    async def nameless() -> None:
        await run_secrets({}, make_call())

    with pytest.raises(ToolError, match="secret_name"):
        run_async(nameless)


# --- keychain ---------------------------------------------------------------------------------


def test_keychain_kinds(monkeypatch: pytest.MonkeyPatch, http_server: LocalHTTPServer) -> None:
    monkeypatch.setenv("SENDGRID_KEY", "sg-abcdef123")
    entries = [
        {"name": "db", "kind": "credential", "credential": "pg"},
        {"name": "api", "kind": "bearer", "credential": "api"},
        {"name": "literal", "kind": "bearer", "token": "literal-token-1"},
        {"name": "region", "kind": "static", "value": "eu-west-1"},
        {"name": "mail", "kind": "secret_manager", "provider": "env", "secret_name": "SENDGRID_KEY"},
        {
            "name": "svc",
            "kind": "oauth2",
            "token_url": f"{http_server.url}/token",
            "credential": "oauth_client",
            "scope": ["read", "write"],
        },
        {
            "name": "svc_basic",
            "kind": "oauth2",
            "token_url": f"{http_server.url}/token",
            "client_id": "noetl-client",
            "client_secret": "client-secret-5150",
            "auth_method": "basic",
        },
    ]

    async def main() -> Any:
        svc = await services()
        resolver = SecretResolver(svc.get_credential)
        return await resolve_keychain(entries, resolver, svc), resolver

    keychain, resolver = run_async(main)
    assert keychain["db"]["host"] == "db.internal" and keychain["db"]["password"] == "pg-pass-777"
    assert keychain["api"] == {"token": "tok-from-store", "header": "Bearer tok-from-store"}
    assert keychain["literal"]["token"] == "literal-token-1"
    assert keychain["region"] == {"value": "eu-west-1"}
    assert keychain["mail"] == {"value": "sg-abcdef123"}
    assert keychain["svc"]["access_token"] == http_server.bearer_token
    assert keychain["svc"]["header"] == f"Bearer {http_server.bearer_token}"
    assert keychain["svc"]["scope"] == "read write"
    assert keychain["svc_basic"]["access_token"] == http_server.bearer_token
    # every secret is redacted from then on (static values too: the keychain is for secrets), and
    # every field of a keychain credential, the host as well as the password (SPEC section 20)
    text = f"{keychain['db']['password']} {keychain['svc']['access_token']} client-secret-5150 eu-west-1 db.internal"
    assert resolver.redactor.redact(text) == "*** *** *** *** ***"


def test_keychain_errors_name_the_entry(http_server: LocalHTTPServer) -> None:
    async def run(entries: Any) -> Any:
        svc = await services()
        return await resolve_keychain(entries, SecretResolver(svc.get_credential), svc)

    with pytest.raises(InputError, match="keychain entry 'x': unknown keychain kind"):
        run_async(lambda: run([{"name": "x", "kind": "telepathy"}]))
    with pytest.raises(NotFoundError, match="keychain entry 'y': credential 'nope' not found"):
        run_async(lambda: run({"y": {"kind": "credential", "credential": "nope"}}))
    with pytest.raises(ToolError) as caught:
        run_async(
            lambda: run(
                [
                    {
                        "name": "z",
                        "kind": "oauth2",
                        "token_url": f"{http_server.url}/token",
                        "client_id": "a",
                        "client_secret": "wrong-secret",
                    }
                ]
            )
        )
    assert "keychain entry 'z'" in caught.value.message and caught.value.kind == "http"
    assert run_async(lambda: run([])) == {}


def test_secrets_step_takes_the_secret_from_name_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    from noetl.api import run_playbook

    monkeypatch.setenv("TESTER_TOKEN", "s3cr3t-value")
    doc = run_playbook(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: s, path: t/s}\nworkflow:\n"
        "  - step: start\n    tool: {kind: secrets, provider: env, name: TESTER_TOKEN}\n"
        "    next: [{step: use}]\n"
        "  - step: use\n    tool: {kind: python, input: {t: '{{ start.value }}'}, code: 'result = len(t)'}\n",
        store_url="memory://",
    )
    assert doc["status"] == "completed", doc["error"]
    assert doc["result"] == len("s3cr3t-value")


def test_a_secret_manager_entry_with_a_map_resolves_one_secret_per_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMADEUS_KEY", "key-4242")
    monkeypatch.setenv("AMADEUS_SECRET", "secret-9191")
    entries = [{"name": "amadeus", "kind": "secret_manager", "provider": "env", "scope": "catalog",
                "map": {"client_id": "AMADEUS_KEY", "client_secret": "AMADEUS_SECRET"}}]

    async def main() -> Any:
        resolver = SecretResolver()
        return await resolve_keychain(entries, resolver), resolver

    keychain, resolver = run_async(main)
    assert keychain == {"amadeus": {"client_id": "key-4242", "client_secret": "secret-9191"}}
    assert resolver.redactor.redact("key-4242 secret-9191") == "*** ***"
