"""Every NOETL_* environment variable is read here, and only here (docs/settings.md lists them).

Each :class:`Settings` field is the variable ``NOETL_<FIELD>`` (``sandbox_roots`` is
``NOETL_SANDBOX_ROOT``) with its type, default and description in one place: docs/settings.md is
generated from the fields (:mod:`noetl.settings_doc`) and a test keeps the page equal to them. An
empty value means unset. :func:`load_settings` is the one entry point: it reads the environment as
it is when called (tests and the CLI set variables after import), and a bad value is one
:class:`~noetl.errors.InputError` naming the variable.

A plain dataclass on purpose: every `noetl run` reads the settings, and a pydantic-settings model
costs about 130 M instructions more on that path (importing it discovers pydantic plugins and
builds its models), a seventh of the whole run (bench/startup.py).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ENV_PREFIX = "NOETL_"


def _default_home() -> Path:
    return Path.home() / ".noetl"


def _setting(default: Any = MISSING, *, doc: str, factory: Callable[[], Any] | None = None,
             env: str | None = None, secret: bool = False) -> Any:
    metadata = {"doc": doc, "env": env, "secret": secret}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True, slots=True)
class Settings:
    """NoETL's settings, from ``NOETL_*`` environment variables (secrets stay out of the repr)."""

    home: Path = _setting(factory=_default_home, doc=(
        "Where the local runtime keeps its SQLite store (`noetl.db`), DuckDB files, results on disk "
        "and the generated credential key."))
    database_url: str | None = _setting(None, secret=True, doc=(
        "PostgreSQL URL of the distributed runtime (`postgresql://user:password@host:port/db`); "
        "when set, commands act on PostgreSQL instead of the local store. A secret."))
    server_url: str | None = _setting(None, doc=(
        "The NoETL server the CLI talks to (as `--server-url`; a flag on the command line wins)."))
    api_token: str | None = _setting(None, secret=True, doc=(
        "One admin API token: what the server accepts, and what the CLI and API workers send. A secret."))
    secret_key: str | None = _setting(None, secret=True, doc=(
        "Key that encrypts stored credentials: a Fernet key or a passphrase. Unset: a key generated "
        "into `$NOETL_HOME/secret.key`. A secret."))
    http_max_connections: int = _setting(200, doc="Connections the http tool's shared client opens at most.")
    http_max_keepalive_connections: int = _setting(50, doc="Idle connections the http tool's client keeps.")
    http_keepalive_expiry_seconds: int = _setting(30, doc="Seconds an idle http connection is kept.")
    http_enable_http2: bool = _setting(True, doc="Whether the http tool offers HTTP/2.")
    python_pool_size: int = _setting(2, doc=(
        "Processes kept for python steps that run isolated (`isolation: process`, or a timeout)."))
    # distributed runtime (server and workers)
    enable_sql_api: bool = _setting(False, doc="Whether the server answers `/api/postgres/execute`.")
    sql_api_write: bool = _setting(False, doc="Whether that SQL endpoint may run statements that change data.")
    max_attempts: int = _setting(3, doc=(
        "Leases a command may get before its step fails with `lease_expired` (distributed runtime)."))
    lease_seconds: int = _setting(30, doc=(
        "Seconds a worker's lease on a command lasts without a heartbeat (as `--lease-seconds`)."))
    worker_concurrency: int = _setting(8, doc="Commands a worker runs at once (as `--concurrency`).")
    # more API tokens with roles (noetl.server.tokens), and the request body limit
    api_tokens: str | None = _setting(None, secret=True, doc=(
        "More API tokens with roles: `token=role` pairs separated by commas (roles: read, execute, "
        "admin). Secrets."))
    api_tokens_file: str | None = _setting(None, doc=(
        "A YAML or JSON file of API tokens: `{token: role}` or a list of `{token, role}`."))
    max_body_bytes: int = _setting(10 * 1024 * 1024, doc="Largest request body the server accepts, in bytes.")
    request_timeout_seconds: int = _setting(10, doc=(
        "Seconds a client of the server or `noetl ui` has to send a request's line and headers "
        "(the connection is closed); a client of the server's API has as long for each next part "
        "of its body (408)."))
    # logs streamed while a call runs (SPEC section 17): bytes stored per call, the rest is counted
    log_max_bytes: int = _setting(1024 * 1024, doc=(
        "Bytes of log lines stored per call while it runs; the lines beyond are counted, not stored."))
    # results stored by reference (SPEC section 19)
    results_dir: Path | None = _setting(None, doc=(
        "Directory of results stored with `output.store.kind: disk`. Unset: `$NOETL_HOME/results`."))
    results_s3_bucket: str | None = _setting(None, doc="Bucket of results stored with `kind: s3`.")
    results_s3_prefix: str = _setting("noetl/results", doc="Key prefix of results stored in S3.")
    results_s3_endpoint: str | None = _setting(None, doc=(
        "An S3-compatible server (MinIO, ...) instead of AWS S3."))
    # directories playbook file paths may point into (noetl.sandbox); empty: not confined locally
    sandbox_roots: tuple[Path, ...] = _setting((), env="NOETL_SANDBOX_ROOT", doc=(
        "Directories that playbook file paths must stay inside, on every runtime. Unset: not "
        "confined locally; the server confines to the working directory."))

    @property
    def sqlite_path(self) -> Path:
        return self.home / "noetl.db"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def result_dir(self) -> Path:
        return self.results_dir or self.home / "results"


