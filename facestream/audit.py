"""Append-only, tamper-evident audit log (JSON lines, each entry chained to the previous by hash).

An entry is written and fsynced before the answer it records is returned. It holds who
(key id, role), when, the operation, the purpose, inputs (hashes of images, never images)
and results (face ids, similarities). ``verify`` recomputes the chain and names the first
entry that does not fit. Several processes may append: writes take an exclusive file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facestream import metrics
from facestream.errors import AuditIntegrityError

log = logging.getLogger(__name__)

GENESIS = "0" * 64


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
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

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
        """Append one entry (fsynced) and return it, with its ``seq`` and ``hash``."""
        with self.path.open("a+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                seq, prev = self._tail(f)
                entry: dict[str, Any] = {
                    "seq": seq,
                    "ts_ms": int(time.time() * 1000) if now_ms is None else now_ms,
                    "actor": {"key_id": actor.key_id, "role": actor.role},
                    "operation": operation,
                    "purpose": purpose,
                    "inputs": inputs or {},
                    "results": results or {},
                    "prev_hash": prev,
                }
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
