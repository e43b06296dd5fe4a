"""Keeping the faces of people nobody is looking for: only while the settings ask, audited.

Tracks that end unmatched are upserted into the processor's unknown-face collection under a
stable face id (re-kept after a restart upserts, not duplicates). A store outage does not
lose them: they wait in a bounded backlog and go with the next tick that reaches the store
(a full backlog drops the oldest, counted under ``unknown_backlog_full``).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np

from facestream.audit import Actor, AuditLog
from facestream.store.records import FaceRecord
from pipelines.config import ProcessorSettings
from pipelines.store_actor import call
from pipelines.tracker import FaceTracker, Track
from pipelines.worker_part import TrackPart
from pipelines.worker_stats import WorkerStats

log = logging.getLogger(__name__)

_UNKNOWN_BACKLOG = 10_000


def unknown_record(processor: str, track: Track) -> FaceRecord:
    """An unmatched track as a face: a stable id (re-kept after a restart upserts, not duplicates)."""
    emb = track.embedding.astype(np.float32)
    return FaceRecord(
        face_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"facestream:unknown:{processor}:{track.track_id}")),
        external_image_id=f"unknown.{processor}.{track.track_id}"[:255],
        image_id=hashlib.sha256(emb.tobytes()).hexdigest(),
        bounding_box=(0.0, 0.0, 0.0, 0.0),
        confidence=0.0,
        quality={},
        created_at_ms=int(datetime.now(UTC).timestamp() * 1000),
        embedding=emb,
    )


class UnknownFaceKeeper(TrackPart):
    """Upserts the tracks that ended unmatched into the unknown-face collection (audited)."""

    def __init__(
        self,
        settings: ProcessorSettings,
        store: Any,
        tracker: FaceTracker,
        stats: WorkerStats,
        audit: AuditLog,
        actor: Actor,
    ) -> None:
        super().__init__(settings, store, tracker, stats, audit, actor)
        self._model = ""
        # Held across store outages and retried each tick; their face ids are stable, so a
        # retry upserts rather than duplicates.
        self._backlog: collections.deque[tuple[str, FaceRecord]] = collections.deque(maxlen=_UNKNOWN_BACKLOG)

    @property
    def collection(self) -> str:
        s = self.settings
        return s.unknown_faces.collection or f"{s.collection}-unknown"[:255]

    def open(self, model: str, dim: int) -> None:
        """When keeping is on: create the collection if needed, tell the tracker, audit the start."""
        self._model = model
        s = self.settings
        unknown = s.unknown_faces
        if not unknown.active():
            return
        target = self.collection
        if target not in call(self.store.list_collections.remote(), 60):
            call(
                self.store.create_collection.remote(
                    target, model=model, dim=dim, retention_days=unknown.retention_days
                ),
                60,
            )
        self.tracker.collect_unmatched = True
        # Keeping faces of people nobody is looking for is the exception: on the record, every start.
        self.audit.append(
            actor=self.actor,
            operation="KeepUnknownFaces",
            purpose=s.purpose,
            inputs={
                "stream_processor": s.name,
                "collection": target,
                "until": unknown.until.isoformat() if unknown.until else None,
                "retention_days": unknown.retention_days,
            },
        )
        log.warning(
            "stream %s keeps unmatched faces in %s until %s", s.name, target, unknown.until, extra=self.extra
        )

    def keep(self) -> None:
        """Upsert the tracks that ended unmatched, while keeping unknown faces is on (audited)."""
        ended = self.tracker.drain_unmatched()
        s = self.settings
        if not s.unknown_faces.active():
            self._backlog.clear()  # the keeping window closed: nothing more is kept
            return
        for t in ended:
            if len(self._backlog) == self._backlog.maxlen:
                self.stats.counters.drops["unknown_backlog_full"] += 1
            self._backlog.append((t.track_id, unknown_record(s.name, t)))
        if not self._backlog:
            return
        batch = list(self._backlog)
        try:
            ids = call(
                self.store.add_faces.remote(self.collection, [r for _, r in batch], model=self._model),
                60.0,
            )
        except Exception as exc:
            log.warning(
                "keeping %d unknown faces failed (%s); retried next tick",
                len(batch),
                type(exc).__name__,
                extra=self.extra,
            )
            return
        for _ in batch:
            self._backlog.popleft()
        self.stats.unknown_kept += len(ids)
        self.audit.append(
            actor=self.actor,
            operation="KeepUnknownFace",
            purpose=s.purpose,
            inputs={"stream_processor": s.name, "collection": self.collection},
            results={"face_ids": ids, "track_ids": [tid for tid, _ in batch]},
        )