def variable_name(name: str) -> str:
    """The environment variable of a Settings field."""
    return Settings.__dataclass_fields__[name].metadata.get("env") or ENV_PREFIX + name.upper()


def _integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise _bad(name, raw, "an integer") from None


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def _boolean(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise _bad(name, raw, "a boolean (true/false, 1/0, yes/no, on/off)")


def _paths(name: str, raw: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())


def _bad(name: str, raw: str, wanted: str) -> Exception:
    from noetl.errors import InputError

    shown = "" if _SECRET_NAME.search(name) else f", got {raw!r}"
    return InputError(f"{name} must be {wanted}{shown}")


# How a value is read, by the field's annotation (a field of a new type needs a reader here).
READERS: dict[str, Callable[[str, str], Any]] = {
    "str": lambda name, raw: raw,
    "str | None": lambda name, raw: raw,
    "int": _integer,
    "bool": _boolean,
    "Path": lambda name, raw: Path(raw).expanduser(),
    "Path | None": lambda name, raw: Path(raw).expanduser(),
    "tuple[Path, ...]": _paths,
}


def load_settings() -> Settings:
    """The settings as the environment says now."""
    values: dict[str, Any] = {}
    for setting in fields(Settings):
        name = variable_name(setting.name)
        raw = os.environ.get(name)
        if raw:  # unset or empty: the default
            values[setting.name] = READERS[str(setting.type)](name, raw)
    return Settings(**values)


# Variables whose values are secrets of NoETL itself (or of the database it uses), besides every
# NOETL_* whose name says it is one.
_SECRET_VARIABLES = ("DATABASE_URL", "PGPASSWORD")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|DATABASE_URL|DSN", re.IGNORECASE)


def is_own_variable(name: str) -> bool:
    """Whether the environment variable ``name`` is NoETL's own: one of its settings (the database
    URL, the credentials' key, the API tokens, ...) or the database's password. No playbook reads one
    as a secret (noetl.secrets.env_candidates)."""
    upper = name.upper()
    return upper in _SECRET_VARIABLES or upper in _setting_variables()


@functools.cache
def _setting_variables() -> frozenset[str]:
    return frozenset(variable_name(setting.name) for setting in fields(Settings))


def sensitive_setting_values() -> list[str]:
    """The values of NoETL's own secret settings, for the redactor: nothing user code may echo back.

    Covers ``NOETL_SECRET_KEY``, ``NOETL_API_TOKEN(S)``, ``NOETL_DATABASE_URL`` (the URL and the
    password inside it) and any other ``NOETL_*`` whose name mentions a key, token, secret or
    password; a token list contributes each token.

    Every execution's redactor starts from them (a server builds one per submission), so they are
    read again only when the environment or one of the files they come from has changed.
    """
    global _sensitive_memo
    environ = _real_environ()
    data = getattr(environ, "_data", None)  # os._Environ's own dict: a snapshot costs no decoding
    snapshot = tuple(data.items()) if isinstance(data, dict) else None
    memo = _sensitive_memo
    if snapshot is not None and memo is not None and memo[0] == snapshot and memo[2] == _stamps(memo[1]):
        return list(memo[3])
    files = _sensitive_files(environ)
    stamps = _stamps(files)  # before reading: a file changed meanwhile is read again next time
    values = _read_sensitive_values(environ, files)
    if snapshot is not None:
        _sensitive_memo = (snapshot, files, stamps, tuple(values))
    return values


# (environment snapshot, files read, their stamps, values) of the last sensitive_setting_values().
_sensitive_memo: tuple[tuple[Any, ...], list[Path], list[tuple[int, int, int] | None], tuple[str, ...]] | None = None


def _real_environ() -> Any:
    """``os.environ`` itself, also while a python step's scoped view of it is installed
    (noetl.tools.environment keeps the real mapping as ``real``): NoETL's secrets are its own."""
    return getattr(os.environ, "real", os.environ)


def _is_secret_variable(name: str, value: str) -> bool:
    return bool(value) and (name in _SECRET_VARIABLES or (name.startswith("NOETL_") and bool(_SECRET_NAME.search(name))))


def _sensitive_files(environ: Any) -> list[Path]:
    """The files secret values are read from: the generated credential key, then token files."""
    home = environ.get("NOETL_HOME")
    files = [(Path(home).expanduser() if home else _default_home()) / CREDENTIAL_KEY_FILE]
    files += [Path(value).expanduser() for name, value in environ.items()
              if name.endswith("_FILE") and _is_secret_variable(name, value)]
    return files


def _stamps(files: list[Path]) -> list[tuple[int, int, int] | None]:
    stamps: list[tuple[int, int, int] | None] = []
    for path in files:
        try:
            status = path.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((status.st_ino, status.st_size, status.st_mtime_ns))
    return stamps


def _read_sensitive_values(environ: Any, files: list[Path]) -> list[str]:
    values: list[str] = []
    for name, value in environ.items():
        if not _is_secret_variable(name, value):
            continue
        if name.endswith("_FILE"):
            values.extend(_tokens_in_file(value))  # NOETL_API_TOKENS_FILE: the tokens, not the path
            continue
        values.append(value)
        values.extend(_embedded_secrets(name, value))
    values.extend(_generated_key(files[0]))
    return values


# Where the credentials' key is generated when NOETL_SECRET_KEY is unset (noetl.credential_keys).
CREDENTIAL_KEY_FILE = "secret.key"


def _generated_key(path: Path) -> list[str]:
    """The generated credential key: NOETL_SECRET_KEY's stand-in, as secret, and readable by any
    code that reads the user's files."""
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return []  # not generated (yet), or not readable by this process: nothing to redact
    return [key] if key else []


def _tokens_in_file(path: str) -> list[str]:
    """The tokens of a token file: ``[{token: ..., role: ...}]`` or ``{token: role}``."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []  # unreadable here: the server reports it; nothing to redact from this process
    if isinstance(document, dict):
        return [str(token) for token in document]
    if isinstance(document, list):
        return [str(entry["token"]) for entry in document if isinstance(entry, dict) and entry.get("token")]
    return []


def _embedded_secrets(name: str, value: str) -> list[str]:
    if "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        return [unquote(password), password] if password else []
    if not name.endswith("TOKENS"):
        return []
    # A token list (NOETL_API_TOKENS): each token, whatever side of ":" or "=" its role is written.
    pieces = [piece.strip() for piece in re.split(r"[,;:=\s]+", value)]
    return [piece for piece in pieces if piece and piece.lower() not in _ROLE_WORDS and piece != value]


_ROLE_WORDS = frozenset({"read", "execute", "admin", "role", "token", "name"})
