"""Secrets: where they come from, and how they are kept out of everything NoETL stores or prints.

- Providers turn a secret *name* into its value: ``env`` (environment variables), ``credential``
  (a stored credential's data), and the cloud providers ``google`` (Secret Manager), ``aws``
  (Secrets Manager) and ``vault`` (HashiCorp Vault KV), whose client libraries are imported only
  when used.
- :class:`SecretResolver` resolves names through the providers and remembers every value it
  handed out, so that a :class:`Redactor` can replace those values with ``***`` in events, status
  documents, logs and error messages.
- :func:`resolve_keychain` turns a playbook's ``keychain:`` entries into the
  ``{{ keychain.<name>.<field> }}`` namespace at execution start.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any
from urllib.parse import quote

from noetl.dsl.kinds import KEYCHAIN_KINDS
from noetl.errors import InputError, NotFoundError, ToolError
from noetl.jsonconv import parse_json_text
from noetl.settings import is_own_variable, sensitive_setting_values

REDACTED = "***"
MIN_SECRET_LENGTH = 4  # shorter values would blank out ordinary words and numbers

CredentialGetter = Callable[[str], Awaitable[dict[str, Any]]]

# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------


def secret_strings(value: Any) -> Iterator[str]:
    """Every string (or number) leaf of a secret value, e.g. each field of a credential."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from secret_strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from secret_strings(item)


_SENSITIVE_FIELD = re.compile(
    r"pass|secret|token|key|private|credential|auth|signature|cookie", re.IGNORECASE
)


def sensitive_values(data: Any) -> list[str]:
    """The values of a credential's secret-looking fields (password, token, api_key, ...).

    Hosts, ports and user names stay readable in events; only what looks like a secret is redacted.
    """
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(value, Mapping | list):
                found.extend(sensitive_values(value))
            elif _SENSITIVE_FIELD.search(str(key)):
                found.extend(secret_strings(value))
    elif isinstance(data, list):
        for item in data:
            found.extend(sensitive_values(item))
    return found


@functools.lru_cache(maxsize=1024)
def _percent_encoded(text: str) -> str:
    """``text`` as it appears inside a URL. Remembered: every execution's redactor starts from the
    same settings' values (PROCESS_SECRETS holds them for the life of the process anyway)."""
    return quote(text, safe="")


_NO_TEXT = frozenset({int, float, bool, type(None)})  # values without a string inside


