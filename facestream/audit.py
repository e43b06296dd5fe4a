"""Append-only, tamper-evident audit log (JSON lines, each entry chained to the previous by hash).

An entry is written and fsynced before the answer it records is returned. It holds who
(key id, its roles), when, the operation, the purpose, inputs (hashes of images, never images)
and results (face ids, similarities). ``verify`` recomputes the chain and names the first
entry that does not fit. Several processes may append: writes take an exclusive file lock.

People are never named in an entry: every subject identifier (fields named in
:data:`SUBJECT_FIELDS`, at any depth of ``inputs``/``results``) is replaced by its keyed
pseudonym (:mod:`facestream.subjects`) before the entry is hashed. Erasing a person destroys
the pseudonym's secret, so the chain stays intact and nothing in it can be tied back.

A request signed with a purpose-bound key runs inside :func:`audit_context`: the key's purpose
is the entry's ``purpose`` and a purpose header sent with it is kept beside it
(``purpose_header``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facestream import metrics
from facestream.errors import AuditIntegrityError
from facestream.subjects import SubjectSecrets, default_path

log = logging.getLogger(__name__)

GENESIS = "0" * 64

#: field name -> subject kind: values of these fields are written as pseudonyms
SUBJECT_FIELDS: dict[str, str] = {
    "external_image_id": "external_image_id",
    "ExternalImageId": "external_image_id",
    "external_image_ids": "external_image_id",
    "user_id": "user_id",
    "UserId": "user_id",
    "user_ids": "user_id",
    "own_user": "user_id",
}

_CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("facestream_audit_context", default=None)


@contextmanager
def audit_context(*, purpose: str | None = None, purpose_header: str | None = None) -> Iterator[None]:
    """Entries appended inside carry ``purpose`` when their caller gave none (a purpose-bound
    key's purpose) and ``purpose_header`` (a header sent with such a key) beside it."""
    ctx = {k: v for k, v in (("purpose", purpose), ("purpose_header", purpose_header)) if v}
    token = _CONTEXT.set(ctx)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who acted: an API key id and its role, or the local operator of the CLI."""

    key_id: str
    role: str
    #: every role of the key (``role`` is the first); empty: just ``role``
    roles: tuple[str, ...] = ()

    @staticmethod
    def local_cli() -> Actor:
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
        return Actor(key_id=f"local:{user}", role="admin")


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None


class AuditLog:
    def __init__(self, path: str | Path, subjects_path: str | Path | None = None) -> None:
        self.path = Path(path)  # its directory is made by the first append: reading writes nothing
        #: the pseudonym secrets of the people named in entries (outside the chain)
        self.subjects = SubjectSecrets(Path(subjects_path) if subjects_path else default_path(self.path))

    def _pseudonymise(self, value: Any, field: str | None = None) -> Any:
        kind = SUBJECT_FIELDS.get(field or "")
        if kind is not None:
            if isinstance(value, str) and value:
                return self.subjects.pseudonym(kind, value)
            if isinstance(value, list):
                return [self.subjects.pseudonym(kind, v) if isinstance(v, str) and v else v for v in value]
        if isinstance(value, dict):
            return {k: self._pseudonymise(v, k) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._pseudonymise(v) for v in value]
        return value

    def pseudonym(self, kind: str, value: str) -> str | None:
        """The pseudonym entries use for a live subject (None: never named, or erased)."""
        return self.subjects.pseudonym(kind, value, create=False)

    def shred_subject(self, kind: str, value: str) -> bool:
        """Erasure: destroy the subject's pseudonym secret; its entries can no longer be tied
        back to it (the chain is not touched)."""
        return self.subjects.shred(kind, value)

    def append(
        self,
        *,
        actor: Actor,
        operation: str,
        purpose: str | None = None,
        inputs: dict[str, Any] | None = None,
        results: dict[str, Any] | None = None,
        now_ms: int | None = None,
    ) -> dict[str, Any]:
        """Append one entry (fsynced) and return it, with its ``seq`` and ``hash``.
        Subject identifiers in ``inputs``/``results`` are written as pseudonyms."""
        ctx = _CONTEXT.get() or {}
        if purpose is None:
            purpose = ctx.get("purpose")
        inputs = self._pseudonymise(inputs or {})
        results = self._pseudonymise(results or {})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                seq, prev = self._tail(f)
                entry: dict[str, Any] = {
                    "seq": seq,
                    "ts_ms": int(time.time() * 1000) if now_ms is None else now_ms,
                    "actor": {
                        "key_id": actor.key_id,
                        "role": actor.role,
                        "roles": list(actor.roles or (actor.role,)),
                    },
                    "operation": operation,
                    "purpose": purpose,
                    "inputs": inputs,
                    "results": results,
                    "prev_hash": prev,
                }
                if "purpose_header" in ctx:
                    entry["purpose_header"] = ctx["purpose_header"]
                entry["hash"] = _entry_hash(entry)
                f.seek(0, os.SEEK_END)
                f.write(_canonical(entry).decode() + "\n")
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        metrics.inc("facestream_audit_entries_total", operation=operation)
        return entry

    @staticmethod
    def _tail(f: Any) -> tuple[int, str]:
        """Next sequence number and the hash to chain to, from the file's last line."""
        f.seek(0, os.SEEK_END)
        end = f.tell()
        if end == 0:
            return 0, GENESIS
        # Read backwards just far enough to hold the last line.
        block = 4096
        pos = end
        data = ""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
            if data.rstrip("\n").count("\n") >= 1:
                break
        last = data.rstrip("\n").rsplit("\n", 1)[-1]
        try:
            entry = json.loads(last)
            return int(entry["seq"]) + 1, str(entry["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditIntegrityError(
                f"audit log {f.name}: last line is not a valid entry ({exc}); run `facestream audit verify`"
            ) from None

    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for n, line in enumerate(f):
                try:
                    yield json.loads(line)
                except ValueError:
                    raise AuditIntegrityError(f"audit log {self.path}: line {n + 1} is not JSON") from None

    def verify(self) -> VerifyResult:
        """Recompute the chain; the first entry whose hash, link or sequence is wrong is named."""
        prev = GENESIS
        count = 0
        if not self.path.exists():
            return VerifyResult(ok=True, entries=0)
        with self.path.open(encoding="utf-8") as f:
            for n, line in enumerate(f):
                try:
                    entry = json.loads(line)
                except ValueError:
                    return VerifyResult(False, count, n, f"line {n + 1} is not JSON")
                if entry.get("seq") != n:
                    return VerifyResult(False, count, n, f"entry at line {n + 1} has seq {entry.get('seq')}")
                if entry.get("prev_hash") != prev:
                    return VerifyResult(
                        False, count, n, f"entry {n}: prev_hash does not link to entry {n - 1}"
                    )
                if entry.get("hash") != _entry_hash(entry):
                    return VerifyResult(False, count, n, f"entry {n}: content does not match its hash")
                prev = entry["hash"]
                count += 1
        return VerifyResult(ok=True, entries=count)

    def query(
        self,
        *,
        operation: str | None = None,
        key_id: str | None = None,
        purpose: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        out = []
        for e in self.entries():
            if operation is not None and e.get("operation") != operation:
                continue
            if key_id is not None and e.get("actor", {}).get("key_id") != key_id:
                continue
            if purpose is not None and purpose not in (e.get("purpose") or ""):
                continue
            if since_ms is not None and e.get("ts_ms", 0) < since_ms:
                continue
            if until_ms is not None and e.get("ts_ms", 0) > until_ms:
                continue
            out.append(e)
            if limit is not None and len(out) >= limit:
                break
        return out
