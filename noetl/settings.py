"""Every NOETL_* environment variable is read here, and only here."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        from noetl.errors import InputError

        raise InputError(f"{name} must be an integer, got {raw!r}") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str | None
    server_url: str | None
    api_token: str | None
    secret_key: str | None
    http_max_connections: int
    http_max_keepalive_connections: int
    http_keepalive_expiry_seconds: int
    http_enable_http2: bool
    python_pool_size: int
    # distributed runtime (server and workers)
    enable_sql_api: bool = False
    sql_api_write: bool = False
    max_attempts: int = 3
    lease_seconds: int = 30
    worker_concurrency: int = 8
    # more API tokens with roles (noetl.server.tokens), and the request body limit
    api_tokens: str | None = None
    api_tokens_file: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    # logs streamed while a call runs (SPEC section 17): bytes stored per call, the rest is counted
    log_max_bytes: int = 1024 * 1024
    # results stored by reference (SPEC section 19)
    results_dir: Path | None = None  # `output.store.kind: disk`; default $NOETL_HOME/results
    results_s3_bucket: str | None = None  # `kind: s3`
    results_s3_prefix: str = "noetl/results"
    results_s3_endpoint: str | None = None  # an S3-compatible server (MinIO, moto, ...)

    # directories playbook file paths may point into (noetl.sandbox); empty: not confined locally
    sandbox_roots: tuple[Path, ...] = ()

    @property
    def sqlite_path(self) -> Path:
        return self.home / "noetl.db"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def result_dir(self) -> Path:
        return self.results_dir or self.home / "results"


def load_settings() -> Settings:
    home = Path(os.environ.get("NOETL_HOME") or Path.home() / ".noetl").expanduser()
    return Settings(
        home=home,
        database_url=os.environ.get("NOETL_DATABASE_URL") or None,
        server_url=os.environ.get("NOETL_SERVER_URL") or None,
        api_token=os.environ.get("NOETL_API_TOKEN") or None,
        secret_key=os.environ.get("NOETL_SECRET_KEY") or None,
        http_max_connections=_env_int("NOETL_HTTP_MAX_CONNECTIONS", 200),
        http_max_keepalive_connections=_env_int("NOETL_HTTP_MAX_KEEPALIVE_CONNECTIONS", 50),
        http_keepalive_expiry_seconds=_env_int("NOETL_HTTP_KEEPALIVE_EXPIRY_SECONDS", 30),
        http_enable_http2=_env_bool("NOETL_HTTP_ENABLE_HTTP2", True),
        python_pool_size=_env_int("NOETL_PYTHON_POOL_SIZE", 2),
        enable_sql_api=_env_bool("NOETL_ENABLE_SQL_API", False),
        sql_api_write=_env_bool("NOETL_SQL_API_WRITE", False),
        max_attempts=_env_int("NOETL_MAX_ATTEMPTS", 3),
        lease_seconds=_env_int("NOETL_LEASE_SECONDS", 30),
        worker_concurrency=_env_int("NOETL_WORKER_CONCURRENCY", 8),
        api_tokens=os.environ.get("NOETL_API_TOKENS") or None,
        api_tokens_file=os.environ.get("NOETL_API_TOKENS_FILE") or None,
        max_body_bytes=_env_int("NOETL_MAX_BODY_BYTES", 10 * 1024 * 1024),
        log_max_bytes=_env_int("NOETL_LOG_MAX_BYTES", 1024 * 1024),
        results_dir=Path(os.environ["NOETL_RESULTS_DIR"]).expanduser() if os.environ.get("NOETL_RESULTS_DIR") else None,
        results_s3_bucket=os.environ.get("NOETL_RESULTS_S3_BUCKET") or None,
        results_s3_prefix=os.environ.get("NOETL_RESULTS_S3_PREFIX") or "noetl/results",
        results_s3_endpoint=os.environ.get("NOETL_RESULTS_S3_ENDPOINT") or None,
        sandbox_roots=tuple(Path(p).expanduser() for p in (os.environ.get("NOETL_SANDBOX_ROOT") or "").split(os.pathsep)
                            if p.strip()),
    )


# Variables whose values are secrets of NoETL itself (or of the database it uses), besides every
# NOETL_* whose name says it is one.
_SECRET_VARIABLES = ("DATABASE_URL", "PGPASSWORD")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|DATABASE_URL|DSN", re.IGNORECASE)


def sensitive_setting_values() -> list[str]:
    """The values of NoETL's own secret settings, for the redactor: nothing user code may echo back.

    Covers ``NOETL_SECRET_KEY``, ``NOETL_API_TOKEN(S)``, ``NOETL_DATABASE_URL`` (the URL and the
    password inside it) and any other ``NOETL_*`` whose name mentions a key, token, secret or
    password; a token list contributes each token.
    """
    values: list[str] = []
    for name, value in os.environ.items():
        if not value or not (name in _SECRET_VARIABLES or (name.startswith("NOETL_") and _SECRET_NAME.search(name))):
            continue
        if name.endswith("_FILE"):
            values.extend(_tokens_in_file(value))  # NOETL_API_TOKENS_FILE: the tokens, not the path
            continue
        values.append(value)
        values.extend(_embedded_secrets(name, value))
    return values


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
