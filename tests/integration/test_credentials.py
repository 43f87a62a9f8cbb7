"""Credentials: registration from documents and files, encryption at rest, keys, lookups."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from noetl import credentials
from noetl.errors import InputError, NotFoundError, StoreError
from noetl.store.memory import MemoryStore
from noetl.store.sqlite import SqliteStore

PASSWORD = "correct-horse-battery-staple"
PG_DOC = {
    "name": "pg_local",
    "type": "postgres",
    "description": "local database",
    "data": {"host": "localhost", "port": 5432, "user": "noetl", "password": PASSWORD, "database": "demo"},
}


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("NOETL_HOME", str(home))
    monkeypatch.delenv("NOETL_SECRET_KEY", raising=False)
    credentials.forget_cached_keys()
    return home


def with_memory_store(main: Any) -> Any:
    async def wrapper() -> Any:
        store = MemoryStore()
        await store.open()
        try:
            return await main(store)
        finally:
            await store.close()

    return asyncio.run(wrapper())


def test_register_then_get_returns_the_decrypted_credential() -> None:
    async def main(store: MemoryStore) -> Any:
        summary = await credentials.register_credential(store, PG_DOC)
        return summary, await credentials.get_credential(store, "pg_local")

    summary, credential = with_memory_store(main)
    assert summary["name"] == "pg_local" and summary["type"] == "postgres"
    assert "data" not in summary
    assert credential == {
        "name": "pg_local",
        "type": "postgres",
        "data": PG_DOC["data"],
        "description": "local database",
    }


def test_stored_blob_is_encrypted_and_the_key_file_is_private(_home: Path) -> None:
    async def main(store: MemoryStore) -> bytes:
        await credentials.register_credential(store, PG_DOC)
        record = await store.get_credential("pg_local")
        assert record is not None
        return record.data

    blob = with_memory_store(main)
    assert PASSWORD.encode() not in blob
    assert b"localhost" not in blob
    key_file = _home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_bytes().strip())  # a real Fernet key


def test_sqlite_database_file_never_holds_the_password(tmp_path: Path) -> None:
    db_path = tmp_path / "noetl.db"

    async def main() -> dict[str, Any]:
        store = SqliteStore(db_path)
        await store.open()
        try:
            await credentials.register_credential(store, PG_DOC)
            return await credentials.get_credential(store, "pg_local")
        finally:
            await store.close()

    assert asyncio.run(main())["data"]["password"] == PASSWORD
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("noetl.db*"))
    assert b"pg_local" in on_disk
    assert PASSWORD.encode() not in on_disk


def test_the_same_key_file_is_reused_across_processes(_home: Path) -> None:
    async def main(store: MemoryStore) -> dict[str, Any]:
        await credentials.register_credential(store, PG_DOC)
        credentials.forget_cached_keys()  # as a new process would
        return await credentials.get_credential(store, "pg_local")

    first_key = None

    def remember_key() -> None:
        nonlocal first_key
        first_key = (_home / "secret.key").read_bytes()

    assert with_memory_store(main)["data"]["password"] == PASSWORD
    remember_key()
    credentials.forget_cached_keys()
    with_memory_store(main)
    assert (_home / "secret.key").read_bytes() == first_key


@pytest.mark.parametrize("secret_key", [Fernet.generate_key().decode(), "any passphrase will do"],
                         ids=["fernet-key", "passphrase"])  # stable ids: test runners compare collections
def test_noetl_secret_key_is_used_and_a_different_key_cannot_decrypt(
    monkeypatch: pytest.MonkeyPatch, _home: Path, secret_key: str
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", secret_key)

    async def main(store: MemoryStore) -> None:
        await credentials.register_credential(store, PG_DOC)
        assert (await credentials.get_credential(store, "pg_local"))["data"]["password"] == PASSWORD
        monkeypatch.setenv("NOETL_SECRET_KEY", "another key entirely")
        with pytest.raises(StoreError) as caught:
            await credentials.get_credential(store, "pg_local")
        assert "different key" in str(caught.value)

    with_memory_store(main)
    assert not (_home / "secret.key").exists()


def test_list_has_no_data_and_delete_removes() -> None:
    async def main(store: MemoryStore) -> Any:
        await credentials.register_credential(store, PG_DOC)
        await credentials.register_credential(
            store, {"name": "api", "type": "bearer", "data": {"token": "t-123456"}}
        )
        listed = await credentials.list_credentials(store)
        await credentials.delete_credential(store, "api")
        remaining = await credentials.list_credentials(store)
        with pytest.raises(NotFoundError) as caught:
            await credentials.delete_credential(store, "api")
        return listed, remaining, str(caught.value)

    listed, remaining, message = with_memory_store(main)
    assert [c["name"] for c in listed] == ["api", "pg_local"]
    assert all("data" not in c for c in listed)
    assert "t-123456" not in json.dumps(listed)
    assert [c["name"] for c in remaining] == ["pg_local"]
    assert message == "credential 'api' not found"


def test_unknown_credential_is_not_found_with_its_name() -> None:
    async def main(store: MemoryStore) -> None:
        await credentials.get_credential(store, "missing_cred")

    with pytest.raises(NotFoundError, match="credential 'missing_cred' not found"):
        with_memory_store(main)


def test_registering_again_replaces_the_data() -> None:
    async def main(store: MemoryStore) -> dict[str, Any]:
        await credentials.register_credential(store, PG_DOC)
        await credentials.register_credential(
            store, {**PG_DOC, "data": {**PG_DOC["data"], "password": "new-password"}}
        )
        return await credentials.get_credential(store, "pg_local")

    assert with_memory_store(main)["data"]["password"] == "new-password"


# --- files ------------------------------------------------------------------------------------


def register_file(path: Path) -> list[dict[str, Any]]:
    async def main(store: MemoryStore) -> list[dict[str, Any]]:
        await credentials.register_credential_file(store, path)
        return [
            await credentials.get_credential(store, c["name"])
            for c in await credentials.list_credentials(store)
        ]

    result: list[dict[str, Any]] = with_memory_store(main)
    return result


def test_yaml_json_catalog_style_and_multi_document_files(tmp_path: Path) -> None:
    (tmp_path / "pg.json").write_text(json.dumps(PG_DOC))
    assert register_file(tmp_path / "pg.json")[0]["data"]["password"] == PASSWORD

    (tmp_path / "catalog.yaml").write_text(
        "apiVersion: noetl.io/v1\nkind: Credential\nmetadata:\n  name: gcs_hmac\n  description: bucket keys\n"
        "spec:\n  type: gcs\n  data:\n    key_id: K\n    secret: S-123456\n"
    )
    (catalog,) = register_file(tmp_path / "catalog.yaml")
    assert catalog == {
        "name": "gcs_hmac",
        "type": "gcs",
        "data": {"key_id": "K", "secret": "S-123456"},
        "description": "bucket keys",
    }

    (tmp_path / "many.yaml").write_text(
        "name: a\ntype: bearer\ndata: {token: t-aaaa}\n---\nkind: Credential\nname: b\ntype: basic\n"
        "data: {username: u, password: p-bbbb}\n"
    )
    assert [c["name"] for c in register_file(tmp_path / "many.yaml")] == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        ("name: x\ntype: bearer\ndata: [unclosed\n", ".yaml", ".yaml:4:1: invalid YAML"),
        ('{"name": "x", ', ".json", "invalid JSON"),
        ("type: bearer\ndata: {token: t}\n", ".yaml", "needs a `name`"),
        ("name: x\ntype: bearer\n", ".yaml", "needs a non-empty `data` mapping"),
        ("name: 'bad name!'\ndata: {a: 1}\n", ".yaml", "may only use"),
        ("", ".yaml", "no credential in file"),
        ("- 1\n- 2\n", ".yaml", "must be a mapping"),
    ],
)
def test_bad_files_get_one_line_errors_naming_the_file(
    tmp_path: Path, content: str, suffix: str, expected: str
) -> None:
    path = tmp_path / f"cred{suffix}"
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        register_file(path)
    message = str(caught.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="credential file not found"):
        register_file(tmp_path / "nope.yaml")


def test_a_passphrase_is_stretched_with_scrypt_and_a_fresh_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", "a passphrase, not a key")

    async def main(store: MemoryStore) -> list[bytes]:
        blobs = []
        for _ in range(2):
            await credentials.register_credential(store, PG_DOC)
            record = await store.get_credential("pg_local")
            assert record is not None
            blobs.append(record.data)
        return blobs

    first, second = with_memory_store(main)
    assert first.startswith(b"noetl-scrypt:") and second.startswith(b"noetl-scrypt:")
    assert first.split(b":")[1] != second.split(b":")[1]  # a new salt each time


def test_credentials_of_the_unsalted_kdf_are_read_and_migrated(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import hashlib

    from noetl.store.base import CredentialRecord

    passphrase = "the passphrase of an older store"
    monkeypatch.setenv("NOETL_SECRET_KEY", passphrase)
    old_key = base64.urlsafe_b64encode(hashlib.sha256(b"noetl-credential-key:" + passphrase.encode()).digest())
    old_blob = Fernet(old_key).encrypt(json.dumps(PG_DOC["data"]).encode())

    async def main(store: MemoryStore) -> tuple[Any, bytes]:
        await store.put_credential(CredentialRecord(name="pg_local", type="postgres", data=old_blob))
        credential = await credentials.get_credential(store, "pg_local")
        record = await store.get_credential("pg_local")
        assert record is not None
        credentials.forget_cached_keys()  # as a new process would
        assert (await credentials.get_credential(store, "pg_local"))["data"] == PG_DOC["data"]
        return credential, record.data

    credential, stored = with_memory_store(main)
    assert credential["data"] == PG_DOC["data"]
    assert stored.startswith(b"noetl-scrypt:")  # stored again with the salted key


def test_registering_answers_the_times_the_store_keeps(tmp_path: Path) -> None:
    """The answer of `noetl register credential` (and of POST /api/credentials) carried a time taken
    before the store stamped its own: the listing showed another created_at."""

    async def main() -> None:
        store = SqliteStore(tmp_path / "noetl.db")
        await store.open()
        try:
            first = await credentials.register_credential(store, PG_DOC)
            assert await credentials.list_credentials(store) == [first]
            again = await credentials.register_credential(store, {**PG_DOC, "description": "moved"})
            assert await credentials.list_credentials(store) == [again]
            assert again["created_at"] == first["created_at"] and again["description"] == "moved"
        finally:
            await store.close()

    asyncio.run(main())
