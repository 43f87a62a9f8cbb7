"""A hook's signing secret is sealed with the credentials' key and opened to check a signature;
a secret an older version stored in clear still checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from noetl import hooks
from noetl.credential_keys import forget_cached_keys
from noetl.errors import StoreError
from noetl.store.base import HookRecord


@pytest.fixture(autouse=True)
def own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_HOME", str(tmp_path))
    monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)
    forget_cached_keys()


def delivery(secret: str, body: bytes = b'{"ref": "main"}') -> hooks.Delivery:
    now = str(int(datetime.now(UTC).timestamp()))
    return hooks.Delivery(body, {hooks.TIMESTAMP_HEADER: now,
                                 hooks.SIGNATURE_HEADER: hooks.signature(secret, now, body)})


def test_a_sealed_secret_checks_signatures_and_is_not_in_the_record() -> None:
    record = hooks.checked_hook(name="gh", path="ops/deploy", secret="s3cret-value")
    assert "s3cret-value" not in record.secret
    hooks.authenticate(record, delivery("s3cret-value"), datetime.now(UTC))
    with pytest.raises(hooks.DeliveryRefused):
        hooks.authenticate(record, delivery("another"), datetime.now(UTC))


def test_a_secret_stored_in_clear_by_an_older_version_still_checks() -> None:
    legacy = HookRecord(name="gh", path="ops/deploy", secret="plain-secret")
    hooks.authenticate(legacy, delivery("plain-secret"), datetime.now(UTC))


def test_a_secret_sealed_with_another_key_is_a_clear_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    record = hooks.checked_hook(name="gh", path="ops/deploy", secret="s3cret-value")
    monkeypatch.setenv("NOETL_SECRET_KEY", "a different passphrase")
    forget_cached_keys()
    with pytest.raises(StoreError, match="hook 'gh': its secret was stored with a different key"):
        hooks.authenticate(record, delivery("s3cret-value"), datetime.now(UTC))


def test_a_payload_template_sees_no_credential_header_of_the_delivery() -> None:
    """`headers` in a payload template is every header but the delivery's credentials: those of
    the hook (signature, token) and HTTP's own (Authorization, Proxy-Authorization, Cookie)."""
    record = hooks.checked_hook(name="gh", path="ops/deploy", token="hook-token-1",
                                payload_template={"seen": "{{ headers }}"})
    credentials = {"authorization": "Bearer hook-token-1", hooks.TOKEN_HEADER: "hook-token-1",
                   hooks.SIGNATURE_HEADER: "sha256=00", "cookie": "session=c00kie",
                   "proxy-authorization": "Basic cHJveHk6c2VjcmV0"}
    payload = hooks.execution_payload(record, hooks.Delivery(b"{}", {**credentials, "user-agent": "sender/1"}))
    assert payload == {"seen": {"user-agent": "sender/1"}}
