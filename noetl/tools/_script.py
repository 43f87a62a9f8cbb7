"""Load a tool's code or SQL from outside the playbook: ``script: {uri, source: {type, ...}}``.

Sources: ``file`` (default; a relative path is looked up beside the playbook first, then in the
working directory), ``inline`` (the text is ``source.code``), ``http`` (a full URL, or ``uri``
relative to ``source.endpoint``), ``gcs`` and ``s3`` (through their official client libraries,
imported only when used: the ``gcp`` and ``aws`` extras). Every tool that takes code or SQL (python,
postgres, duckdb) loads its ``script`` here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from noetl.errors import ToolError
from noetl.sandbox import confine
from noetl.tools.base import ToolCall


async def load_script(script: Any, call: ToolCall) -> str:
    """Return the text the ``script`` mapping points at; raise ToolError(kind="config"/"script")."""
    if isinstance(script, str):
        script = {"uri": script}
    if not isinstance(script, dict):
        raise ToolError("`script` needs a `uri`", kind="config")
    source = script.get("source") or {}
    if isinstance(source, str):
        source = {"type": source}
    if not isinstance(source, dict):
        raise ToolError("`script.source` must be a mapping with `type`", kind="config")
    if not script.get("uri") and str(source.get("type") or "").lower() != "inline":
        raise ToolError("`script` needs a `uri`", kind="config")
    uri = str(script.get("uri") or "inline")
    source_type = str(source.get("type") or _guess_source_type(uri)).lower()
    if source_type == "inline":
        return _inline_script(source)
    if source_type == "file":
        return _read_file_script(uri, call)
    if source_type in ("http", "https"):
        return await _read_http_script(uri, source)
    if source_type in ("gcs", "gs"):
        return await asyncio.to_thread(_read_gcs_script, uri)
    if source_type == "s3":
        return await asyncio.to_thread(_read_s3_script, uri, source.get("region"))
    raise ToolError(f"unknown script source type {source_type!r} (inline, file, http, gcs, s3)", kind="config")


def _inline_script(source: dict[str, Any]) -> str:
    code = source.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ToolError("script source 'inline' needs the text in `source.code`", kind="config")
    return code


def _guess_source_type(uri: str) -> str:
    scheme = urlparse(uri).scheme.lower()
    return {"gs": "gcs", "s3": "s3", "http": "http", "https": "http"}.get(scheme, "file")


def script_file_candidates(uri: str, playbook_dir: Path | None) -> list[Path]:
    """Where a ``file`` script may live, in lookup order."""
    path = Path(uri.removeprefix("file://")).expanduser()
    if path.is_absolute():
        return [path]
    candidates = []
    if playbook_dir is not None:
        candidates.append(Path(playbook_dir) / path)
    candidates.append(Path.cwd() / path)
    return candidates


def _read_file_script(uri: str, call: ToolCall) -> str:
    candidates = script_file_candidates(uri, call.playbook_dir)
    for candidate in candidates:
        if candidate.is_file():
            candidate = confine(candidate, what="script", extra_roots=[call.playbook_dir])
            try:
                return candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ToolError(f"cannot read script {candidate}: {exc}", kind="script") from exc
    looked = ", ".join(str(c) for c in candidates)
    raise ToolError(f"script file {uri!r} not found (looked in: {looked})", kind="script")


async def _read_http_script(uri: str, source: dict[str, Any]) -> str:
    import httpx

    url = uri if urlparse(uri).scheme else urljoin(str(source.get("endpoint") or "").rstrip("/") + "/", uri)
    if not urlparse(url).scheme:
        raise ToolError(f"script uri {uri!r} needs a full URL or `source.endpoint`", kind="config")
    headers = {str(k): str(v) for k, v in (source.get("headers") or {}).items()}
    timeout = float(source.get("timeout") or 30)
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            response = await client.request(str(source.get("method") or "GET"), url, headers=headers)
    except httpx.HTTPError as exc:
        raise ToolError(f"cannot fetch script {url}: {exc}", kind="script", retryable=True) from exc
    if response.status_code >= 400:
        raise ToolError(
            f"cannot fetch script {url}: HTTP {response.status_code}",
            kind="script",
            retryable=response.status_code in (429,) or response.status_code >= 500,
        )
    return response.text


def _split_bucket_uri(uri: str, scheme: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != scheme or not parsed.netloc:
        raise ToolError(f"script uri {uri!r} must look like {scheme}://bucket/path", kind="config")
    return parsed.netloc, parsed.path.lstrip("/")


def _read_gcs_script(uri: str) -> str:
    bucket, key = _split_bucket_uri(uri, "gs")
    try:
        from google.cloud import storage  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ToolError(
            "script source 'gcs' needs google-cloud-storage: pip install 'noetl[gcp]'",
            kind="config",
        ) from exc
    try:
        blob = storage.Client().bucket(bucket).blob(key)
        return str(blob.download_as_text())
    except Exception as exc:  # the client raises many unrelated types
        raise ToolError(f"cannot fetch script {uri}: {exc}", kind="script", retryable=True) from exc


def _read_s3_script(uri: str, region: str | None) -> str:
    bucket, key = _split_bucket_uri(uri, "s3")
    try:
        import boto3  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ToolError("script source 's3' needs boto3: pip install 'noetl[aws]'", kind="config") from exc
    try:
        body = boto3.client("s3", region_name=region).get_object(Bucket=bucket, Key=key)["Body"]
        return str(body.read().decode("utf-8"))
    except Exception as exc:  # botocore raises many unrelated types
        raise ToolError(f"cannot fetch script {uri}: {exc}", kind="script", retryable=True) from exc
