"""Access keys and roles, kept in a small sqlite file.

A key is an id (``FSK`` + 17 characters, shaped like an AWS access key id) and a 40-character
secret shown once when it is made. Two ways to prove you hold it:

- **AWS Signature V4** (Rekognition wire protocol): the server must recompute an HMAC keyed
  by the secret, so the secret cannot be stored as a one-way hash. It is stored *encrypted*
  (Fernet: AES-128-CBC + HMAC-SHA256) under a master key that lives outside the database
  (``FACESTREAM_MASTER_KEY`` or ``<home>/master.key``, mode 0600).
- **Bearer token** (native API): ``Authorization: Bearer <AccessKeyId>:<SecretAccessKey>``,
  checked against a salted SHA-256 of the secret (the secret is 240 random bits, so a slow
  KDF adds nothing) without decrypting anything.

Revocation is immediate: every request reads the key's row. Signatures already seen inside
the clock-skew window are remembered here too, so a replayed request is refused by every
API replica sharing the file.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from facestream.errors import FacestreamError, InvalidParameter

log = logging.getLogger(__name__)

KEY_ID_PREFIX = "FSK"
_KEY_ID_CHARS = string.ascii_uppercase + string.digits
_SQLITE_TIMEOUT_S = 10.0


class Role(enum.StrEnum):
    ADMIN = "admin"
    INDEXER = "indexer"
    SEARCHER = "searcher"
    AUDITOR = "auditor"
    VIEWER = "viewer"
    #: confirms or rejects candidate matches (human confirmation); nothing else
    REVIEWER = "reviewer"


class KeyStoreError(FacestreamError):
    code = "KeyStoreException"
    http_status = 500


@dataclass(frozen=True)
class KeyInfo:
    access_key_id: str
    role: Role
    created_at_ms: int
    revoked_at_ms: int | None
    description: str

    @property
    def active(self) -> bool:
        return self.revoked_at_ms is None

    def to_json(self) -> dict[str, object]:
        return {
            "AccessKeyId": self.access_key_id,
            "Role": self.role.value,
            "CreatedAtMs": self.created_at_ms,
            "RevokedAtMs": self.revoked_at_ms,
            "Status": "Active" if self.active else "Revoked",
            "Description": self.description,
        }


@dataclass(frozen=True)
class NewKey:
    access_key_id: str
    secret_access_key: str
    role: Role

    def to_json(self) -> dict[str, str]:
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Role": self.role.value,
        }

    def __repr__(self) -> str:  # never show the secret in a log or traceback
        return f"NewKey(access_key_id={self.access_key_id!r}, role={self.role.value!r})"


def load_master_key(home: Path, configured: str | None = None, *, create: bool) -> bytes:
    """The Fernet key: ``configured``, else ``FACESTREAM_MASTER_KEY``, else ``<home>/master.key``.

    With ``create=True`` a missing file is made (0600); otherwise a missing key is an error.
    """
    value = configured or os.environ.get("FACESTREAM_MASTER_KEY")
    if value:
        key = value.strip().encode("ascii")
    else:
        path = home / "master.key"
        if not path.exists():
            if not create:
                raise KeyStoreError(
                    f"no master key: set FACESTREAM_MASTER_KEY or create keys first ({path} is missing)"
                )
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, Fernet.generate_key())
            finally:
                os.close(fd)
            log.info("created master key file %s", path)
        key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError:
        raise KeyStoreError("master key is not a Fernet key (urlsafe base64 of 32 bytes)") from None
    return key


def _now_ms() -> int:
    return int(time.time() * 1000)


def _hash_secret(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("utf-8")).digest()


class KeyStore:
    """Access keys in sqlite. Safe for several processes (sqlite locking, WAL)."""

    def __init__(self, path: Path, master_key: bytes) -> None:
        self.path = Path(path)
        self._fernet = Fernet(master_key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS keys ("
                " access_key_id TEXT PRIMARY KEY, role TEXT NOT NULL, secret_enc BLOB NOT NULL,"
                " salt BLOB NOT NULL, secret_hash BLOB NOT NULL, created_at_ms INTEGER NOT NULL,"
                " revoked_at_ms INTEGER, description TEXT NOT NULL DEFAULT '')"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS seen_signatures ("
                " signature TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL)"
            )
        os.chmod(self.path, 0o600)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=_SQLITE_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise KeyStoreError(f"cannot open key store {self.path}: {exc}") from None
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        except sqlite3.Error as exc:
            raise KeyStoreError(f"key store {self.path} failed: {exc}") from None
        finally:
            db.close()

    # ── management ──────────────────────────────────────────────────────────────────────

    def create(self, role: Role | str, description: str = "") -> NewKey:
        role = _role(role)
        if len(description) > 200 or any(ord(c) < 32 for c in description):
            raise InvalidParameter("description must be at most 200 printable characters")
        key_id = KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ID_CHARS) for _ in range(17))
        secret = secrets.token_urlsafe(30)  # 40 characters, 240 bits
        salt = secrets.token_bytes(16)
        with self._db() as db:
            db.execute(
                "INSERT INTO keys (access_key_id, role, secret_enc, salt, secret_hash, created_at_ms,"
                " description) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    role.value,
                    self._fernet.encrypt(secret.encode("utf-8")),
                    salt,
                    _hash_secret(salt, secret),
                    _now_ms(),
                    description,
                ),
            )
        log.info("created access key %s (role %s)", key_id, role.value)
        return NewKey(key_id, secret, role)

    def list(self) -> list[KeyInfo]:
        with self._db() as db:
            rows = db.execute(
                "SELECT access_key_id, role, created_at_ms, revoked_at_ms, description FROM keys"
                " ORDER BY created_at_ms, access_key_id"
            ).fetchall()
        return [KeyInfo(r[0], Role(r[1]), int(r[2]), r[3], r[4]) for r in rows]

    def get(self, access_key_id: str) -> KeyInfo | None:
        with self._db() as db:
            r = db.execute(
                "SELECT access_key_id, role, created_at_ms, revoked_at_ms, description FROM keys"
                " WHERE access_key_id = ?",
                (access_key_id,),
            ).fetchone()
        return None if r is None else KeyInfo(r[0], Role(r[1]), int(r[2]), r[3], r[4])

    def revoke(self, access_key_id: str) -> KeyInfo:
        with self._db() as db:
            cur = db.execute(
                "UPDATE keys SET revoked_at_ms = ? WHERE access_key_id = ? AND revoked_at_ms IS NULL",
                (_now_ms(), access_key_id),
            )
            changed = cur.rowcount
        info = self.get(access_key_id)
        if info is None:
            from facestream.errors import ResourceNotFound

            raise ResourceNotFound(f"access key {access_key_id!r} does not exist")
        if changed:
            log.info("revoked access key %s", access_key_id)
        return info

    # ── verification ────────────────────────────────────────────────────────────────────

    def active_secret(self, access_key_id: str) -> tuple[KeyInfo, str] | None:
        """The role and the decrypted secret of an active key (for SigV4), or None."""
        with self._db() as db:
            r = db.execute(
                "SELECT access_key_id, role, created_at_ms, revoked_at_ms, description, secret_enc"
                " FROM keys WHERE access_key_id = ? AND revoked_at_ms IS NULL",
                (access_key_id,),
            ).fetchone()
        if r is None:
            return None
        try:
            secret = self._fernet.decrypt(r[5]).decode("utf-8")
        except InvalidToken:
            raise KeyStoreError(
                f"the secret of key {access_key_id} does not decrypt with this master key"
            ) from None
        return KeyInfo(r[0], Role(r[1]), int(r[2]), r[3], r[4]), secret

    def verify_bearer(self, access_key_id: str, secret: str) -> KeyInfo | None:
        """The key if ``secret`` is its secret and it is active; None otherwise."""
        with self._db() as db:
            r = db.execute(
                "SELECT access_key_id, role, created_at_ms, revoked_at_ms, description, salt, secret_hash"
                " FROM keys WHERE access_key_id = ? AND revoked_at_ms IS NULL",
                (access_key_id,),
            ).fetchone()
        if r is None:
            # Same work either way, so timing does not tell whether the id exists.
            hmac.compare_digest(_hash_secret(b"x" * 16, secret), b"\0" * 32)
            return None
        if not hmac.compare_digest(_hash_secret(r[5], secret), r[6]):
            return None
        return KeyInfo(r[0], Role(r[1]), int(r[2]), r[3], r[4])

    def remember_signature(self, signature: str, ttl_ms: int) -> bool:
        """Record a SigV4 signature; False if it was already seen (a replay)."""
        now = _now_ms()
        with self._db() as db:
            db.execute("DELETE FROM seen_signatures WHERE expires_at_ms < ?", (now,))
            try:
                db.execute(
                    "INSERT INTO seen_signatures (signature, expires_at_ms) VALUES (?, ?)",
                    (signature, now + ttl_ms),
                )
            except sqlite3.IntegrityError:
                return False
        return True


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidParameter(f"role {value!r} is not one of {', '.join(r.value for r in Role)}") from None
