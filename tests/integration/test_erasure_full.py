"""Erasure is complete: after ErasePerson nothing under the state directory holds the person.

Real Milvus Lite, real photos indexed through IndexFaces (so thumbnails are kept by the real
index path), a real spool, JSON-lines sink files (one under ``<home>/outputs``, one elsewhere
known only through the spool), the event store, evidence frames and review candidates. The
API operation is called through :class:`serve.service.ApiService` (its roles, validation and
handler; no HTTP). Afterwards every file under home is read byte by byte: the ExternalImageId
appears only in the audit log's own earlier entries (the ErasePerson entry holds its hash),
the FaceIds only there and in Milvus's delete tombstones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facestream.audit import AuditLog
from facestream.config import AnalyzerConfig, DeviceConfig
from facestream.errors import InvalidParameter, PermissionDenied
from facestream.imageio import load_image_file
from facestream.thumbnails import ThumbnailStore
from models.analyzer import FaceAnalyzer
from pipelines.config import JsonlSinkConfig
from pipelines.evidence import EvidenceStore
from pipelines.review import ReviewStore, review_path
from pipelines.sinks import EventStore, JsonlSink, Spool
from serve.config import ApiConfig
from serve.keys import Role
from serve.service import ApiService, Principal
from tests.helpers import face

pytestmark = pytest.mark.slow

EXT = "subject-7f3a9"  # the person to erase
OTHER = "bystander-2c1"


def _record(event_id: str, face_id: str, ext: str, ts: float) -> dict[str, Any]:
    return {
        "EventId": event_id,
        "Revision": 1,
        "TrackId": "t-" + event_id,
        "InputInformation": {"Stream": {"Name": "cam-1", "FrameOffsetInSeconds": 1.0, "ServerTimestamp": ts}},
        "FaceSearchResponse": [
            {
                "DetectedFace": {},
                "MatchedFaces": [{"Similarity": 99.0, "Face": {"FaceId": face_id, "ExternalImageId": ext}}],
            }
        ],
    }


def _holders(root: Path, needle: str) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()
    )


def test_erase_person_leaves_nothing_of_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = ApiConfig(home=home)
    svc = ApiService(cfg, FaceAnalyzer(AnalyzerConfig(device=DeviceConfig(device="cpu"))))
    admin = Principal("ADMINKEY", frozenset({Role.ADMIN}))
    try:
        ops = svc.ops
        for col in ("watch", "staff"):
            ops.create_collection(col, actor=admin.actor)
        idx = [
            ops.index_faces(
                "watch",
                _small(tmp_path, "obama.jpg"),
                actor=admin.actor,
                external_image_id=EXT,
            ),
            ops.index_faces(
                "staff",
                _small(tmp_path, "obama2.jpg"),
                actor=admin.actor,
                external_image_id=EXT,
            ),
            ops.index_faces(
                "watch",
                _small(tmp_path, "biden.jpg"),
                actor=admin.actor,
                external_image_id=OTHER,
            ),
        ]
        fids = [r["FaceRecords"][0]["Face"]["FaceId"] for r in idx]
        subject_ids, other_id = fids[:2], fids[2]
        thumbs = ThumbnailStore(home / "thumbnails")
        assert all(thumbs.get(c, f) for c, f in (("watch", fids[0]), ("staff", fids[1]), ("watch", other_id)))
        assert max(_jpeg_side(thumbs.get("watch", fids[0]) or b"")) <= 160

        mine = [_record("ev-s1", subject_ids[0], EXT, 1000.0), _record("ev-s2", subject_ids[1], EXT, 1001.0)]
        theirs = _record("ev-o1", other_id, OTHER, 1002.0)
        events = EventStore(cfg.resolved_events_path)
        events.upsert([*mine, theirs])
        events.close()
        inside = home / "outputs" / "bucket" / "cam-1.jsonl"
        elsewhere = tmp_path / "elsewhere" / "cam-1.jsonl"  # known only through the spool
        for path in (inside, elsewhere):
            JsonlSink(JsonlSinkConfig(path=path)).deliver([*mine, theirs])
        spool = Spool(home / "spool" / "cam-1.sqlite3")
        sinks = [f"jsonl:{elsewhere}", "webhook:http://127.0.0.1:9/x"]
        for rec in (*mine, theirs):
            spool.put(sinks, rec)
        spool.ack(sinks[0], [*mine, theirs])  # delivered to the file; still pending for the webhook
        spool.close()
        ev = EvidenceStore(home / "evidence")
        rgb = np.full((120, 160, 3), 90, np.uint8)
        for rec in (*mine, theirs):
            ev.save_frame(rec["EventId"], rgb, np.array([[20.0, 20.0, 60.0, 70.0]]), 0)
        ev.close()
        review = ReviewStore(review_path(home))
        cand = _record("ev-s3", subject_ids[0], EXT, 1003.0)
        review.submit(
            cand,
            collection="watch",
            required=2,
            sinks=sinks,
            spool=home / "spool" / "cam-1.sqlite3",
            crop_jpeg=b"\xff\xd8crop",
        )
        review.close()
        before = _holders(home, EXT)
        assert {"events.sqlite3", "review.sqlite3"} <= set(before) and any(
            p.startswith("spool/") for p in before
        )

        op = svc.operation("ErasePerson")
        assert op is not None and not op.rekognition
        with pytest.raises(PermissionDenied):
            svc.call(
                op,
                {"ExternalImageId": EXT, "Purpose": "dsar 1"},
                Principal("IDX", frozenset({Role.INDEXER})),
                None,
            )
        for bad in (
            {"ExternalImageId": EXT, "UserId": "u1", "Purpose": "x"},
            {"Purpose": "x"},
            {"ExternalImageId": EXT, "CollectionIds": []},
        ):
            with pytest.raises(InvalidParameter):
                svc.call(op, bad, admin, None)
        with pytest.raises(PermissionDenied):  # no purpose anywhere
            svc.call(op, {"ExternalImageId": EXT}, admin, None)

        out = svc.call(op, {"ExternalImageId": EXT, "CollectionIds": "all", "Purpose": "dsar 1"}, admin, None)
        assert out["DeletedFaces"] == {"watch": 1, "staff": 1}
        assert out["DeletedEvents"] == 2 and out["DeletedSpooledRecords"] == 2
        assert out["DeletedJsonlLines"] == 4 and out["JsonlFilesRewritten"] == 2
        assert out["DeletedEvidenceFrames"] == 2 and out["DeletedThumbnails"] == 2
        assert out["DeletedCandidates"] == 1

        # Nothing under home holds the external id, not even the audit log (pseudonyms only,
        # their secret now shredded) or its subject-secrets file ...
        assert _holders(home, EXT) == []
        assert EXT.encode() not in elsewhere.read_bytes()
        # ... nor the face ids, but those and Milvus's tombstones (ids only, no vector, no name).
        for fid in subject_ids:
            assert all(p == "audit.jsonl" or "/delta/" in p for p in _holders(home, fid)), _holders(home, fid)
        # The bystander is untouched everywhere.
        assert other_id.encode() in inside.read_bytes() and other_id.encode() in elsewhere.read_bytes()
        assert thumbs.get("watch", other_id) is not None
        ev = EvidenceStore(home / "evidence")
        assert ev.get("ev-o1") is not None and ev.get("ev-s1") is None
        ev.close()
        events = EventStore(cfg.resolved_events_path)
        assert [e["EventId"] for e in events.query()] == ["ev-o1"]
        events.close()
        spool = Spool(home / "spool" / "cam-1.sqlite3")
        assert [r["EventId"] for r in spool.pending(sinks[1], 10)] == ["ev-o1"]
        spool.close()
        # Search no longer finds them.
        hits = ops.search_faces_by_image(
            "watch",
            _small(tmp_path, "obama.jpg"),
            actor=admin.actor,
            purpose="check",
            threshold=0.0,
        )
        assert all(m["Face"]["ExternalImageId"] != EXT for m in hits["FaceMatches"])
        # The audit keeps the fact under a pseudonym whose secret is now shredded.
        audit = AuditLog(cfg.resolved_audit_path)
        entry = [e for e in audit.entries() if e["operation"] == "ErasePerson"][-1]
        psn = entry["inputs"]["external_image_id"]
        assert EXT not in json.dumps(entry) and psn.startswith("psn_")
        assert audit.subjects.resolve(psn) is None and audit.verify().ok
        assert entry["results"]["deleted_evidence_frames"] == 2
        # DeleteFaces and DeleteCollection take the thumbnails with the faces.
        assert ops.delete_faces("watch", [other_id], actor=admin.actor)["DeletedFaces"] == [other_id]
        assert thumbs.get("watch", other_id) is None
        ops.delete_collection("watch", actor=admin.actor)
        assert "watch" not in thumbs.collections()
    finally:
        svc.close()


def _small(tmp: Path, name: str) -> Any:
    """A photo at most 400 px on a side (the test pays for detection on a 2-core machine)."""
    from PIL import Image

    out = tmp / "small" / name
    if not out.exists():
        out.parent.mkdir(exist_ok=True)
        img = Image.open(face(f"face_recognition/examples/{name}")).convert("RGB")
        img.thumbnail((400, 400))
        img.save(out, quality=95)
    return load_image_file(out)


def _jpeg_side(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def test_thumbnail_store_and_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facestream.thumbnails import ThumbnailConfig, crop_jpeg, thumbnail_store

    st = ThumbnailStore(tmp_path / "thumbnails")
    jpeg = crop_jpeg(np.full((400, 300, 3), 50, np.uint8), np.array([10.0, 10.0, 290.0, 390.0]))
    assert max(_jpeg_side(jpeg)) <= 160
    st.put("c1", "f1", jpeg)
    st.put("c2", "f1", jpeg)
    st.put("c2", "f2", jpeg)
    assert st.get("c1", "f1") == jpeg and st.get("c1", "nope") is None
    assert st.delete("c1", ["f1", "f1", "x"]) == 1
    assert st.delete_everywhere(["f1"]) == 1 and st.face_ids("c2") == ["f2"]
    assert st.delete_collection("c2") == 1 and st.collections() == ["c1"]
    for col, fid in (("..", "f"), ("c", "../x"), ("a/b", "f"), ("c", "")):
        with pytest.raises(InvalidParameter):
            st.put(col, fid, jpeg)
    monkeypatch.setenv("FACESTREAM_THUMBNAILS", "off")
    assert ThumbnailConfig.from_env().enabled is False and thumbnail_store(tmp_path) is None
    monkeypatch.delenv("FACESTREAM_THUMBNAILS")
    assert thumbnail_store(tmp_path) is not None
