"""The key that encrypts credentials at rest, and the encryption itself.

The key is ``NOETL_SECRET_KEY`` when set, otherwise a key generated on first use into
``$NOETL_HOME/secret.key`` (mode 0600, its directory 0700). ``NOETL_SECRET_KEY`` is either a Fernet
key, used as is, or a passphrase.

A passphrase is stretched with scrypt and a random salt. The salt travels with each ciphertext
(``noetl-scrypt:<salt>:<fernet token>``), so every process that shares the passphrase and the
store — a server and workers on different machines — derives the same key without any shared file.
Ciphertexts written by older versions (the passphrase hashed once with SHA-256, no salt) are still
read; :func:`decrypt` reports them as ``legacy`` so the caller can store them again in the new form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from noetl.errors import StoreError
from noetl.fileperms import private_directory
from noetl.settings import CREDENTIAL_KEY_FILE, load_settings

_SCRYPT_PREFIX = b"noetl-scrypt:"
_SALT_BYTES = 16
# scrypt cost: 16 MiB and roughly 60 ms on an idle core per derivation, once per salt and process (cached).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_PROCESS_SALT = os.urandom(_SALT_BYTES)


@dataclass(frozen=True, slots=True)
class _KeySource:
    fernet: Fernet | None  # a Fernet key or the key file
    passphrase: str | None  # NOETL_SECRET_KEY that is not a Fernet key


@dataclass(frozen=True, slots=True)
class Decrypted:
    data: dict[str, Any]
    legacy: bool  # written in an older form: store it again with encrypt()


def key_file_path(home: Path | None = None) -> Path:
    return (home or load_settings().home) / CREDENTIAL_KEY_FILE


def encrypt(data: Mapping[str, Any], *, process_salt: bool = False) -> bytes:
    """``data`` encrypted with the credential key. ``process_salt``: a passphrase is stretched with
    this process's one salt instead of a new one (for values sealed often, such as step results
    that hold a secret: a new scrypt derivation costs ~60 ms)."""
    plaintext = json.dumps(dict(data), separators=(",", ":")).encode("utf-8")
    source = _key_source()
    if source.fernet is not None:
        return source.fernet.encrypt(plaintext)
    assert source.passphrase is not None
    salt = _PROCESS_SALT if process_salt else os.urandom(_SALT_BYTES)
    token = _scrypt_fernet(source.passphrase, salt).encrypt(plaintext)
    return _SCRYPT_PREFIX + base64.urlsafe_b64encode(salt) + b":" + token


def decrypt(blob: bytes, name: str) -> Decrypted:
    blob = bytes(blob)
    source = _key_source()
    try:
        if blob.startswith(_SCRYPT_PREFIX):
            if source.passphrase is None:
                raise InvalidToken
            salt, _, token = blob[len(_SCRYPT_PREFIX):].partition(b":")
            plaintext = _scrypt_fernet(source.passphrase, base64.urlsafe_b64decode(salt)).decrypt(token)
            legacy = False
        elif source.fernet is not None:
            plaintext, legacy = source.fernet.decrypt(blob), False
        else:
            assert source.passphrase is not None
            plaintext, legacy = _legacy_passphrase_fernet(source.passphrase).decrypt(blob), True
    except (InvalidToken, binascii.Error, ValueError):
        raise StoreError(
            f"credential {name!r} cannot be decrypted: it was stored with a different key "
            "(NOETL_SECRET_KEY or $NOETL_HOME/secret.key)"
        ) from None
    data = json.loads(plaintext)
    return Decrypted(data if isinstance(data, dict) else {"value": data}, legacy)


def forget_cached_keys() -> None:
    """Drop cached keys (after changing NOETL_SECRET_KEY or NOETL_HOME in a running process)."""
    _key_file_fernet.cache_clear()
    _scrypt_fernet.cache_clear()


# ---- where the key comes from


def _key_source() -> _KeySource:
    settings = load_settings()
    if settings.secret_key:
        as_key = _as_fernet_key(settings.secret_key)
        return _KeySource(as_key, None) if as_key is not None else _KeySource(None, settings.secret_key)
    path = key_file_path(settings.home)
    if not path.exists():
        _key_file_fernet.cache_clear()  # removed meanwhile: a new one is created
    return _KeySource(_key_file_fernet(str(path)), None)


def _as_fernet_key(secret: str) -> Fernet | None:
    try:
        if len(base64.urlsafe_b64decode(secret.encode("ascii"))) == 32:
            return Fernet(secret.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        pass
    return None


@lru_cache(maxsize=64)
def _scrypt_fernet(passphrase: str, salt: bytes) -> Fernet:
    key = hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P,
                         maxmem=64 * 1024 * 1024, dklen=32)
    return Fernet(base64.urlsafe_b64encode(key))


def _legacy_passphrase_fernet(passphrase: str) -> Fernet:
    # Read-only: how versions before the scrypt derivation turned a passphrase into a key.
    digest = hashlib.sha256(b"noetl-credential-key:" + passphrase.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@lru_cache(maxsize=8)
def _key_file_fernet(path_text: str) -> Fernet:
    path = Path(path_text)
    try:
        return Fernet(_read_or_create_key_file(path))
    except ValueError as exc:
        raise StoreError(f"credential key file {path} does not hold a valid key: {exc}") from exc


def _read_or_create_key_file(path: Path) -> bytes:
    """The key in ``path``, creating it (mode 0600, never overwritten) on first use."""
    private_directory(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process may have created it a moment ago and still be writing it.
        key = path.read_bytes().strip()
        if not key:
            raise StoreError(
                f"credential key file {path} is empty; remove it or set NOETL_SECRET_KEY"
            ) from None
        os.chmod(path, 0o600) if path.stat().st_uid == os.getuid() else None
        return key
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    os.chmod(path, 0o600)  # the umask may have removed bits but never adds any; be explicit
    return key
