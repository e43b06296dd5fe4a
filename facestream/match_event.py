"""The match event: one track of one stream matched one stored face (a kernel domain type).

A :class:`MatchEvent` is made when the tracker reports a match (``pipelines.events``) and is
handed, typed and frozen, to the match decisions, review, the spool and the sinks. Its
Rekognition Video stream-processor JSON (``EventId``/``Revision``/``TrackId`` added) is made
in one place, :func:`to_rekognition`: that is the form on the wire and on disk (JSON lines,
spool, event store, review candidates, webhooks, API answers).

Records read back from disk stay in that wire form (:data:`MatchRecord`): they may carry what
was added after the event was made (a ``Review`` note on release) or come from older versions,
so the stores that take events also take records, and read their key fields through
:func:`event_key` and :func:`index_fields` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from facestream.rekognition import face_detail, wire_image_id
from facestream.types import FaceBatch

#: a match event in its wire form (what :func:`to_rekognition` returns, or read back from disk)
MatchRecord: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One detected face of a frame, in pixels of that frame (what a match event shows of it).

    ``box`` x1, y1, x2, y2; ``landmarks`` five (x, y) of :data:`facestream.types.LANDMARK_TYPES`;
    ``score`` detector probability 0-1; ``pose`` yaw, pitch, roll in degrees; ``brightness``
    and ``sharpness`` 0-100. Values are exact copies of the batch's (float32 or float64).
    """

    image_width: int
    image_height: int
    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    score: float
    pose: tuple[float, float, float]
    brightness: float
    sharpness: float

    @staticmethod
    def from_batch(batch: FaceBatch, i: int) -> DetectedFace:
        x1, y1, x2, y2 = (float(v) for v in batch.boxes[i])
        yaw, pitch, roll = (float(v) for v in batch.pose[i])
        return DetectedFace(
            image_width=batch.image_width,
            image_height=batch.image_height,
            box=(x1, y1, x2, y2),
            landmarks=tuple((float(x), float(y)) for x, y in batch.landmarks[i]),
            score=float(batch.scores[i]),
            pose=(yaw, pitch, roll),
            brightness=float(batch.brightness[i]),
            sharpness=float(batch.sharpness[i]),
        )

    def as_batch(self) -> FaceBatch:
        """This face as a one-face batch (float64: the stored values exactly)."""
        one = np.float64
        return FaceBatch(
            image_width=self.image_width,
            image_height=self.image_height,
            boxes=np.array([self.box], one),
            landmarks=np.array([self.landmarks], one).reshape(1, 5, 2),
            scores=np.array([self.score], one),
            brightness=np.array([self.brightness], one),
            sharpness=np.array([self.sharpness], one),
            pose=np.array([self.pose], one),
        )


@dataclass(frozen=True, slots=True)
class MatchedFace:
    """The stored face a track matched, with the track's aggregate Similarity (0-100)."""

    face_id: str
    image_id: str
    external_image_id: str | None
    similarity: float


@dataclass(frozen=True, slots=True)
class TrackSummary:
    """The track behind a match, as it was when the event (revision) was made."""

    first_offset_s: float
    last_offset_s: float
    frames: int
    searches: int
    #: highest single-search Similarity with the matched face, and how many searches found it
    similarity_max: float
    similarity_observations: int


@dataclass(frozen=True, slots=True)
class MatchEvent:
    """One revision of the match of one track with one stored face.

    ``(event_id, revision)`` is what sinks deduplicate on: later revisions of the same match
    keep ``event_id`` and raise ``revision``. Timestamps are epoch seconds; ``frame_offset_s``
    is stream time of the frame the detected face comes from.
    """

    event_id: str
    revision: int
    processor: str
    #: the processor's status when the event was made (Rekognition's StreamProcessorInformation)
    status: str
    track_id: str
    frame_offset_s: float
    producer_ts: float
    server_ts: float
    #: the track's best face (None only for a track never seen with a searchable face)
    detected_face: DetectedFace | None
    match: MatchedFace
    track: TrackSummary
    emitted_ts: float

    @property
    def key(self) -> tuple[str, int]:
        return self.event_id, self.revision


