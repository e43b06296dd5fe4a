"""Where match records go: a durable local spool in front of every sink.

Records are first written to a SQLite spool (one file per processor, fsynced by SQLite's
commit); a delivery loop then hands them to each sink and deletes them only once the sink
accepted them. A sink that is down therefore loses nothing: its records wait, survive a
restart of the processor, and go out when it is back. Only the newest pending revision of
an event is kept per sink (an update supersedes a record nobody has seen yet).

No duplicates: every record carries ``(EventId, Revision)``. The JSON-lines sink skips pairs
already in its file, the event store upserts by EventId, and the webhook sends the pair as
``Idempotency-Key`` so a receiver can drop a retry whose first attempt did arrive.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import requests

from facestream.atomic import replacing
from facestream.match_event import EventOrRecord, MatchRecord, as_record, event_key, index_fields
from facestream.sqlite import connect as sqlite_connect
from pipelines.config import (
    DeliveryConfig,
    EventStoreSinkConfig,
    JsonlSinkConfig,
    SinkConfig,
    WebhookSinkConfig,
)
from pipelines.telemetry import gauge, inc
from pipelines.urls import mask_url

log = logging.getLogger(__name__)


class SinkUnavailable(Exception):
    """A delivery failed in a way worth retrying.

    ``delivered``: how many records at the front of the batch the sink did accept before it
    failed (the deliverer acks those, so a retry does not send them again).
    """

    def __init__(self, message: str, delivered: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered


class Sink(Protocol):
    name: str
    kind: str

    def deliver(self, records: Sequence[EventOrRecord]) -> None: ...

    def close(self) -> None: ...


def _key(rec: EventOrRecord) -> tuple[str, int]:
    return event_key(rec)


def record_names(rec: dict[str, Any], *, external_image_id: str | None, face_ids: set[str]) -> bool:
    """Whether a match record names this person (a matched FaceId or ExternalImageId)."""
    try:
        for resp in rec.get("FaceSearchResponse") or ():
            for m in resp.get("MatchedFaces") or ():
                face = m.get("Face") or {}
                if face.get("FaceId") in face_ids:
                    return True
                if external_image_id is not None and face.get("ExternalImageId") == external_image_id:
                    return True
    except AttributeError:
        return False
    return False


def erase_jsonl(
    path: Path, *, external_image_id: str | None = None, face_ids: list[str] | None = None
) -> tuple[int, list[str]]:
    """Rewrite a JSON-lines sink file without the records naming this person (atomically:
    a temporary file in the same directory, fsynced, renamed over it). Returns (lines removed,
    their EventIds). Unparseable lines are kept: they are not this person's records."""
    fids = set(face_ids or ())
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return 0, []
    kept: list[bytes] = []
    removed: list[str] = []
    for line in raw.splitlines(keepends=True):
        try:
            rec = json.loads(line)
        except ValueError:
            kept.append(line)
            continue
        if isinstance(rec, dict) and record_names(rec, external_image_id=external_image_id, face_ids=fids):
            removed.append(str(rec.get("EventId")))
        else:
            kept.append(line)
    if not removed:
        return 0, []
    with replacing(path, mode=path.stat().st_mode & 0o777, fsync=True) as tmp, tmp.open("wb") as f:
        f.writelines(kept)
    return len(removed), removed


def scrub_sqlite(path: Path) -> None:
    """After deleting a person's rows: rebuild the file so the deleted rows' bytes are gone
    (SQLite keeps them in free pages and in the WAL until VACUUM and a truncating checkpoint)."""
    db = sqlite_connect(path, shared=False)
    try:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


