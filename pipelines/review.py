"""Human confirmation of stream matches: candidates, reviewers' decisions, release.

A collection can require confirmation (:meth:`ReviewStore.set_policy`, ``N`` distinct reviewers,
default policy 0 = none). A stream match against such a collection does not leave the system:
the worker files it here as a *candidate* (with the face crop from the stream, for the
reviewer), and nothing goes to the processor's sinks (webhook, JSON lines, event store).

- ``N`` distinct reviewers confirm -> the candidate is CONFIRMED and its record is *released*:
  written to the processor's durable spool, from which the running processor delivers it
  exactly like any other match (a stopped processor delivers it when it starts again).
  Later revisions of a confirmed event go out directly.
- one reviewer rejects -> REJECTED; the whole track is suppressed: the worker files no further
  candidate for any face of that track.
- the same reviewer cannot decide twice on one candidate; a decided candidate takes no more
  decisions. Every decision is audited by the caller (API or CLI).

One SQLite file (``<home>/review.sqlite3``), shared by the API replicas, the CLI and the stream
workers of a node; every statement binds its parameters.
"""

from __future__ import annotations

import enum
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facestream.errors import Conflict, InvalidParameter, ResourceNotFound
from facestream.match_event import EventOrRecord, as_record, index_fields
from facestream.paths import StateHome
from facestream.sqlite import connect as sqlite_connect

log = logging.getLogger(__name__)

MAX_REQUIRED = 5
#: reviewers asked for by a collection created with ``require_confirmation`` and no explicit policy
DEFAULT_REQUIRED = 2