#: what the spool, the sinks, the event store and review take: an event, or its wire form
EventOrRecord: TypeAlias = MatchEvent | MatchRecord


def to_rekognition(event: MatchEvent) -> MatchRecord:
    """The event as Rekognition Video stream-processor output (plus EventId, Revision, TrackId,
    Track): the one place its JSON is made."""
    m = event.match
    face: dict[str, Any] = {"FaceId": m.face_id, "ImageId": wire_image_id(m.image_id)}
    if m.external_image_id is not None:
        face["ExternalImageId"] = m.external_image_id
    detected = {} if event.detected_face is None else face_detail(event.detected_face.as_batch(), 0)
    t = event.track
    return {
        "EventId": event.event_id,
        "Revision": event.revision,
        "TrackId": event.track_id,
        "InputInformation": {
            "Stream": {
                "Name": event.processor,
                "FrameOffsetInSeconds": round(event.frame_offset_s, 3),
                "ProducerTimestamp": round(event.producer_ts, 3),
                "ServerTimestamp": round(event.server_ts, 3),
            }
        },
        "StreamProcessorInformation": {"Status": event.status},
        "FaceSearchResponse": [
            {
                "DetectedFace": detected,
                "MatchedFaces": [{"Similarity": round(m.similarity, 3), "Face": face}],
            }
        ],
        "Track": {
            "FirstSeenOffsetInSeconds": round(t.first_offset_s, 3),
            "LastSeenOffsetInSeconds": round(t.last_offset_s, 3),
            "Frames": t.frames,
            "Searches": t.searches,
            "SimilarityMax": round(t.similarity_max, 3),
            "SimilarityObservations": t.similarity_observations,
        },
        "EmittedTimestamp": round(event.emitted_ts, 3),
    }


def as_record(event: MatchEvent | Mapping[str, Any]) -> MatchRecord:
    """The wire form of an event, or of a record already in that form (returned as is)."""
    if isinstance(event, MatchEvent):
        return to_rekognition(event)
    return event if isinstance(event, dict) else dict(event)


def event_key(event: MatchEvent | Mapping[str, Any]) -> tuple[str, int]:
    """(EventId, Revision) of an event or record."""
    if isinstance(event, MatchEvent):
        return event.key
    return str(event["EventId"]), int(event["Revision"])


@dataclass(frozen=True, slots=True)
class IndexFields:
    """What the event store and the review store index an event by (as its record rounds them)."""

    event_id: str
    revision: int
    processor: str
    track_id: str
    face_id: str
    external_image_id: str | None
    similarity: float
    frame_offset_s: float
    server_ts: float


def index_fields(event: MatchEvent | Mapping[str, Any]) -> IndexFields:
    """The indexed fields of an event or of a record (KeyError/IndexError if a record lacks them)."""
    if isinstance(event, MatchEvent):
        m = event.match
        return IndexFields(
            event_id=event.event_id,
            revision=event.revision,
            processor=event.processor,
            track_id=event.track_id,
            face_id=m.face_id,
            external_image_id=m.external_image_id,
            similarity=round(m.similarity, 3),
            frame_offset_s=round(event.frame_offset_s, 3),
            server_ts=round(event.server_ts, 3),
        )
    record = event
    stream = record["InputInformation"]["Stream"]
    match = record["FaceSearchResponse"][0]["MatchedFaces"][0]
    return IndexFields(
        event_id=record["EventId"],
        revision=record["Revision"],
        processor=stream["Name"],
        track_id=record["TrackId"],
        face_id=match["Face"]["FaceId"],
        external_image_id=match["Face"].get("ExternalImageId"),
        similarity=match["Similarity"],
        frame_offset_s=stream["FrameOffsetInSeconds"],
        server_ts=stream["ServerTimestamp"],
    )
