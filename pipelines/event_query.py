"""Querying the shared event store: by processor, time, collection and external id, in pages.

The event store (:class:`pipelines.sinks.EventStore`, ``<home>/events.sqlite3`` by default) holds
the latest revision of every match event of every processor that writes to it. A record names
its processor, not the collection it was searched against, so the collection a processor
searched is kept here per run (:meth:`EventQuery.record_run` when it starts, closed when it
stops or starts again): an event belongs to collection C if its processor was searching C
when the frame arrived. Pages are keyset pages on ``(ServerTimestamp, EventId)``; a
``NextToken`` is HMAC-signed and bound to the filters it was made for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facestream.errors import InvalidParameter
from facestream.sqlite import connect as sqlite_connect
from pipelines.sinks import EventStore

_RUNS_DDL = (
    "CREATE TABLE IF NOT EXISTS processor_runs (processor TEXT NOT NULL, collection TEXT NOT NULL, "
    "started_ts REAL NOT NULL, stopped_ts REAL)"
)


@dataclass(frozen=True)
class EventFilter:
    """What to look for; every field optional. Times are epoch seconds (ServerTimestamp)."""

    processor: str | None = None
    collection: str | None = None
    external_image_id: str | None = None
    face_id: str | None = None
    start_ts: float | None = None
    end_ts: float | None = None
    min_similarity: float | None = None

    def digest(self) -> bytes:
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).digest()


def record_run(path: Path, processor: str, collection: str) -> None:
    """``processor`` searches ``collection`` from now on (what the manager calls on start)."""
    q = EventQuery(path)
    try:
        q.record_run(processor, collection)
    finally:
        q.close()


def close_run(path: Path, processor: str) -> None:
    """``processor`` stopped searching (what the manager calls on stop)."""
    q = EventQuery(path)
    try:
        q.close_run(processor)
    finally:
        q.close()


class EventQuery:
    """Read side of the event store plus the processor -> collection runs. Thread-safe."""

    def __init__(self, path: Path, token_key: bytes | None = None) -> None:
        self.path = path
        EventStore(path).close()  # creates the file and the events table if absent
        self._key = token_key or secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._db = sqlite_connect(path)
        with self._db:
            self._db.execute(_RUNS_DDL)
            self._db.execute("CREATE INDEX IF NOT EXISTS runs_proc ON processor_runs (processor)")

    def record_run(self, processor: str, collection: str, now_s: float | None = None) -> None:
        """``processor`` searches ``collection`` from now on (closes its previous run)."""
        now = time.time() if now_s is None else now_s
        with self._lock, self._db:
            self._db.execute(
                "UPDATE processor_runs SET stopped_ts = ? WHERE processor = ? AND stopped_ts IS NULL",
                (now, processor),
            )
            self._db.execute(
                "INSERT INTO processor_runs (processor, collection, started_ts) VALUES (?, ?, ?)",
                (processor, collection, now),
            )

    def close_run(self, processor: str, now_s: float | None = None) -> None:
        now = time.time() if now_s is None else now_s
        with self._lock, self._db:
            self._db.execute(
                "UPDATE processor_runs SET stopped_ts = ? WHERE processor = ? AND stopped_ts IS NULL",
                (now, processor),
            )

    def query(
        self, flt: EventFilter, *, max_results: int = 100, next_token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of events (latest revision), oldest first, and the token of the next page."""
        if not 1 <= max_results <= 1000:
            raise InvalidParameter(f"MaxResults must be in [1, 1000], got {max_results}")
        where, args = ["1=1"], []
        for cond, value in (
            ("e.processor = ?", flt.processor),
            ("e.external_image_id = ?", flt.external_image_id),
            ("e.face_id = ?", flt.face_id),
            ("e.server_ts >= ?", flt.start_ts),
            ("e.server_ts <= ?", flt.end_ts),
            ("e.similarity >= ?", flt.min_similarity),
        ):
            if value is not None:
                where.append(cond)
                args.append(value)
        if flt.collection is not None:
            where.append(
                "EXISTS (SELECT 1 FROM processor_runs r WHERE r.processor = e.processor AND "
                "r.collection = ? AND e.server_ts >= r.started_ts AND "
                "(r.stopped_ts IS NULL OR e.server_ts <= r.stopped_ts))"
            )
            args.append(flt.collection)
        if next_token is not None:
            after_ts, after_id = self._decode(next_token, flt)
            where.append("(e.server_ts > ? OR (e.server_ts = ? AND e.event_id > ?))")
            args += [after_ts, after_ts, after_id]
        args.append(max_results + 1)
        sql = (
            f"SELECT e.server_ts, e.event_id, e.record FROM events e WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments, bound values
            "ORDER BY e.server_ts, e.event_id LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        page = rows[:max_results]
        token = None
        if len(rows) > max_results:
            token = self._encode(float(page[-1][0]), str(page[-1][1]), flt)
        return [json.loads(r[2]) for r in page], token

    def _sign(self, payload: bytes, flt: EventFilter) -> bytes:
        return hmac.new(self._key, payload + flt.digest(), hashlib.sha256).digest()[:16]

    def _encode(self, ts: float, event_id: str, flt: EventFilter) -> str:
        payload = json.dumps([ts, event_id]).encode()
        raw = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        sig = base64.urlsafe_b64encode(self._sign(payload, flt)).decode().rstrip("=")
        return f"{raw}.{sig}"

    def _decode(self, token: str, flt: EventFilter) -> tuple[float, str]:
        bad = InvalidParameter(
            "NextToken is not a token of this query (filters changed, or the server restarted)"
        )
        raw, _, sig = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            given = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        except ValueError:
            raise bad from None
        if not hmac.compare_digest(given, self._sign(payload, flt)):
            raise bad
        ts, event_id = json.loads(payload)
        return float(ts), str(event_id)

    def close(self) -> None:
        with self._lock:
            self._db.close()
