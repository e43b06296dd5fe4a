"""The typed match event: its Rekognition JSON is byte for byte what the dict records were.

The reference below is the record builder as it was before events were typed (a dict made
from the tracker's update, with the detected face formatted by ``face_detail`` on the frame's
batch); the event made from the same update must serialise to the same bytes, for float32
batches (the face service's) and float64 ones, with and without an ExternalImageId.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from facestream.match_event import (
    DetectedFace,
    MatchEvent,
    as_record,
    event_key,
    index_fields,
    to_rekognition,
)
from facestream.rekognition import face_detail, wire_image_id
from facestream.types import FaceBatch, SearchHit
from pipelines.config import TrackerConfig
from pipelines.events import event_id, match_event, match_record
from pipelines.tracker import FaceTracker, FrameInfo, MatchUpdate


def _batch(dtype: type[np.floating[Any]], seed: int) -> FaceBatch:
    rng = np.random.default_rng(seed)
    n = 2
    x = rng.uniform(50, 300, size=(n, 1))
    boxes = np.concatenate([x, x / 2, x + rng.uniform(60, 90, size=(n, 1)), x / 2 + 80], axis=1)
    emb = rng.normal(size=(n, 128))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return FaceBatch(
        image_width=641,
        image_height=359,
        boxes=boxes.astype(dtype),
        landmarks=rng.uniform(0, 350, size=(n, 5, 2)).astype(dtype),
        scores=rng.uniform(0.9, 1.0, size=n).astype(dtype),
        brightness=rng.uniform(0, 100, size=n).astype(dtype),
        sharpness=rng.uniform(0, 100, size=n).astype(dtype),
        pose=rng.uniform(-40, 40, size=(n, 3)).astype(dtype),
        embeddings=emb.astype(dtype),
        model="dlib-resnet",
    )


def _reference(
    processor: str, status: str, up: MatchUpdate, batch: FaceBatch, i: int, now_s: float
) -> dict[str, Any]:
    """The pre-typing record builder (pipelines/events.py before MatchEvent), verbatim but for
    the detected face, which the tracker then kept as ``face_detail(batch, i)``."""
    ident = up.identity
    face: dict[str, Any] = {"FaceId": ident.face_id, "ImageId": wire_image_id(ident.image_id)}
    if ident.external_image_id is not None:
        face["ExternalImageId"] = ident.external_image_id
    sims = ident.similarities
    return {
        "EventId": event_id(processor, up.track_id, ident.face_id),
        "Revision": up.revision,
        "TrackId": up.track_id,
        "InputInformation": {
            "Stream": {
                "Name": processor,
                "FrameOffsetInSeconds": round(up.frame.offset_s, 3),
                "ProducerTimestamp": round(up.frame.producer_ts, 3),
                "ServerTimestamp": round(up.frame.server_ts, 3),
            }
        },
        "StreamProcessorInformation": {"Status": status},
        "FaceSearchResponse": [
            {
                "DetectedFace": face_detail(batch, i),
                "MatchedFaces": [{"Similarity": round(up.similarity, 3), "Face": face}],
            }
        ],
        "Track": {
            "FirstSeenOffsetInSeconds": round(up.first_offset_s, 3),
            "LastSeenOffsetInSeconds": round(up.last_offset_s, 3),
            "Frames": up.track_frames,
            "Searches": up.track_searches,
            "SimilarityMax": round(max(sims), 3),
            "SimilarityObservations": len(sims),
        },
        "EmittedTimestamp": round(now_s, 3),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("external", ["alice", None])
def test_event_json_is_byte_identical_to_the_dict_record(
    dtype: type[np.floating[Any]], external: str | None
) -> None:
    batch = _batch(dtype, 7)
    tr = FaceTracker(TrackerConfig(min_face_px=28), threshold=80.0)
    info = FrameInfo(
        offset_s=12.34567,
        producer_ts=1700000000.123456,
        server_ts=1700000000.654321,
        session=0,
        monotonic=1.0,
    )
    reqs = tr.observe(info, batch)
    assert len(reqs) == 2
    (up,) = tr.apply(reqs[1].track_id, [SearchHit("f-1", 91.23456, external, "a" * 64)])
    event = match_event("cam-1", "RUNNING", up, now_s=1700000001.98765)
    want = _reference("cam-1", "RUNNING", up, batch, 1, 1700000001.98765)
    assert json.dumps(to_rekognition(event), ensure_ascii=False) == json.dumps(want, ensure_ascii=False)
    assert match_record("cam-1", "RUNNING", up, now_s=1700000001.98765) == want
    # What the stores index it by: the record's values, from the event or from its record.
    assert index_fields(event) == index_fields(want)
    assert event_key(event) == event_key(want) == (want["EventId"], 1)
    assert as_record(want) is want


def test_event_is_frozen_and_its_face_is_an_exact_copy() -> None:
    batch = _batch(np.float32, 3)
    face = DetectedFace.from_batch(batch, 0)
    assert face_detail(face.as_batch(), 0) == face_detail(batch, 0)
    tr = FaceTracker(TrackerConfig(min_face_px=28), threshold=80.0)
    info = FrameInfo(offset_s=1.0, producer_ts=2.0, server_ts=3.0, session=0, monotonic=1.0)
    reqs = tr.observe(info, batch)
    (up,) = tr.apply(reqs[0].track_id, [SearchHit("f-1", 95.0, "bob", "b" * 64)])
    event = match_event("cam-1", "RUNNING", up, now_s=4.0)
    assert isinstance(event, MatchEvent) and event.detected_face == face
    with pytest.raises(AttributeError):
        event.revision = 2  # type: ignore[misc]
    # The event keeps the observations as they were: a later search changes the next revision only.
    tr.apply(reqs[0].track_id, [SearchHit("f-1", 99.0, "bob", "b" * 64)])
    assert event.track.similarity_observations == 1 and event.track.similarity_max == 95.0


def test_tracker_names_the_face_of_each_track_in_the_last_frame() -> None:
    batch = _batch(np.float32, 5)
    tr = FaceTracker(TrackerConfig(min_face_px=28), threshold=80.0)
    info = FrameInfo(offset_s=1.0, producer_ts=2.0, server_ts=3.0, session=0, monotonic=1.0)
    reqs = tr.observe(info, batch)
    assert [tr.face_index(r.track_id) for r in reqs] == [0, 1]
    assert tr.face_index("no-such-track") is None
    tr.observe(
        FrameInfo(offset_s=1.2, producer_ts=2.2, server_ts=3.2, session=0, monotonic=1.2), batch.select([1])
    )
    assert [tr.face_index(r.track_id) for r in reqs] == [None, 0]
