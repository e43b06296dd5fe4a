"""Match events from the tracker's match updates (see :mod:`facestream.match_event`).

One event per (track, identity); later revisions of the same match keep its ``EventId``
and raise ``Revision``. ``(EventId, Revision)`` is what sinks deduplicate on.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from facestream.match_event import MatchedFace, MatchEvent, TrackSummary, to_rekognition
from pipelines.tracker import MatchUpdate

_NAMESPACE = uuid.UUID("6f1c1c55-0f4e-4d0b-9f53-3f2a4f7b5e11")


def event_id(processor: str, track_id: str, face_id: str) -> str:
    """Stable id of the match of one track with one stored face."""
    return str(uuid.uuid5(_NAMESPACE, f"{processor}/{track_id}/{face_id}"))


def match_event(
    processor: str, status: str, update: MatchUpdate, *, now_s: float | None = None
) -> MatchEvent:
    """The event (revision) a match update makes; the identity's observations as they are now."""
    ident = update.identity
    sims = ident.similarities
    return MatchEvent(
        event_id=event_id(processor, update.track_id, ident.face_id),
        revision=update.revision,
        processor=processor,
        status=status,
        track_id=update.track_id,
        frame_offset_s=update.frame.offset_s,
        producer_ts=update.frame.producer_ts,
        server_ts=update.frame.server_ts,
        detected_face=update.detected_face,
        match=MatchedFace(
            face_id=ident.face_id,
            image_id=ident.image_id,
            external_image_id=ident.external_image_id,
            similarity=update.similarity,
        ),
        track=TrackSummary(
            first_offset_s=update.first_offset_s,
            last_offset_s=update.last_offset_s,
            frames=update.track_frames,
            searches=update.track_searches,
            similarity_max=float(max(sims)),
            similarity_observations=len(sims),
        ),
        emitted_ts=time.time() if now_s is None else now_s,
    )


def match_record(
    processor: str, status: str, update: MatchUpdate, *, now_s: float | None = None
) -> dict[str, Any]:
    """The wire form of :func:`match_event` (Rekognition stream-processor JSON)."""
    return to_rekognition(match_event(processor, status, update, now_s=now_s))
