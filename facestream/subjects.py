"""Keyed pseudonyms for the people named in the audit log, and their crypto-shredding.

The audit log is append-only and hash-chained: an entry can never be edited, so a person's
identifier written into it would outlive that person's erasure. Instead, every subject
identifier (an ExternalImageId, a UserId) is written as a *pseudonym*:
``psn_<hex>`` = HMAC-SHA256 of ``"<kind>:<value>"`` under a random secret of that one subject,
truncated to 128 bits. The secrets live here, in a small sqlite file beside the log and
*outside* the chain (``<audit dir>/audit_subjects.sqlite``, mode 0600):

- an auditor with this file can resolve a live subject's pseudonym (:meth:`SubjectSecrets.resolve`)
  and find every entry about a person (:meth:`SubjectSecrets.pseudonym` with ``create=False``);
- erasing the person deletes its row (:meth:`SubjectSecrets.shred`, sqlite ``secure_delete`` so
  the bytes are overwritten): the pseudonyms left in the log then belong to nobody that can be
  named, while the chain is untouched and still verifies.

A plain hash would not do: identifiers are short and guessable (``jane-doe``), so anyone could
hash candidates and match them; without the per-subject secret nobody can.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from facestream.errors import FacestreamError, InvalidParameter
from facestream.sqlite import connect as sqlite_connect

log = logging.getLogger(__name__)

SubjectKind = Literal["external_image_id", "user_id"]
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("external_image_id", "user_id")
PSEUDONYM_PREFIX = "psn_"
PSEUDONYM_RE = re.compile(r"^psn_[0-9a-f]{32}$")


class SubjectStoreError(FacestreamError):
    code = "SubjectStoreException"
    http_status = 500


def default_path(audit_path: Path) -> Path:
    """Where the subject secrets of the audit log at ``audit_path`` live."""
    return Path(audit_path).parent / "audit_subjects.sqlite"


class SubjectSecrets:
    """Per-subject HMAC secrets in sqlite (several processes may share the file)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ready = False

    def _init(self) -> None:
        if self._ready:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS subjects (kind TEXT NOT NULL, value TEXT NOT NULL,"
                " secret BLOB NOT NULL, pseudonym TEXT NOT NULL UNIQUE, created_at_ms INTEGER NOT NULL,"
                " PRIMARY KEY (kind, value))"
            )
        os.chmod(self.path, 0o600)
        self._ready = True

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite_connect(self.path, autocommit=True, shared=False)
        except sqlite3.Error as exc:
            raise SubjectStoreError(f"cannot open subject secrets {self.path}: {exc}") from None
        try:
            # Deleted rows are overwritten with zeros, not just unlinked: shredding means gone.
            db.execute("PRAGMA secure_delete=ON")
            yield db
        except sqlite3.Error as exc:
            raise SubjectStoreError(f"subject secrets {self.path} failed: {exc}") from None
        finally:
            db.close()

    @staticmethod
    def _check(kind: str, value: str) -> None:
        if kind not in SUBJECT_KINDS:
            raise InvalidParameter(f"subject kind {kind!r}: expected one of {', '.join(SUBJECT_KINDS)}")
        if not isinstance(value, str) or not value or len(value) > 255:
            raise InvalidParameter(f"{kind} must be 1 to 255 characters")

    def pseudonym(self, kind: str, value: str, *, create: bool = True) -> str | None:
        """The subject's pseudonym; a new secret is made for a new subject when ``create``
        (otherwise None for an unknown or erased subject)."""
        self._check(kind, value)
        if not create and not self.path.exists():
            return None
        self._init()
        with self._db() as db:
            row = db.execute(
                "SELECT pseudonym FROM subjects WHERE kind = ? AND value = ?", (kind, value)
            ).fetchone()
            if row is not None:
                return str(row[0])
            if not create:
                return None
            secret = secrets.token_bytes(32)
            mac = hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
            db.execute(
                "INSERT OR IGNORE INTO subjects (kind, value, secret, pseudonym, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (kind, value, secret, PSEUDONYM_PREFIX + mac, int(time.time() * 1000)),
            )
            # Another process may have won the race: its secret is the one.
            row = db.execute(
                "SELECT pseudonym FROM subjects WHERE kind = ? AND value = ?", (kind, value)
            ).fetchone()
        return str(row[0])

    def resolve(self, pseudonym: str) -> tuple[str, str] | None:
        """(kind, value) of a live subject's pseudonym; None if unknown or erased.

        The stored pseudonym is recomputed from the secret, so a row whose value was altered
        does not resolve."""
        if not PSEUDONYM_RE.match(pseudonym):
            raise InvalidParameter(f"{pseudonym[:80]!r} is not a pseudonym (psn_ and 32 hex digits)")
        if not self.path.exists():
            return None
        self._init()
        with self._db() as db:
            row = db.execute(
                "SELECT kind, value, secret FROM subjects WHERE pseudonym = ?", (pseudonym,)
            ).fetchone()
        if row is None:
            return None
        kind, value, secret = str(row[0]), str(row[1]), bytes(row[2])
        mac = hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(PSEUDONYM_PREFIX + mac, pseudonym):
            raise SubjectStoreError(f"subject secrets {self.path}: the row of {pseudonym} does not verify")
        return kind, value

    def shred(self, kind: str, value: str) -> bool:
        """Destroy the subject's secret (erasure); True if there was one."""
        self._check(kind, value)
        if not self.path.exists():
            return False
        self._init()
        with self._db() as db:
            n = db.execute("DELETE FROM subjects WHERE kind = ? AND value = ?", (kind, value)).rowcount
            db.execute("VACUUM")  # no free page keeps the old row either
        if n:
            log.info("shredded the audit pseudonym secret of one %s", kind)
        return bool(n)