class Status(enum.StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"


class Decision(enum.StrEnum):
    CONFIRM = "CONFIRM"
    REJECT = "REJECT"


class Filing(enum.StrEnum):
    """What :meth:`ReviewStore.submit` did with a match."""

    CANDIDATE = "candidate"  # waits for reviewers
    RELEASE = "release"  # event already confirmed: the caller sends this revision out itself
    SUPPRESSED = "suppressed"  # its track was rejected: drop it


class AlreadyReviewed(Conflict):
    code = "AlreadyReviewedException"


class CandidateDecided(Conflict):
    code = "CandidateDecidedException"


@dataclass(frozen=True)
class ReviewDecision:
    reviewer: str
    role: str
    decision: Decision
    reason: str
    ts: float

    def to_json(self) -> dict[str, Any]:
        return {
            "Reviewer": self.reviewer,
            "Role": self.role,
            "Decision": self.decision.value,
            "Reason": self.reason,
            "Timestamp": round(self.ts, 3),
        }


@dataclass(frozen=True)
class Candidate:
    event_id: str
    revision: int
    processor: str
    collection: str
    track_id: str
    face_id: str
    external_image_id: str | None
    similarity: float
    server_ts: float
    offset_s: float
    status: Status
    required: int
    released: bool
    created_ts: float
    record: dict[str, Any]
    decisions: tuple[ReviewDecision, ...] = field(default=())

    @property
    def confirmations(self) -> list[str]:
        return [d.reviewer for d in self.decisions if d.decision is Decision.CONFIRM]

    def to_json(self) -> dict[str, Any]:
        return {
            "EventId": self.event_id,
            "Revision": self.revision,
            "StreamProcessorName": self.processor,
            "CollectionId": self.collection,
            "TrackId": self.track_id,
            "FaceId": self.face_id,
            "ExternalImageId": self.external_image_id,
            "Similarity": round(self.similarity, 3),
            "ServerTimestamp": round(self.server_ts, 3),
            "FrameOffsetInSeconds": round(self.offset_s, 3),
            "Status": self.status.value,
            "RequiredConfirmations": self.required,
            "Confirmations": len(self.confirmations),
            "Decisions": [d.to_json() for d in self.decisions],
            "Released": self.released,
            "CreatedTimestamp": round(self.created_ts, 3),
        }


_COLUMNS = (
    "event_id, revision, processor, collection, track_id, face_id, external_image_id, similarity, "
    "server_ts, offset_s, status, required, released, created_ts, record"
)


class ReviewStore:
    """Policies, candidates and decisions. Thread-safe; safe to open from several processes."""

    def __init__(self, path: Path, *, clock: Any = time.time) -> None:
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite_connect(path, wal=True, synchronous="FULL")
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS policy (collection TEXT PRIMARY KEY, required INTEGER NOT NULL,"
                " updated_ts REAL NOT NULL, updated_by TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS candidates (event_id TEXT PRIMARY KEY, revision INTEGER NOT NULL,"
                " processor TEXT NOT NULL, collection TEXT NOT NULL, track_id TEXT NOT NULL,"
                " face_id TEXT NOT NULL, external_image_id TEXT, similarity REAL NOT NULL,"
                " server_ts REAL NOT NULL, offset_s REAL NOT NULL, status TEXT NOT NULL,"
                " required INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0,"
                " created_ts REAL NOT NULL, decided_ts REAL, record TEXT NOT NULL,"
                " sinks TEXT NOT NULL, spool TEXT NOT NULL, crop BLOB)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS cand_track ON candidates (processor, track_id)")
            self._db.execute("CREATE INDEX IF NOT EXISTS cand_status ON candidates (status, created_ts)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS decisions (event_id TEXT NOT NULL, reviewer TEXT NOT NULL,"
                " role TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL, ts REAL NOT NULL,"
                " PRIMARY KEY (event_id, reviewer))"
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db

    # --- policy -------------------------------------------------------------------------------

    def set_policy(self, collection: str, required: int, *, by: str) -> int:
        if not 0 <= int(required) <= MAX_REQUIRED:
            raise InvalidParameter(f"RequiredConfirmations must be 0..{MAX_REQUIRED}, got {required}")
        with self._tx() as db:
            db.execute(
                "INSERT INTO policy VALUES (?,?,?,?) ON CONFLICT(collection) DO UPDATE SET "
                "required=excluded.required, updated_ts=excluded.updated_ts, updated_by=excluded.updated_by",
                (collection, int(required), self._clock(), by),
            )
        return int(required)

    def policy(self, collection: str) -> int | None:
        """Confirmations set for ``collection`` (0: none, alerts go out at once); None: never set."""
        with self._lock:
            row = self._db.execute(
                "SELECT required FROM policy WHERE collection = ?", (collection,)
            ).fetchone()
        return None if row is None else int(row[0])

    def delete_policy(self, collection: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM policy WHERE collection = ?", (collection,))

    # --- candidates (the worker's side) -------------------------------------------------------

    def submit(
        self,
        record: EventOrRecord,
        *,
        collection: str,
        required: int,
        sinks: list[str],
        spool: Path,
        crop_jpeg: bytes | None,
    ) -> Filing:
        """File a match event (or its record) that needs confirmation; say what the caller must do with it."""
        f = index_fields(record)
        eid, rev = str(f.event_id), int(f.revision)
        processor = f.processor
        track = str(f.track_id)
        body = json.dumps(as_record(record), ensure_ascii=False)
        with self._tx() as db:
            rejected = db.execute(
                "SELECT 1 FROM candidates WHERE processor = ? AND track_id = ? AND status = ? LIMIT 1",
                (processor, track, Status.REJECTED.value),
            ).fetchone()
            if rejected is not None:
                return Filing.SUPPRESSED
            row = db.execute("SELECT status, revision FROM candidates WHERE event_id = ?", (eid,)).fetchone()
            if row is not None and row[0] == Status.CONFIRMED.value:
                if rev > int(row[1]):
                    db.execute(
                        "UPDATE candidates SET revision = ?, similarity = ?, record = ? WHERE event_id = ?",
                        (rev, f.similarity, body, eid),
                    )
                return Filing.RELEASE
            if row is None:
                db.execute(
                    "INSERT INTO candidates (event_id, revision, processor, collection, track_id, face_id,"
                    " external_image_id, similarity, server_ts, offset_s, status, required, released,"
                    " created_ts, record, sinks, spool, crop) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,?,?,?,?,?)",
                    (
                        eid,
                        rev,
                        processor,
                        collection,
                        track,
                        f.face_id,
                        f.external_image_id,
                        f.similarity,
                        f.server_ts,
                        f.frame_offset_s,
                        Status.PENDING.value,
                        max(1, int(required)),
                        self._clock(),
                        body,
                        json.dumps(sinks),
                        str(spool),
                        crop_jpeg,
                    ),
                )
            elif rev > int(row[1]):
                # A better look at the same person on the same track: reviewers see the newest.
                db.execute(
                    "UPDATE candidates SET revision = ?, similarity = ?, server_ts = ?, offset_s = ?,"
                    " record = ?, crop = COALESCE(?, crop) WHERE event_id = ?",
                    (
                        rev,
                        f.similarity,
                        f.server_ts,
                        f.frame_offset_s,
                        body,
                        crop_jpeg,
                        eid,
                    ),
                )
        return Filing.CANDIDATE

    def track_suppressed(self, processor: str, track_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM candidates WHERE processor = ? AND track_id = ? AND status = ? LIMIT 1",
                (processor, track_id, Status.REJECTED.value),
            ).fetchone()
        return row is not None

    # --- reviewers' side ----------------------------------------------------------------------

    def candidates(
        self, *, status: Status | None = None, processor: str | None = None, limit: int = 100
    ) -> list[Candidate]:
        where: list[str] = ["1=1"]
        args: list[Any] = []
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        if processor is not None:
            where.append("processor = ?")
            args.append(processor)
        args.append(max(1, min(int(limit), 10_000)))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM candidates WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments
                "ORDER BY created_ts, event_id LIMIT ?",
                args,
            ).fetchall()
            return [self._candidate(r) for r in rows]

    def get(self, event_id: str) -> Candidate:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM candidates WHERE event_id = ?",  # noqa: S608 - constant columns
                (event_id,),
            ).fetchone()
            if row is None:
                raise ResourceNotFound(f"match candidate {event_id!r} does not exist")
            return self._candidate(row)

    def crop(self, event_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT crop FROM candidates WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            raise ResourceNotFound(f"match candidate {event_id!r} does not exist")
        return None if row[0] is None else bytes(row[0])

    def decide(
        self, event_id: str, *, reviewer: str, role: str, decision: Decision, reason: str = ""
    ) -> tuple[Candidate, bool]:
        """Record one reviewer's decision; returns the candidate and whether it is now released.

        Releasing writes the record to the processor's spool after the decision committed; a
        failure there leaves the candidate CONFIRMED but unreleased, and :meth:`release_pending`
        (called by the running worker) retries it.
        """
        if not reviewer:
            raise InvalidParameter("a reviewer identity is required")
        with self._tx() as db:
            row = db.execute(
                "SELECT status, required FROM candidates WHERE event_id = ?", (event_id,)
            ).fetchone()
            if row is None:
                raise ResourceNotFound(f"match candidate {event_id!r} does not exist")
            status, required = Status(row[0]), int(row[1])
            if status is not Status.PENDING:
                raise CandidateDecided(f"match candidate {event_id!r} is already {status.value}")
            seen = db.execute(
                "SELECT decision FROM decisions WHERE event_id = ? AND reviewer = ?", (event_id, reviewer)
            ).fetchone()
            if seen is not None:
                raise AlreadyReviewed(
                    f"reviewer {reviewer!r} already decided {seen[0]} on {event_id!r}; "
                    "another reviewer must decide"
                )
            now = self._clock()
            db.execute(
                "INSERT INTO decisions VALUES (?,?,?,?,?,?)",
                (event_id, reviewer, role, decision.value, reason, now),
            )
            new_status: Status = status
            if decision is Decision.REJECT:
                new_status = Status.REJECTED
            else:
                confirms = db.execute(
                    "SELECT COUNT(*) FROM decisions WHERE event_id = ? AND decision = ?",
                    (event_id, Decision.CONFIRM.value),
                ).fetchone()[0]
                if int(confirms) >= required:
                    new_status = Status.CONFIRMED
            if new_status is not status:
                db.execute(
                    "UPDATE candidates SET status = ?, decided_ts = ? WHERE event_id = ?",
                    (new_status.value, now, event_id),
                )
        released = new_status is Status.CONFIRMED and self._release(event_id)
        return self.get(event_id), released

    def release_pending(self, processor: str | None = None) -> int:
        """Spool every confirmed-but-unreleased record (of one processor); count released."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, processor FROM candidates WHERE status = ? AND released = 0",
                (Status.CONFIRMED.value,),
            ).fetchall()
        return sum(1 for eid, proc in rows if processor in (None, proc) and self._release(eid))

    def _release(self, event_id: str) -> bool:
        from pipelines.sinks import Spool  # the worker's outbox; imported late (sinks imports requests)

        with self._lock:
            row = self._db.execute(
                "SELECT record, sinks, spool, released FROM candidates WHERE event_id = ?", (event_id,)
            ).fetchone()
            decisions = self._decisions(event_id)
        if row is None or int(row[3]):
            return False
        record = json.loads(row[0])
        record["Review"] = {
            "Status": Status.CONFIRMED.value,
            "ConfirmedBy": [d.reviewer for d in decisions if d.decision is Decision.CONFIRM],
        }
        sinks = json.loads(row[1])
        try:
            spool = Spool(Path(row[2]))
            try:
                spool.put(sinks, record)
            finally:
                spool.close()
        except (sqlite3.Error, OSError) as exc:
            log.warning("could not release confirmed match %s yet: %s", event_id, exc)
            return False
        with self._tx() as db:
            db.execute(
                "UPDATE candidates SET released = 1, record = ? WHERE event_id = ?",
                (json.dumps(record, ensure_ascii=False), event_id),
            )
        log.info("released confirmed match %s to %d sink(s)", event_id, len(sinks))
        return True

    # --- privacy ------------------------------------------------------------------------------

    def erase(self, *, external_image_id: str | None = None, face_ids: list[str] | None = None) -> int:
        """Delete every candidate (with its crop and decisions) that matched this person; count."""
        ids: set[str] = set()
        with self._tx() as db:
            if external_image_id is not None:
                ids.update(
                    r[0]
                    for r in db.execute(
                        "SELECT event_id FROM candidates WHERE external_image_id = ?", (external_image_id,)
                    )
                )
            fids: list[str] = list(face_ids or [])
            for i in range(0, len(fids), 500):
                chunk = fids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                ids.update(
                    r[0]
                    for r in db.execute(f"SELECT event_id FROM candidates WHERE face_id IN ({marks})", chunk)  # noqa: S608 - placeholders only
                )
            self._delete(db, sorted(ids))
        return len(ids)

    def delete_older_than(self, ts_s: float) -> int:
        """Retention: drop candidates created before ``ts_s`` (epoch s), decided or not."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT event_id FROM candidates WHERE created_ts < ?", (ts_s,))]
            self._delete(db, ids)
        return len(ids)

    @staticmethod
    def _delete(db: sqlite3.Connection, ids: list[str]) -> None:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            db.execute(f"DELETE FROM decisions WHERE event_id IN ({marks})", chunk)  # noqa: S608 - placeholders only
            db.execute(f"DELETE FROM candidates WHERE event_id IN ({marks})", chunk)  # noqa: S608 - placeholders only

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM candidates GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- helpers (caller holds the lock) ------------------------------------------------------

    def _decisions(self, event_id: str) -> tuple[ReviewDecision, ...]:
        rows = self._db.execute(
            "SELECT reviewer, role, decision, reason, ts FROM decisions WHERE event_id = ? ORDER BY ts",
            (event_id,),
        ).fetchall()
        return tuple(ReviewDecision(r[0], r[1], Decision(r[2]), r[3], float(r[4])) for r in rows)

    def _candidate(self, r: tuple[Any, ...]) -> Candidate:
        return Candidate(
            event_id=r[0],
            revision=int(r[1]),
            processor=r[2],
            collection=r[3],
            track_id=r[4],
            face_id=r[5],
            external_image_id=r[6],
            similarity=float(r[7]),
            server_ts=float(r[8]),
            offset_s=float(r[9]),
            status=Status(r[10]),
            required=int(r[11]),
            released=bool(r[12]),
            created_ts=float(r[13]),
            record=json.loads(r[14]),
            decisions=self._decisions(r[0]),
        )


def review_path(home: Path) -> Path:
    return StateHome(home).review_db


def effective_required(policy: int | None, collection_requires_confirmation: bool) -> int:
    """The explicit policy wins; else a collection created to require confirmation needs
    :data:`DEFAULT_REQUIRED` reviewers; else none."""
    if policy is not None:
        return policy
    return DEFAULT_REQUIRED if collection_requires_confirmation else 0
