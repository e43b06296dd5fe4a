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

A key holds one or more roles (``keys create --role admin --role indexer``), may be bound to a
purpose (a search signed with it carries that purpose when the request names none) and may
expire. The deployment profile decides which combinations are allowed
(:meth:`facestream.profiles.Profile.check_key`: ``public-safety`` keeps admin apart from the
roles that act on faces and wants a purpose on every searcher key).

Revocation and expiry are immediate: every request reads the key's row. Signatures already seen inside
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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from facestream.errors import FacestreamError, InvalidParameter
from facestream.paths import StateHome
from facestream.sqlite import connect as sqlite_connect

log = logging.getLogger(__name__)

KEY_ID_PREFIX = "FSK"
#: the columns of a KeyInfo read first by every SELECT, in :func:`_info`'s order
_N_INFO = 8
_KEY_ID_CHARS = string.ascii_uppercase + string.digits


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


#: canonical order of roles (a key's primary ``role`` is its first in this order)
_ROLE_ORDER = {r: i for i, r in enumerate(Role)}
#: at most this many days until a key expires
MAX_EXPIRES_DAYS = 3650
MAX_KEY_PURPOSE_CHARS = 500


def sorted_roles(roles: Iterable[Role]) -> tuple[Role, ...]:
    return tuple(sorted(set(roles), key=_ROLE_ORDER.__getitem__))


@dataclass(frozen=True)
class KeyInfo:
    """A key without its secret. ``roles``: every role it holds; ``purpose``: the purpose bound
    to it (a search signed with it carries this purpose when it sends no header);
    ``expires_at_ms``: when it stops working (None: never)."""

    access_key_id: str
    roles: frozenset[Role]
    created_at_ms: int
    revoked_at_ms: int | None
    description: str
    purpose: str | None = None
    expires_at_ms: int | None = None

    @property
    def role(self) -> Role:
        """The first of its roles in canonical order (admin, indexer, searcher, ...)."""
        return sorted_roles(self.roles)[0]

    @property
    def expired(self) -> bool:
        return self.expires_at_ms is not None and _now_ms() >= self.expires_at_ms

    @property
    def active(self) -> bool:
        return self.revoked_at_ms is None and not self.expired

    @property
    def status(self) -> str:
        if self.revoked_at_ms is not None:
            return "Revoked"
        return "Expired" if self.expired else "Active"

    def to_json(self) -> dict[str, object]:
        return {
            "AccessKeyId": self.access_key_id,
            "Role": self.role.value,
            "Roles": [r.value for r in sorted_roles(self.roles)],
            "Purpose": self.purpose,
            "CreatedAtMs": self.created_at_ms,
            "ExpiresAtMs": self.expires_at_ms,
            "RevokedAtMs": self.revoked_at_ms,
            "Status": self.status,
            "Description": self.description,
        }


@dataclass(frozen=True)
class NewKey:
    access_key_id: str
    secret_access_key: str
    roles: frozenset[Role]
    purpose: str | None = None
    expires_at_ms: int | None = None

    @property
    def role(self) -> Role:
        return sorted_roles(self.roles)[0]

    def to_json(self) -> dict[str, object]:
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Role": self.role.value,
            "Roles": [r.value for r in sorted_roles(self.roles)],
            "Purpose": self.purpose,
            "ExpiresAtMs": self.expires_at_ms,
        }

    def __repr__(self) -> str:  # never show the secret in a log or traceback
        roles = ",".join(r.value for r in sorted_roles(self.roles))
        return f"NewKey(access_key_id={self.access_key_id!r}, roles={roles!r})"


