"""Retention (with an injected clock) and erasure on a real Milvus Lite store, audited."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from facestream.audit import Actor, AuditLog
from facestream.errors import InvalidParameter, PurposeRequired
from facestream.store import FaceRecord, MilvusFaceStore, StoreConfig
from pipelines.erasure import DAY_MS, enforce_retention, erase_person

ACTOR = Actor("dpo", "admin")
T0 = 1_800_000_000_000  # a fixed "now" in epoch ms


def _face(ext: str, created_ms: int, rng: np.random.Generator, user: str | None = None) -> FaceRecord:
    v = rng.normal(size=128).astype(np.float32)
    return FaceRecord(
        face_id=str(uuid.uuid4()),
        external_image_id=ext,
        image_id="ab" * 32,
        bounding_box=(0.1, 0.1, 0.2, 0.2),
        confidence=99.0,
        quality={"brightness": 50.0, "sharpness": 50.0},
        created_at_ms=created_ms,
        user_id=user,
        embedding=v / np.linalg.norm(v),
    )


@pytest.fixture
def store(tmp_path: Path) -> MilvusFaceStore:
    s = MilvusFaceStore(StoreConfig(uri=str(tmp_path / "p.db")))
    yield s
    s.close()


def test_retention_deletes_only_expired_faces(store: MilvusFaceStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    audit = AuditLog(tmp_path / "audit.jsonl")
    store.create_collection("short", model="dlib-resnet", dim=128, retention_days=30)
    store.create_collection("forever", model="dlib-resnet", dim=128)
    old = [_face("a", T0 - 31 * DAY_MS, rng) for _ in range(3)]
    new = [_face("b", T0 - 29 * DAY_MS, rng) for _ in range(2)]
    store.add_faces("short", old + new, model="dlib-resnet")
    store.add_faces("forever", [_face("c", T0 - 3650 * DAY_MS, rng)], model="dlib-resnet")

    rep = enforce_retention(store, audit, ACTOR, now_ms=T0)
    assert rep.deleted == {"short": 3}
    left = {f.face_id for f in store.list_faces("short", max_results=100)[0]}
    assert left == {f.face_id for f in new}
    assert store.describe_collection("forever").face_count == 1
    # A day later the next two expire; run again is idempotent otherwise.
    assert enforce_retention(store, audit, ACTOR, now_ms=T0).deleted == {"short": 0}
    assert enforce_retention(store, audit, ACTOR, now_ms=T0 + 2 * DAY_MS).deleted == {"short": 2}
    entries = [e for e in audit.entries() if e["operation"] == "EnforceRetention"]
    assert len(entries) == 2 and sorted(entries[0]["results"]["deleted_face_ids"]) == sorted(
        f.face_id for f in old
    )
    assert audit.verify().ok


def test_erasure_removes_a_person_everywhere_and_keeps_only_the_fact(
    store: MilvusFaceStore, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    audit = AuditLog(tmp_path / "audit.jsonl")
    for c in ("watchlist", "staff"):
        store.create_collection(c, model="dlib-resnet", dim=128)
    target = [_face("jane-doe", T0, rng) for _ in range(2)]
    store.add_faces("watchlist", [*target, _face("someone-else", T0, rng)], model="dlib-resnet")
    store.add_faces("staff", [_face("jane-doe", T0, rng)], model="dlib-resnet")

    with pytest.raises(PurposeRequired):
        erase_person(store, audit, ACTOR, purpose="", external_image_id="jane-doe")
    with pytest.raises(InvalidParameter):
        erase_person(store, audit, ACTOR, purpose="request 7")
    out = erase_person(store, audit, ACTOR, purpose="erasure request 7", external_image_id="jane-doe")
    assert (out["DeletedFaces"], out["Total"], out["DeletedEvents"]) == ({"watchlist": 2, "staff": 1}, 3, 0)
    # Search no longer finds her: her own vector returns nothing at any threshold.
    hits = store.search(
        "watchlist", target[0].embedding[None], model="dlib-resnet", max_faces=5, min_similarity=0
    )
    assert all(h.external_image_id != "jane-doe" for h in hits[0])
    assert store.describe_collection("staff").face_count == 0
    entry = [e for e in audit.entries() if e["operation"] == "ErasePerson"][-1]
    text = json.dumps(entry)
    assert "jane-doe" not in text
    # A pseudonym whose secret erasure destroyed: unresolvable, and the chain still verifies.
    psn = entry["inputs"]["external_image_id"]
    assert psn.startswith("psn_") and audit.subjects.resolve(psn) is None and audit.verify().ok
    assert entry["purpose"] == "erasure request 7"


def test_erasure_by_user_id(store: MilvusFaceStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    audit = AuditLog(tmp_path / "audit.jsonl")
    store.create_collection("users", model="dlib-resnet", dim=128)
    faces = [_face(f"img{i}", T0, rng) for i in range(3)]
    store.add_faces("users", faces, model="dlib-resnet")
    store.create_user("users", "u-1")
    store.set_face_user("users", [f.face_id for f in faces[:2]], "u-1")
    out = erase_person(store, audit, ACTOR, purpose="dsar 9", user_id="u-1", collections=["users"])
    assert out["Total"] == 2 and store.describe_collection("users").face_count == 1


def _event(event_id: str, face_id: str, ext: str, server_ts_s: float) -> dict:
    return {
        "EventId": event_id,
        "Revision": 1,
        "TrackId": "t-" + event_id,
        "InputInformation": {
            "Stream": {"Name": "cam-1", "FrameOffsetInSeconds": 1.0, "ServerTimestamp": server_ts_s}
        },
        "FaceSearchResponse": [
            {"MatchedFaces": [{"Similarity": 99.0, "Face": {"FaceId": face_id, "ExternalImageId": ext}}]}
        ],
    }


def test_erasure_and_retention_reach_the_match_events(store: MilvusFaceStore, tmp_path: Path) -> None:
    from pipelines.sinks import EventStore

    rng = np.random.default_rng(3)
    audit = AuditLog(tmp_path / "audit.jsonl")
    events = EventStore(tmp_path / "events.sqlite3")
    store.create_collection("watchlist", model="dlib-resnet", dim=128)
    jane, other = _face("jane-doe", T0, rng), _face("other", T0, rng)
    store.add_faces("watchlist", [jane, other], model="dlib-resnet")
    events.upsert(
        [
            _event("e1", jane.face_id, "jane-doe", T0 / 1000),
            _event("e2", other.face_id, "other", T0 / 1000),
            _event("e3", other.face_id, "other", (T0 - 40 * DAY_MS) / 1000),
        ]
    )
    out = erase_person(store, audit, ACTOR, purpose="dsar 11", external_image_id="jane-doe", events=events)
    assert out["DeletedEvents"] == 1
    assert events.query(external_image_id="jane-doe") == []
    rep = enforce_retention(store, audit, ACTOR, now_ms=T0, events=events, events_retention_days=30)
    assert rep.deleted_events == 1
    assert [e["EventId"] for e in events.query()] == ["e2"]
    events.close()
