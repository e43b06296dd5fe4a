"""Match records shaped like Rekognition Video's stream-processor output.

One record per (track, identity); later revisions of the same match keep its ``EventId``
and raise ``Revision``. ``(EventId, Revision)`` is what sinks deduplicate on.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pipelines.tracker import MatchUpdate

_NAMESPACE = uuid.UUID("6f1c1c55-0f4e-4d0b-9f53-3f2a4f7b5e11")


def event_id(processor: str, track_id: str, face_id: str) -> str:
    """Stable id of the match of one track with one stored face."""
    return str(uuid.uuid5(_NAMESPACE, f"{processor}/{track_id}/{face_id}"))


def match_record(
    processor: str, status: str, update: MatchUpdate, *, now_s: float | None = None
) -> dict[str, Any]:
    ident = update.identity
    face: dict[str, Any] = {"FaceId": ident.face_id, "ImageId": ident.image_id}
    if ident.external_image_id is not None:
        face["ExternalImageId"] = ident.external_image_id
    sims = ident.similarities
    return {
        "EventId": event_id(processor, update.track_id, ident.face_id),
        "Revision": update.revision,
        "TrackId": update.track_id,
        "InputInformation": {
            "Stream": {
                "Name": processor,
                "FrameOffsetInSeconds": round(update.frame.offset_s, 3),
                "ProducerTimestamp": round(update.frame.producer_ts, 3),
                "ServerTimestamp": round(update.frame.server_ts, 3),
            }
        },
        "StreamProcessorInformation": {"Status": status},
        "FaceSearchResponse": [
            {
                "DetectedFace": update.detected_face,
                "MatchedFaces": [{"Similarity": round(update.similarity, 3), "Face": face}],
            }
        ],
        "Track": {
            "FirstSeenOffsetInSeconds": round(update.first_offset_s, 3),
            "LastSeenOffsetInSeconds": round(update.last_offset_s, 3),
            "Frames": update.track_frames,
            "Searches": update.track_searches,
            "SimilarityMax": round(max(sims), 3),
            "SimilarityObservations": len(sims),
        },
        "EmittedTimestamp": round(time.time() if now_s is None else now_s, 3),
    }