class Redactor:
    """Replaces known secret values with ``***`` wherever they occur inside strings.

    ``feeds``: another redactor that learns every value this one learns (an execution's redactor
    feeds :data:`PROCESS_SECRETS`, which the log records of the whole process pass through).
    """

    def __init__(self, secrets: Iterable[Any] = (), *, feeds: Redactor | None = None) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._feeds = feeds
        self._lock = threading.Lock()  # log records are redacted on any thread
        self.add(*secrets)

    def add(self, *values: Any) -> None:
        """Remember more secret values (dicts and lists contribute each string leaf)."""
        if not any(values):  # a tool's outcome names no secret: nothing to lock for
            return
        found: set[str] = set()
        for value in values:
            for text in secret_strings(value):
                if len(text) < MIN_SECRET_LENGTH:
                    continue
                found.add(text)
                # A password inside a connection URL appears percent-encoded.
                found.add(_percent_encoded(text))
        with self._lock:
            new = found - self._secrets
            if new:
                self._secrets |= new
                self._pattern = None
        if new and self._feeds is not None:
            self._feeds.add(*new)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._secrets:
            with self._lock:
                # Longest first, so a secret that contains another is replaced whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
            pattern = self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        return pattern

    def redact_text(self, text: str) -> str:
        pattern = self._compiled()
        return pattern.sub(REDACTED, text) if pattern else text

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` with secrets replaced in every string, key or value, at any depth."""
        if not self._secrets:
            return value
        return self._redact(value)

    def finds_secret(self, value: Any) -> bool:
        """Whether :meth:`redact` would change ``value``, found without building the copy."""
        if type(value) in _NO_TEXT:  # most events' result and error: None
            return False
        pattern = self._compiled()
        return pattern is not None and self._finds(pattern, value)

    def found_in(self, value: Any) -> set[str]:
        """The secret values that occur in ``value``'s strings, keys included (what :meth:`redact`
        would replace)."""
        pattern = self._compiled()
        if pattern is None:
            return set()
        return {match.group(0) for text in _texts(value) for match in pattern.finditer(text)}

    def _finds(self, pattern: re.Pattern[str], value: Any) -> bool:
        """A walk with a stack, not recursion: every event and command is searched, and a generator per
        container level cost more than the searches themselves (3x on an event's meta)."""
        search = pattern.search
        pending = [value]
        walked: set[int] = set()  # containers seen: a value that holds itself ends the walk, not loops it
        while pending:
            value = pending.pop()
            if isinstance(value, str):
                if search(value) is not None:
                    return True
                continue
            if id(value) in walked:
                continue
            walked.add(id(value))
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(key, str) and search(key) is not None:
                        return True
                    if type(item) is str:
                        if search(item) is not None:
                            return True
                    elif type(item) not in _NO_TEXT:  # numbers skipped: a list of a million took seconds
                        pending.append(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    if type(item) is str:
                        if search(item) is not None:
                            return True
                    elif type(item) not in _NO_TEXT:
                        pending.append(item)
            elif _lazy_list(value) and self._finds_in_chunks(pattern, value):
                return True
        return False

    def _finds_in_chunks(self, pattern: re.Pattern[str], items: Sequence[Any]) -> bool:
        """A sequence that stands for a long list (rows kept as JSON): searched a chunk of decoded
        items at a time, so they never exist all at once."""
        iterator = iter(items)
        while chunk := list(islice(iterator, _CHUNK_ITEMS)):
            if self._finds(pattern, chunk):
                return True
        return False

    def _redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {
                (self.redact_text(k) if isinstance(k, str) else k): self._redact(v) for k, v in value.items()
            }
        if isinstance(value, list):
            return [item if type(item) in _NO_TEXT else self._redact(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self._redact(item) for item in value)
        if _lazy_list(value):
            return [self._redact(item) for item in value]
        return value


_CHUNK_ITEMS = 10_000


def _lazy_list(value: Any) -> bool:
    """A sequence that is not a list but stands for one (a big result's rows kept as JSON)."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray | memoryview)


def _texts(value: Any) -> Iterator[str]:
    """Every string of ``value``, keys and values, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield key
            yield from _texts(item)
    elif isinstance(value, list | tuple) or _lazy_list(value):
        for item in value:
            yield from _texts(item)


# Every secret value any execution of this process has met, for log records (noetl.logredact).
PROCESS_SECRETS = Redactor()

# A value already blanked (``***`` before a space, ``&``, ``: `` or the end) is left as it is: blanking a line
# twice (an error message, then the log line that carries it) would eat the ``:`` after the URL.
_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\*\*\*(?=[\s&]|:\s|$)|\S+)", re.IGNORECASE)
# A scheme starts where a word starts, and each part is bounded: tried from every letter of a long
# word, with unbounded parts, the search cost time quadratic in the line (log lines are any text).
_URL_USERINFO = re.compile(r"(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]{0,31}://[^:/@\s]{0,256}:)([^@\s]{1,256})(@)",
                           re.IGNORECASE)


def redact_connection_secrets(text: str) -> str:
    """Blank passwords in conninfo strings (``password=...``) and URLs (``scheme://u:p@host``).

    Drivers like to echo the connection string they failed with; this catches passwords even when
    the exact value is not known to a :class:`Redactor`.
    """
    text = _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + REDACTED, text)
    return _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)


# --------------------------------------------------------------------------------------------
# Providers
# --------------------------------------------------------------------------------------------


def env_candidates(name: str) -> list[str]:
    """Environment variable names tried for a secret, in order; never one of NoETL's own settings
    (``{{ secret.NOETL_DATABASE_URL }}``, or ``{{ secret.KEY }}`` as NOETL_SECRET_KEY, would hand the
    database or the credentials' key to anyone who may run a playbook)."""
    sanitized = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
    candidates = [name, sanitized, f"NOETL_SECRET_{sanitized}"]
    return [candidate for candidate in dict.fromkeys(candidates) if not is_own_variable(candidate)]


def resolve_env_secret(name: str) -> str | None:
    for candidate in env_candidates(name):
        value = os.environ.get(candidate)
        if value is not None:
            return value
    return None


def select_field(data: Any, field: str | None, *, what: str) -> Any:
    """Pick ``field`` out of a secret's data (dotted paths work); without a field, a lone value."""
    if field:
        current = data
        for part in str(field).split("."):
            if not isinstance(current, Mapping) or part not in current:
                raise NotFoundError(f"{what} has no field {field!r}")
            current = current[part]
        return current
    if isinstance(data, Mapping) and len(data) == 1:
        return next(iter(data.values()))
    return data


def _missing_client(provider: str, package: str) -> ToolError:
    return ToolError(
        f"secret provider {provider!r} needs the {package} package: pip install {package}",
        kind="config",
    )


def _google_secret(name: str, options: Mapping[str, Any]) -> str:
    try:
        from google.cloud import secretmanager  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise _missing_client("google", "google-cloud-secret-manager") from exc
    resource = name
    if not resource.startswith("projects/"):
        project = (
            options.get("project_id") or options.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT")
        )
        if not project:
            raise ToolError(
                f"secret {name!r}: give a full 'projects/<p>/secrets/<s>' name or `project_id`", kind="config"
            )
        resource = f"projects/{project}/secrets/{name}"
    if "/versions/" not in resource:
        resource = f"{resource}/versions/{options.get('version') or 'latest'}"
    client = secretmanager.SecretManagerServiceClient()
    response = client.access_secret_version(request={"name": resource})
    return str(response.payload.data.decode("utf-8"))


def _aws_secret(name: str, options: Mapping[str, Any]) -> str:
    try:
        import boto3  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise _missing_client("aws", "boto3") from exc
    client = boto3.client("secretsmanager", region_name=options.get("region"))
    response = client.get_secret_value(SecretId=name)
    secret = response.get("SecretString")
    if secret is None:
        secret = response["SecretBinary"].decode("utf-8")
    return str(secret)


def _vault_secret(name: str, options: Mapping[str, Any]) -> Any:
    try:
        import hvac  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise _missing_client("vault", "hvac") from exc
    client = hvac.Client(
        url=options.get("url") or os.environ.get("VAULT_ADDR"),
        token=options.get("token") or os.environ.get("VAULT_TOKEN"),
    )
    mount = options.get("mount_point") or "secret"
    response = client.secrets.kv.v2.read_secret_version(path=name, mount_point=mount)
    return response["data"]["data"]


_CLOUD_PROVIDERS: dict[str, Callable[[str, Mapping[str, Any]], Any]] = {
    "google": _google_secret,
    "gcp": _google_secret,
    "google_secret_manager": _google_secret,
    "aws": _aws_secret,
    "aws_secrets_manager": _aws_secret,
    "vault": _vault_secret,
    "hashicorp_vault": _vault_secret,
}

PROVIDERS = ("env", "credential", *sorted(_CLOUD_PROVIDERS))


class SecretResolver:
    """Resolves secrets through the providers and records every value it returns."""

    def __init__(self, get_credential: CredentialGetter | None = None) -> None:
        self._get_credential = get_credential
        # NoETL's own secrets (database password, API tokens, key) are redacted in every execution,
        # whatever route user code found to read them.
        self.redactor = Redactor(sensitive_setting_values(), feeds=PROCESS_SECRETS)
        self._cache: dict[tuple[str, str, str | None], Any] = {}

    @property
    def values(self) -> frozenset[str]:
        return self.redactor.secrets

    def record(self, value: Any, *more: Any) -> Any:
        """Remember values (each string leaf) as secret; returns the first unchanged."""
        self.redactor.add(value, *more)
        return value

    async def resolve(
        self, provider: str, name: str, *, field: str | None = None, options: Mapping[str, Any] | None = None
    ) -> Any:
        """The value of secret ``name`` from ``provider``; ``field`` selects inside structured data."""
        provider = (provider or "env").lower()
        key = (provider, name, field)
        if key not in self._cache:
            self._cache[key] = self.record(await self._fetch(provider, name, field, options or {}))
        return self._cache[key]

    async def _fetch(self, provider: str, name: str, field: str | None, options: Mapping[str, Any]) -> Any:
        # Cloud secrets often hold a JSON document; it is parsed only when a field is asked for.
        if not name:
            raise ToolError("a secret needs a `name`", kind="config")
        if provider == "env":
            value = resolve_env_secret(name)
            if value is None:
                tried = ", ".join(env_candidates(name))
                raise NotFoundError(f"secret {name!r} not found in the environment (tried {tried})")
            return select_field(parse_json_text(value), field, what=f"secret {name!r}") if field else value
        if provider == "credential":
            credential = await self._credential(name)
            return select_field(credential.get("data") or {}, field, what=f"credential {name!r}")
        fetch = _CLOUD_PROVIDERS.get(provider)
        if fetch is None:
            raise ToolError(
                f"unknown secret provider {provider!r} (known: {', '.join(PROVIDERS)})", kind="config"
            )
        try:
            value = await asyncio.to_thread(fetch, name, options)
        except (ToolError, NotFoundError):
            raise
        except Exception as exc:  # cloud clients raise their own exception trees
            raise ToolError(f"secret {name!r} from {provider}: {exc}", kind="secret", retryable=True) from exc
        return select_field(parse_json_text(value), field, what=f"secret {name!r}") if field else value

    async def _credential(self, name: str) -> dict[str, Any]:
        if self._get_credential is None:
            raise ToolError("the credential secret provider needs a credential store", kind="config")
        credential = await self._get_credential(name)
        self.record(sensitive_values(credential.get("data")))
        return credential

    async def lookup(self, name: str) -> Any:
        """``{{ secret.NAME }}``: the environment first, then a stored credential named ``NAME``."""
        value = resolve_env_secret(name)
        if value is not None:
            return self.record(value)
        if self._get_credential is not None:
            try:
                return await self.resolve("credential", name)
            except NotFoundError:
                pass
        raise NotFoundError(
            f"secret {name!r} not found (environment: {', '.join(env_candidates(name))}; credentials)"
        )

    async def namespace(self, names: Iterable[str]) -> dict[str, Any]:
        """Resolve every ``secret.NAME`` a playbook uses into the render context's ``secret`` map."""
        return {name: await self.lookup(name) for name in names}


# --------------------------------------------------------------------------------------------
# Keychain
# --------------------------------------------------------------------------------------------


def keychain_entries(entries: Any) -> list[dict[str, Any]]:
    """Accept a list of ``{name, kind, ...}`` or a mapping ``{name: {kind, ...}}``."""
    if not entries:
        return []
    if isinstance(entries, Mapping):
        return [{"name": name, **(spec or {})} for name, spec in entries.items()]
    if isinstance(entries, list) and all(isinstance(e, Mapping) for e in entries):
        return [dict(e) for e in entries]
    raise InputError("keychain must be a list of entries with `name` and `kind`")


def _credential_name(entry: Mapping[str, Any]) -> str | None:
    for key in ("credential", "credential_ref", "ref", "key", "auth"):
        value = entry.get(key)
        if isinstance(value, str) and value:
            return value
    return None


async def resolve_keychain(
    entries: Any, resolver: SecretResolver, services: Any = None
) -> dict[str, dict[str, Any]]:
    """Resolve ``keychain:`` entries (already rendered) into ``{name: {field: value}}``.

    Kinds: ``credential`` (a stored credential's data), ``bearer`` (``token``), ``static``
    (``value`` or a ``data`` map), ``secret_manager`` (``provider``, ``name``/``secret_name``,
    ``field``) and ``oauth2`` (client-credentials grant against ``token_url``). Every value is
    recorded in ``resolver`` so it is redacted from then on.
    """
    resolved: dict[str, dict[str, Any]] = {}
    for entry in keychain_entries(entries):
        name = entry.get("name")
        if not name:
            raise InputError("every keychain entry needs a `name`")
        kind = str(entry.get("kind") or entry.get("type") or "static").lower()
        try:
            resolved[str(name)] = await _resolve_keychain_entry(kind, entry, resolver, services)
        except ToolError as exc:
            raise ToolError(
                f"keychain entry {name!r}: {exc.message}", kind=exc.kind, retryable=exc.retryable
            ) from exc
        except (NotFoundError, InputError) as exc:
            raise type(exc)(f"keychain entry {name!r}: {exc.message}") from exc
    return resolved


async def _resolve_keychain_entry(
    kind: str, entry: Mapping[str, Any], resolver: SecretResolver, services: Any
) -> dict[str, Any]:
    if kind == "credential":
        return await _credential_fields(entry, resolver, services)
    if kind == "bearer":
        token = entry.get("token")
        if token is None and _credential_name(entry):
            fields = await _credential_fields(entry, resolver, services)
            token = fields.get("token") or fields.get("access_token") or fields.get("bearer_token")
        if not token:
            raise InputError("a bearer entry needs `token` or `credential`")
        resolver.record(token)
        return {"token": token, "header": f"Bearer {token}"}
    if kind == "static":
        data = entry.get("data") if isinstance(entry.get("data"), Mapping) else None
        fields = dict(data) if data is not None else {"value": entry.get("value")}
        resolver.record(fields)
        return fields
    if kind in ("secret_manager", "secret"):
        provider = str(entry.get("provider") or "env")
        if isinstance(entry.get("map"), Mapping):  # {field: secret name or path}, one secret each
            return {str(field): await resolver.resolve(provider, str(path), field=None, options=entry)
                    for field, path in entry["map"].items()}
        secret_name = entry.get("secret_name") or entry.get("secret") or entry.get("path") or entry.get("ref")
        value = await resolver.resolve(
            provider, str(secret_name or ""), field=entry.get("field"), options=entry
        )
        return dict(value) if isinstance(value, Mapping) else {"value": value}
    if kind == "oauth2":
        return await _oauth2_client_credentials(entry, resolver, services)
    raise InputError(f"unknown keychain kind {kind!r} ({', '.join(KEYCHAIN_KINDS)})")


async def _credential_fields(
    entry: Mapping[str, Any], resolver: SecretResolver, services: Any
) -> dict[str, Any]:
    credential_name = _credential_name(entry)
    if not credential_name:
        raise InputError("a credential entry needs `credential: <name>`")
    getter = getattr(services, "get_credential", None) or resolver._get_credential
    if getter is None:
        raise InputError("credentials are not available here (no credential store)")
    credential = await getter(credential_name)
    data = dict(credential.get("data") or {})
    # Every field is secret here, not only the secret-looking ones: a keychain entry exposes the
    # whole credential to templates, and a field named `dsn` or `conn` can hold a password too.
    resolver.record(data)
    return data


async def _oauth2_client_credentials(
    entry: Mapping[str, Any], resolver: SecretResolver, services: Any
) -> dict[str, Any]:
    import httpx

    settings: dict[str, Any] = {}
    if _credential_name(entry):
        settings.update(await _credential_fields(entry, resolver, services))
    settings.update({k: v for k, v in entry.items() if v is not None})
    # NoETL's own spelling: the token request as written (endpoint, method, headers, data form)
    written = dict(settings["data"]) if isinstance(settings.get("data"), Mapping) else {}
    token_url = settings.get("token_url") or settings.get("token_uri") or settings.get("endpoint") or settings.get("url")
    client_id = settings.get("client_id") or written.get("client_id")
    client_secret = settings.get("client_secret") or written.get("client_secret")
    if not (token_url and client_id and client_secret):
        raise InputError("an oauth2 entry needs `token_url` (or `endpoint`), `client_id` and `client_secret` "
                         "(beside them or in `data`)")
    resolver.record(client_secret)
    form: dict[str, str] = {"grant_type": "client_credentials"}
    form.update({str(k): str(v) for k, v in written.items() if v is not None})
    for key in ("scope", "audience", "resource"):
        if settings.get(key):
            value = settings[key]
            form[key] = " ".join(value) if isinstance(value, list) else str(value)
    auth: httpx.BasicAuth | None = None
    if str(settings.get("auth_method") or "body").lower() == "basic":
        auth = httpx.BasicAuth(str(client_id), str(client_secret))
    else:
        form.update({"client_id": str(client_id), "client_secret": str(client_secret)})
    try:
        async with httpx.AsyncClient(timeout=float(settings.get("timeout") or 30)) as client:
            headers = {str(k): str(v) for k, v in (settings.get("headers") or {}).items()} \
                if isinstance(settings.get("headers"), Mapping) else None
            response = await client.request(str(settings.get("method") or "POST").upper(), str(token_url),
                                            data=form, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT)
    except httpx.HTTPError as exc:
        raise ToolError(
            f"oauth2 token request to {token_url} failed: {exc}", kind="http_connect", retryable=True
        ) from exc
    if response.status_code >= 400:
        raise ToolError(
            f"oauth2 token request to {token_url} failed: HTTP {response.status_code}",
            kind="http",
            retryable=response.status_code == 429 or response.status_code >= 500,
        )
    try:
        token = response.json()
    except ValueError as exc:
        raise ToolError(f"oauth2 token endpoint {token_url} did not return JSON", kind="http_decode") from exc
    if not isinstance(token, Mapping) or not token.get("access_token"):
        raise ToolError(f"oauth2 token endpoint {token_url} returned no access_token", kind="http_decode")
    fields = dict(token)
    resolver.record(fields["access_token"], fields.get("refresh_token"))
    token_type = str(fields.setdefault("token_type", "Bearer"))
    # Servers answer "bearer" or "Bearer"; the Authorization header scheme is "Bearer".
    scheme = "Bearer" if token_type.lower() == "bearer" else token_type
    fields["header"] = f"{scheme} {fields['access_token']}"
    return fields
