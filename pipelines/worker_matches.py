"""Match decisions of one stream processor: search per track, audit, then release, hold or drop.

For each analysed frame the tracker says which tracks to search; the searches go to the store
actor in one call, and every match the tracker then reports becomes a :class:`MatchEvent`.
Each event is audited before it can leave (who, why, what was found, what became of it; no
image) and then, by the collection's review policy:

- **release**: no confirmation required (or already confirmed): spooled for the sinks;
- **candidate**: held for reviewers (:mod:`pipelines.review`), nothing leaves;
- **suppressed**: a reviewer rejected the track: dropped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from facestream.audit import Actor, AuditLog
from facestream.match_event import MatchEvent
from facestream.types import FaceBatch
from pipelines.config import ProcessorSettings
from pipelines.events import match_event
from pipelines.review import Filing, effective_required
from pipelines.source import StreamStatus
from pipelines.store_actor import call
from pipelines.telemetry import inc, observe
from pipelines.tracker import FaceTracker, FrameInfo, MatchUpdate
from pipelines.worker_outputs import Outputs
from pipelines.worker_part import TrackPart
from pipelines.worker_stats import WorkerStats

log = logging.getLogger(__name__)

_POLICY_REFRESH_S = 5.0


class MatchDecider(TrackPart):
    """Turns the tracker's searches into audited events and files each one (see module doc)."""

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
        #: confirmations a match currently needs (the review policy, refreshed every few seconds)
        self.required = 0
        self._required_at = 0.0
        self._model = ""
        self._collection_requires = False
        self._outputs: Outputs | None = None

    def open(self, model: str, collection_requires: bool, outputs: Outputs) -> None:
        """A run starts: the embedder's name, the collection's own review flag, where events go."""
        self._model = model
        self._collection_requires = collection_requires
        self._outputs = outputs

    def on_frame(self, info: FrameInfo, batch: FaceBatch, rgb: np.ndarray) -> None:
        """Track the faces of one analysed frame; search and file what the tracker asks for."""
        s = self.settings
        requests = self.tracker.observe(info, batch)
        if not requests:
            return
        queries = np.stack([r.embedding for r in requests]).astype(np.float32)
        t0 = time.perf_counter()
        try:
            hits = call(
                self.store.search.remote(
                    s.collection,
                    queries,
                    model=self._model,
                    max_faces=s.max_matches,
                    min_similarity=self.tracker.search_floor,
                ),
                30.0,
            )
        except Exception:
            self.tracker.search_failed([r.track_id for r in requests])
            raise
        self.stats.searches += len(requests)
        observe("facestream_search_seconds", time.perf_counter() - t0, collection=s.collection)
        inc("facestream_searches_total", len(requests), collection=s.collection)
        for req, found in zip(requests, hits, strict=True):
            for update in self.tracker.apply(req.track_id, found):
                event = match_event(s.name, StreamStatus.RUNNING.value, update)
                # The track's own face in this frame, as the tracker assigned it (never by box overlap).
                keep = self.tracker.face_index(req.track_id)
                self._file(event, update, info, rgb, batch, keep)

    def _file(
        self,
        event: MatchEvent,
        update: MatchUpdate,
        info: FrameInfo,
        rgb: np.ndarray,
        batch: FaceBatch,
        keep: int | None,
    ) -> None:
        s = self.settings
        outputs = self._outputs
        if outputs is None:
            raise RuntimeError("MatchDecider.on_frame before open(): a run has no outputs yet")
        disposition = self._dispose(outputs, event, rgb, batch, keep)
        # Audited before the event can leave: who, why, what was found, what became of it; no image.
        self.audit.append(
            actor=self.actor,
            operation="StreamFaceMatch",
            purpose=s.purpose,
            inputs={
                "stream_processor": s.name,
                "collection": s.collection,
                "track_id": update.track_id,
                "frame_offset_s": round(update.frame.offset_s, 3),
            },
            results={
                "event_id": event.event_id,
                "revision": update.revision,
                "matches": [[update.identity.face_id, round(update.similarity, 3)]],
                "disposition": disposition,
            },
        )
        if disposition == Filing.SUPPRESSED:
            self.stats.suppressed += 1
            return
        if disposition == Filing.CANDIDATE:
            self.stats.candidates += 1
            inc("facestream_match_candidates_total", collection=s.collection)
        else:
            outputs.release(event)
            self.stats.events += 1
            self.stats.event_latency_s.append(time.monotonic() - info.monotonic)
            inc("facestream_matches_total", collection=s.collection)
            observe("facestream_capture_to_event_seconds", time.time() - info.producer_ts, stream=s.name)
        outputs.save_evidence(event, rgb, batch, keep)
        log.info(
            "match %s %s %.1f track %s (%s)",
            s.name,
            update.identity.external_image_id,
            update.similarity,
            update.track_id,
            disposition,
            extra=self.extra,
        )

    def _dispose(
        self, outputs: Outputs, event: MatchEvent, rgb: np.ndarray, batch: FaceBatch, keep: int | None
    ) -> str:
        """Send out at once ("release"), hold for reviewers ("candidate") or drop ("suppressed")."""
        required = self._required_confirmations(outputs)
        if required == 0:
            return Filing.RELEASE.value
        return outputs.file_for_review(event, required=required, rgb=rgb, batch=batch, keep=keep).value

    def _required_confirmations(self, outputs: Outputs) -> int:
        """Reviewers a match must pass (the review policy, else 2 if the collection asks), cached."""
        now = time.monotonic()
        if now - self._required_at > _POLICY_REFRESH_S:
            policy = outputs.review.policy(self.settings.collection)
            self.required = effective_required(policy, self._collection_requires)
            self._required_at = now
        return self.required