class JsonlSink:
    """Appends records to a file, one JSON object per line, fsynced per delivery."""

    def __init__(self, config: JsonlSinkConfig) -> None:
        self.path = config.path
        self.name = f"jsonl:{self.path}"
        self.kind = "jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seen: set[tuple[str, int]] = set()
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        self._seen.add(_key(json.loads(line)))
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line from a crash; the spool still has it

    def deliver(self, records: Sequence[EventOrRecord]) -> None:
        fresh = [r for r in records if _key(r) not in self._seen]
        if not fresh:
            return
        try:
            with self.path.open("a", encoding="utf-8") as f:
                for r in fresh:
                    f.write(json.dumps(as_record(r), ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise SinkUnavailable(f"{self.name}: {exc}") from None
        self._seen.update(_key(r) for r in fresh)

    def close(self) -> None:
        pass


class WebhookSink:
    """POSTs each record as JSON; 2xx accepts, 408/429/5xx and network errors retry later."""

    def __init__(self, config: WebhookSinkConfig) -> None:
        self._url = config.url.get_secret_value()
        self.name = f"webhook:{mask_url(self._url)}"
        self.kind = "webhook"
        self._timeout = config.timeout_s
        self._session = requests.Session()
        self._session.trust_env = False  # never route camera events through an env proxy
        self._headers = {"Content-Type": "application/json"}
        if config.bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {config.bearer_token.get_secret_value()}"

    def deliver(self, records: Sequence[EventOrRecord]) -> None:
        for done, r in enumerate(records):
            eid, rev = _key(r)
            try:
                resp = self._session.post(
                    self._url,
                    data=json.dumps(as_record(r), ensure_ascii=False).encode(),
                    headers={**self._headers, "Idempotency-Key": f"{eid}:{rev}"},
                    timeout=self._timeout,
                    # A redirect could lead past the webhook host allowlist: never followed.
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise SinkUnavailable(f"{self.name}: {type(exc).__name__}", done) from None
            if 300 <= resp.status_code < 400:
                raise SinkUnavailable(f"{self.name}: HTTP {resp.status_code} redirect (not followed)", done)
            if resp.status_code in (408, 429) or resp.status_code >= 500:
                raise SinkUnavailable(f"{self.name}: HTTP {resp.status_code}", done)
            if resp.status_code >= 400:
                # The receiver refuses this record for good; retrying would block the rest.
                log.error(
                    "%s rejected event %s rev %s: HTTP %s; dropped", self.name, eid, rev, resp.status_code
                )

    def close(self) -> None:
        self._session.close()


class EventStore:
    """A queryable store of match events (SQLite): the latest revision of each event."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite_connect(path, wal=True)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, revision INTEGER NOT NULL, "
                "processor TEXT NOT NULL, track_id TEXT NOT NULL, face_id TEXT NOT NULL, "
                "external_image_id TEXT, similarity REAL NOT NULL, frame_offset_s REAL NOT NULL, "
                "server_ts REAL NOT NULL, record TEXT NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS events_proc_ts ON events (processor, server_ts)")

    def upsert(self, records: Sequence[EventOrRecord]) -> None:
        rows = []
        for r in records:
            f = index_fields(r)
            rows.append(
                (
                    f.event_id,
                    f.revision,
                    f.processor,
                    f.track_id,
                    f.face_id,
                    f.external_image_id,
                    f.similarity,
                    f.frame_offset_s,
                    f.server_ts,
                    json.dumps(as_record(r), ensure_ascii=False),
                )
            )
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(event_id) DO UPDATE SET "
                "revision=excluded.revision, similarity=excluded.similarity, "
                "frame_offset_s=excluded.frame_offset_s, server_ts=excluded.server_ts, "
                "record=excluded.record "
                "WHERE excluded.revision > events.revision",
                rows,
            )

    def query(
        self,
        *,
        processor: str | None = None,
        external_image_id: str | None = None,
        since_ts: float | None = None,
        min_similarity: float | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Events (latest revision), oldest first. Parameters are bound, never spliced into SQL."""
        where, args = ["1=1"], []
        for cond, value in (
            ("processor = ?", processor),
            ("external_image_id = ?", external_image_id),
            ("server_ts >= ?", since_ts),
            ("similarity >= ?", min_similarity),
        ):
            if value is not None:
                where.append(cond)
                args.append(value)
        args.append(max(1, min(int(limit), 100_000)))
        with self._lock:
            rows = self._db.execute(
                f"SELECT record FROM events WHERE {' AND '.join(where)} ORDER BY server_ts, event_id LIMIT ?",  # noqa: S608 - fixed fragments
                args,
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def get(self, event_id: str) -> dict[str, Any] | None:
        """The latest revision of one event, or None."""
        with self._lock:
            row = self._db.execute("SELECT record FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def event_ids_of(
        self, *, external_image_id: str | None = None, face_ids: list[str] | None = None
    ) -> list[str]:
        """EventIds of every event that matched this person (what erasure also removes elsewhere)."""
        out: set[str] = set()
        fids = list(face_ids or [])
        with self._lock:
            if external_image_id is not None:
                out.update(
                    r[0]
                    for r in self._db.execute(
                        "SELECT event_id FROM events WHERE external_image_id = ?", (external_image_id,)
                    )
                )
            for i in range(0, len(fids), 500):
                chunk = fids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT event_id FROM events WHERE face_id IN ({marks})"  # noqa: S608 - placeholders only
                out.update(r[0] for r in self._db.execute(sql, chunk))
        return sorted(out)

    def erase(self, *, external_image_id: str | None = None, face_ids: list[str] | None = None) -> int:
        """Delete every event that matched this person (by ExternalImageId and/or FaceIds); count."""
        n = 0
        with self._lock, self._db:
            if external_image_id is not None:
                n += self._db.execute(
                    "DELETE FROM events WHERE external_image_id = ?", (external_image_id,)
                ).rowcount
            for i in range(0, len(face_ids or []), 500):
                chunk = (face_ids or [])[i : i + 500]
                marks = ",".join("?" * len(chunk))
                n += self._db.execute(f"DELETE FROM events WHERE face_id IN ({marks})", chunk).rowcount  # noqa: S608 - placeholders only
        return n

    def delete_older_than(self, server_ts_s: float) -> int:
        """Retention: delete events whose ServerTimestamp (epoch s) is before ``server_ts_s``."""
        with self._lock, self._db:
            return int(self._db.execute("DELETE FROM events WHERE server_ts < ?", (server_ts_s,)).rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class EventStoreSink:
    def __init__(self, config: EventStoreSinkConfig) -> None:
        self.store = EventStore(config.path)
        self.name = f"event-store:{config.path}"
        self.kind = "event-store"

    def deliver(self, records: Sequence[EventOrRecord]) -> None:
        try:
            self.store.upsert(records)
        except sqlite3.Error as exc:
            raise SinkUnavailable(f"{self.name}: {exc}") from None

    def close(self) -> None:
        self.store.close()


def make_sink(config: SinkConfig) -> Sink:
    if isinstance(config, JsonlSinkConfig):
        return JsonlSink(config)
    if isinstance(config, WebhookSinkConfig):
        return WebhookSink(config)
    return EventStoreSink(config)


class Spool:
    """Durable outbox: (sink, EventId) -> newest pending record, in arrival order."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        self._last_count = 0
        self._db = sqlite_connect(path, wal=True, synchronous="FULL")
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "sink TEXT NOT NULL, "
                "event_id TEXT NOT NULL, revision INTEGER NOT NULL, record TEXT NOT NULL, "
                "UNIQUE (sink, event_id))"
            )
            # Every sink this spool ever fed: erasure finds the JSON-lines files through it.
            self._db.execute("CREATE TABLE IF NOT EXISTS sinks (name TEXT PRIMARY KEY)")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db

    def put(self, sinks: list[str], record: EventOrRecord) -> None:
        """Queue an event (its wire form, :func:`facestream.match_event.to_rekognition`) for each sink."""
        eid, rev = _key(record)
        body = json.dumps(as_record(record), ensure_ascii=False)
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO sinks (name) VALUES (?)", [(s,) for s in sinks])
            for s in sinks:
                # A newer revision replaces a pending older one (and moves to the back).
                db.execute(
                    "DELETE FROM outbox WHERE sink = ? AND event_id = ? AND revision < ?", (s, eid, rev)
                )
                db.execute(
                    "INSERT OR IGNORE INTO outbox (sink, event_id, revision, record) VALUES (?,?,?,?)",
                    (s, eid, rev, body),
                )

    def pending(self, sink: str, limit: int) -> list[MatchRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM outbox WHERE sink = ? ORDER BY seq LIMIT ?", (sink, limit)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def ack(self, sink: str, records: Sequence[EventOrRecord]) -> None:
        with self._tx() as db:
            db.executemany(
                "DELETE FROM outbox WHERE sink = ? AND event_id = ? AND revision = ?",
                [(sink, *_key(r)) for r in records],
            )

    def count(self, sink: str | None = None) -> int:
        with self._lock:
            if self._closed:
                return self._last_count
            if sink is None:
                row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            else:
                row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE sink = ?", (sink,)).fetchone()
        if sink is None:
            self._last_count = int(row[0])
        return int(row[0])

    def sink_names(self) -> list[str]:
        """Every sink this spool has fed (pending or not)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name FROM sinks UNION SELECT DISTINCT sink FROM outbox"
            ).fetchall()
        return sorted(str(r[0]) for r in rows)

    def erase(
        self, *, external_image_id: str | None = None, face_ids: list[str] | None = None
    ) -> tuple[int, list[str]]:
        """Delete pending records that name this person; returns (rows removed, their EventIds)."""
        fids = set(face_ids or ())
        with self._tx() as db:
            rows = db.execute("SELECT seq, event_id, record FROM outbox").fetchall()
            hit = []
            for seq, eid, body in rows:
                try:
                    rec = json.loads(body)
                except ValueError:
                    continue
                if isinstance(rec, dict) and record_names(
                    rec, external_image_id=external_image_id, face_ids=fids
                ):
                    hit.append((int(seq), str(eid)))
            db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq, _ in hit])
        return len(hit), sorted({eid for _, eid in hit})

    def close(self) -> None:
        self.count()
        with self._lock:
            self._closed = True
            self._db.close()


class Deliverer:
    """Moves spooled records to their sinks; each sink retries on its own capped backoff."""

    def __init__(self, spool: Spool, sinks: list[Sink], config: DeliveryConfig, stream_id: str) -> None:
        self.spool = spool
        self.sinks = sinks
        self.config = config
        self.extra = {"stream_id": stream_id}
        self.stream_id = stream_id
        self._next_try: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self.delivered: dict[str, int] = {s.name: 0 for s in sinks}
        self.last_error: dict[str, str] = {}
        self._wake = threading.Event()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sinks]

    def notify(self) -> None:
        self._wake.set()

    def step(self) -> int:
        """One pass over every sink that is due; returns records still pending."""
        now = time.monotonic()
        for sink in self.sinks:
            if self._next_try.get(sink.name, 0.0) > now:
                continue
            records = self.spool.pending(sink.name, self.config.batch_records)
            if not records:
                continue
            try:
                sink.deliver(records)
            except SinkUnavailable as exc:
                if exc.delivered > 0:
                    # Accepted before the failure: never sent again (no duplicates on retry).
                    self.spool.ack(sink.name, records[: exc.delivered])
                    self.delivered[sink.name] += exc.delivered
                inc("facestream_sink_failures_total", sink=f"{self.stream_id}:{sink.kind}")
                n = self._failures.get(sink.name, 0)
                self._failures[sink.name] = n + 1
                delay = min(self.config.max_backoff_s, self.config.initial_backoff_s * 2.0**n)
                delay *= random.uniform(0.8, 1.2)
                self._next_try[sink.name] = now + delay
                self.last_error[sink.name] = str(exc)
                log.warning(
                    "sink %s unavailable (%s); %s pending, retry in %.1fs",
                    sink.name,
                    exc,
                    self.spool.count(sink.name),
                    delay,
                    extra=self.extra,
                )
                continue
            self.spool.ack(sink.name, records)
            self.delivered[sink.name] += len(records)
            inc("facestream_sink_deliveries_total", len(records), sink=f"{self.stream_id}:{sink.kind}")
            self._failures.pop(sink.name, None)
            self.last_error.pop(sink.name, None)
        for sink in self.sinks:
            depth = self.spool.count(sink.name)
            gauge("facestream_sink_spool_depth", depth, sink=f"{self.stream_id}:{sink.kind}")
        return self.spool.count()

    def run(self, stop: threading.Event, idle_s: float = 0.2) -> None:
        """Deliver until ``stop``; then keep trying for ``drain_timeout_s`` at most."""
        while not stop.is_set():
            pending = self.step()
            self._wake.wait(idle_s if pending == 0 else min(idle_s, 0.1))
            self._wake.clear()
        deadline = time.monotonic() + self.config.drain_timeout_s
        while time.monotonic() < deadline and self.step() > 0:
            time.sleep(0.05)

    def close(self) -> None:
        for s in self.sinks:
            s.close()