def load_master_key(home: Path, configured: str | None = None, *, create: bool) -> bytes:
    """The Fernet key: ``configured``, else ``FACESTREAM_MASTER_KEY``, else ``<home>/master.key``.

    With ``create=True`` a missing file is made (0600); otherwise a missing key is an error.
    """
    value = configured or os.environ.get("FACESTREAM_MASTER_KEY")
    if value:
        key = value.strip().encode("ascii")
    else:
        path = StateHome(home).master_key
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
            # Added for role sets, purpose-bound and expiring keys; older files gain the columns.
            have = {row[1] for row in db.execute("PRAGMA table_info(keys)")}
            for column, decl in (("roles", "TEXT"), ("purpose", "TEXT"), ("expires_at_ms", "INTEGER")):
                if column not in have:
                    db.execute(f"ALTER TABLE keys ADD COLUMN {column} {decl}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS seen_signatures ("
                " signature TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL)"
            )
        os.chmod(self.path, 0o600)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite_connect(self.path, autocommit=True, shared=False, synchronous="NORMAL")
        except sqlite3.Error as exc:
            raise KeyStoreError(f"cannot open key store {self.path}: {exc}") from None
        try:
            yield db
        except sqlite3.Error as exc:
            raise KeyStoreError(f"key store {self.path} failed: {exc}") from None
        finally:
            db.close()

    # ── management ──────────────────────────────────────────────────────────────────────

    def create(
        self,
        roles: Role | str | Iterable[Role | str],
        description: str = "",
        *,
        purpose: str | None = None,
        expires_days: float | None = None,
        profile: str | None = None,
    ) -> NewKey:
        """A new key holding ``roles``, bound to ``purpose`` if given, expiring after
        ``expires_days`` if given. The deployment profile (``profile``, else the one in force)
        may refuse the combination (see :mod:`facestream.profiles`)."""
        from facestream.profiles import resolve_profile

        role_set = parse_roles(roles)
        if len(description) > 200 or any(ord(c) < 32 for c in description):
            raise InvalidParameter("description must be at most 200 printable characters")
        if purpose is not None:
            purpose = purpose.strip()
            if not purpose or len(purpose) > MAX_KEY_PURPOSE_CHARS or any(ord(c) < 32 for c in purpose):
                raise InvalidParameter(f"purpose must be 1 to {MAX_KEY_PURPOSE_CHARS} printable characters")
        expires_at_ms = None
        if expires_days is not None:
            if not 0 < expires_days <= MAX_EXPIRES_DAYS:
                raise InvalidParameter(f"expires-days must be in (0, {MAX_EXPIRES_DAYS}], got {expires_days}")
            expires_at_ms = _now_ms() + int(expires_days * 86_400_000)
        resolve_profile(profile).check_key({r.value for r in role_set}, purpose)
        key_id = KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ID_CHARS) for _ in range(17))
        secret = secrets.token_urlsafe(30)  # 40 characters, 240 bits
        salt = secrets.token_bytes(16)
        ordered = sorted_roles(role_set)
        with self._db() as db:
            db.execute(
                "INSERT INTO keys (access_key_id, role, roles, secret_enc, salt, secret_hash, created_at_ms,"
                " description, purpose, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    ordered[0].value,
                    ",".join(r.value for r in ordered),
                    self._fernet.encrypt(secret.encode("utf-8")),
                    salt,
                    _hash_secret(salt, secret),
                    _now_ms(),
                    description,
                    purpose,
                    expires_at_ms,
                ),
            )
        log.info("created access key %s (roles %s)", key_id, ",".join(r.value for r in ordered))
        return NewKey(key_id, secret, role_set, purpose, expires_at_ms)

    def list(self) -> list[KeyInfo]:
        with self._db() as db:
            rows = db.execute(
                "SELECT access_key_id, role, roles, created_at_ms, revoked_at_ms, description, purpose,"
                " expires_at_ms FROM keys ORDER BY created_at_ms, access_key_id"
            ).fetchall()
        return [_info(r) for r in rows]

    def get(self, access_key_id: str) -> KeyInfo | None:
        with self._db() as db:
            r = db.execute(
                "SELECT access_key_id, role, roles, created_at_ms, revoked_at_ms, description, purpose,"
                " expires_at_ms FROM keys WHERE access_key_id = ?",
                (access_key_id,),
            ).fetchone()
        return None if r is None else _info(r)

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
        """The key and the decrypted secret of an unrevoked key (for SigV4), or None.
        The caller checks :attr:`KeyInfo.expired`."""
        with self._db() as db:
            r = db.execute(
                "SELECT access_key_id, role, roles, created_at_ms, revoked_at_ms, description, purpose,"
                " expires_at_ms, secret_enc FROM keys WHERE access_key_id = ? AND revoked_at_ms IS NULL",
                (access_key_id,),
            ).fetchone()
        if r is None:
            return None
        try:
            secret = self._fernet.decrypt(r[_N_INFO]).decode("utf-8")
        except InvalidToken:
            raise KeyStoreError(
                f"the secret of key {access_key_id} does not decrypt with this master key"
            ) from None
        return _info(r), secret

    def verify_bearer(self, access_key_id: str, secret: str) -> KeyInfo | None:
        """The key if ``secret`` is its secret and it is not revoked; None otherwise.
        The caller checks :attr:`KeyInfo.expired`."""
        with self._db() as db:
            r = db.execute(
                "SELECT access_key_id, role, roles, created_at_ms, revoked_at_ms, description, purpose,"
                " expires_at_ms, salt, secret_hash FROM keys"
                " WHERE access_key_id = ? AND revoked_at_ms IS NULL",
                (access_key_id,),
            ).fetchone()
        if r is None:
            # Same work either way, so timing does not tell whether the id exists.
            hmac.compare_digest(_hash_secret(b"x" * 16, secret), b"\0" * 32)
            return None
        if not hmac.compare_digest(_hash_secret(r[_N_INFO], secret), r[_N_INFO + 1]):
            return None
        return _info(r)

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


def _info(r: tuple[object, ...]) -> KeyInfo:
    roles = frozenset(Role(v) for v in str(r[2]).split(",")) if r[2] else frozenset({Role(str(r[1]))})
    return KeyInfo(
        access_key_id=str(r[0]),
        roles=roles,
        created_at_ms=int(r[3]),  # type: ignore[call-overload]
        revoked_at_ms=None if r[4] is None else int(r[4]),  # type: ignore[call-overload]
        description=str(r[5]),
        purpose=None if r[6] is None else str(r[6]),
        expires_at_ms=None if r[7] is None else int(r[7]),  # type: ignore[call-overload]
    )


def parse_roles(roles: Role | str | Iterable[Role | str]) -> frozenset[Role]:
    """One role, a comma-separated list or an iterable of roles; at least one."""
    items: list[Role | str]
    if isinstance(roles, Role):
        items = [roles]
    elif isinstance(roles, str):
        items = [p.strip() for p in roles.split(",") if p.strip()]
    else:
        items = list(roles)
    if not items:
        raise InvalidParameter(f"a key needs at least one role: {', '.join(r.value for r in Role)}")
    return frozenset(_role(r) for r in items)


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidParameter(f"role {value!r} is not one of {', '.join(r.value for r in Role)}") from None
