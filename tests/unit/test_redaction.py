"""Redaction of evidence: blurred faces are neither found nor recognised; the kept face is.

Real photos and the real pipeline (MTCNN + dlib-resnet): after :func:`redact`, MTCNN finds
no face where a face was blurred, and even embedded at its original landmarks a blurred face
no longer matches its identity (another photo of the same person) at the default threshold
of 80, while the kept face still does. The evidence store and the clip export run for real
(PyAV decode and H.264 encode).
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from facestream.config import AnalyzerConfig, DeviceConfig
from facestream.errors import InvalidParameter
from facestream.similarity import cosine_to_similarity
from models.analyzer import FaceAnalyzer
from pipelines.evidence import EvidenceStore, export_clip, redact
from tests.helpers import face

THRESHOLD = 80.0


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(AnalyzerConfig(device=DeviceConfig(device="cpu")))


def _rgb(rel: str, max_side_px: int = 800) -> np.ndarray:
    """A photo at most ``max_side_px`` on a side (detection time on a shared 2-core machine)."""
    img = Image.open(face(rel)).convert("RGB")
    img.thumbnail((max_side_px, max_side_px))
    return np.asarray(img)


def _largest_embedding(an: FaceAnalyzer, rgb: np.ndarray) -> np.ndarray:
    b = an.analyze([rgb])[0].largest_first()
    assert len(b) >= 1 and b.embeddings is not None
    return b.embeddings[0]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@pytest.mark.slow
def test_blurred_face_is_not_recognised_and_kept_face_is(analyzer: FaceAnalyzer) -> None:
    model = analyzer.model_name
    photo = _rgb("face_recognition/examples/knn_examples/test/obama_and_biden.jpg")
    obama = _largest_embedding(analyzer, _rgb("face_recognition/examples/obama.jpg"))
    biden = _largest_embedding(analyzer, _rgb("face_recognition/examples/biden.jpg"))
    before = analyzer.analyze([photo])[0]
    assert len(before) >= 2 and before.embeddings is not None
    sims_o = cosine_to_similarity(model, before.embeddings @ obama)
    sims_b = cosine_to_similarity(model, before.embeddings @ biden)
    i_o, i_b = int(np.argmax(sims_o)), int(np.argmax(sims_b))
    assert i_o != i_b and sims_o[i_o] >= THRESHOLD and sims_b[i_b] >= THRESHOLD  # the test means something

    orig = photo.copy()
    red = redact(photo, before.boxes, i_o)
    assert red.shape == photo.shape and red.dtype == np.uint8
    assert np.array_equal(photo, orig)  # the input is untouched

    after = analyzer.analyze([red])[0]
    # MTCNN finds nothing where Biden (or anyone else but Obama) was ...
    for i in range(len(before)):
        if i != i_o:
            assert all(_iou(after.boxes[j], before.boxes[i]) < 0.1 for j in range(len(after)))
    # ... still finds Obama, who still matches his other photo ...
    j_o = [j for j in range(len(after)) if _iou(after.boxes[j], before.boxes[i_o]) > 0.5]
    assert len(j_o) == 1 and after.embeddings is not None
    assert float(cosine_to_similarity(model, after.embeddings[j_o[0]] @ obama)) >= THRESHOLD
    # ... and Biden embedded at his original landmarks on the redacted image is nobody.
    forced = analyzer.embed_batches([red], [before.select([i_b])])[0]
    assert forced.embeddings is not None
    assert float(cosine_to_similarity(model, forced.embeddings[0] @ biden)) < THRESHOLD


@pytest.mark.slow
def test_keep_none_blurs_every_face_of_a_group_photo(analyzer: FaceAnalyzer) -> None:
    photo = _rgb("facenet-pytorch/data/multiface.jpg")
    before = analyzer.detect([photo])[0]
    assert len(before) >= 5
    after = analyzer.detect([redact(photo, before.boxes, None)])[0]
    assert len(after) == 0, after.boxes


@pytest.mark.parametrize(
    ("shape", "boxes", "keep"),
    [
        ((10, 10), np.zeros((0, 4)), None),  # not RGB
        ((10, 10, 3), np.zeros((1, 4)), 1),  # keep out of range
        ((10, 10, 3), np.zeros((1, 4)), -1),
    ],
)
def test_redact_refuses_bad_input(shape: tuple[int, ...], boxes: np.ndarray, keep: int | None) -> None:
    with pytest.raises(InvalidParameter):
        redact(np.zeros(shape, np.uint8), boxes, keep)


def test_redact_clips_boxes_at_the_image_edge() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    out = redact(rgb, np.array([[-10.0, -5.0, 20.0, 30.0], [50.0, 30.0, 80.0, 60.0]]), None)
    assert out.shape == rgb.shape
    assert not np.array_equal(out[:20, :20], rgb[:20, :20])
    assert np.array_equal(out[5:20, 30:40], rgb[5:20, 30:40])  # outside both padded boxes


def test_evidence_store_save_get_erase_and_retention(tmp_path: Path) -> None:
    now = [1000.0]
    store = EvidenceStore(tmp_path / "evidence", clock=lambda: now[0])
    rgb = np.full((64, 64, 3), 128, np.uint8)
    boxes = np.array([[10.0, 10.0, 30.0, 30.0]])
    p = store.save_frame("ev-1", rgb, boxes, 0, face_id="f1", external_image_id="alice")
    assert p.parent == tmp_path / "evidence" and store.get("ev-1") == p.read_bytes()
    now[0] = 2000.0
    store.save_frame("ev-2", rgb, boxes, None)
    assert store.get("missing") is None
    assert store.event_ids_of(external_image_id="alice") == ["ev-1"]
    assert store.event_ids_of(face_ids=["f1", "other"]) == ["ev-1"]
    assert store.delete_older_than(1500.0) == 1
    assert store.get("ev-1") is None and store.get("ev-2") is not None
    assert store.erase(["ev-2", "ev-2", "never"]) == 1
    assert list((tmp_path / "evidence").glob("*.jpg")) == []
    for bad in ("../x", "a/b", "", "x" * 200):
        with pytest.raises(InvalidParameter):
            store.get(bad)
    store.close()


@pytest.mark.slow
def test_clip_export_keeps_the_matched_face_and_writes_h264(analyzer: FaceAnalyzer, tmp_path: Path) -> None:
    clip = face("face_recognition/examples/short_hamilton_clip.mp4")
    ref = _largest_embedding(analyzer, _rgb("face_recognition/examples/lin-manuel-miranda.png"))
    out = tmp_path / "clip.mp4"
    rep = export_clip(
        analyzer,
        clip,
        out,
        offset_s=1.0,
        seconds=0.15,
        reference=ref,
        model=analyzer.model_name,
        max_side_px=480,
    )
    assert rep.frames >= 2 and rep.kept >= 1
    with av.open(str(out)) as c:
        vs = c.streams.video[0]
        assert vs.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(vs)]
    assert len(frames) == rep.frames
    # Every face the detector still finds in the written clip is the kept person.
    found = analyzer.analyze(frames[:1])
    for b in found:
        assert b.embeddings is not None
        for e in b.embeddings:
            assert float(cosine_to_similarity(analyzer.model_name, e @ ref)) >= 60.0
    with pytest.raises(InvalidParameter):
        export_clip(analyzer, clip, out, offset_s=1.0, seconds=0.0, reference=ref, model="dlib-resnet")


@pytest.mark.slow
def test_cli_export_needs_a_purpose_and_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from facestream.audit import AuditLog
    from facestream.cli import main
    from pipelines.sinks import EventStore

    home = tmp_path / "home"
    monkeypatch.setenv("FACESTREAM_HOME", str(home))
    monkeypatch.setenv("FACESTREAM_DEVICE", "cpu")
    for var in ("FACESTREAM_STORE", "FACESTREAM_AUDIT_LOG"):
        monkeypatch.delenv(var, raising=False)
    rec = {
        "EventId": "ev-1",
        "Revision": 1,
        "TrackId": "t1",
        "InputInformation": {
            "Stream": {"Name": "cam-1", "FrameOffsetInSeconds": 1.0, "ServerTimestamp": 5.0}
        },
        "FaceSearchResponse": [{"MatchedFaces": [{"Similarity": 99.0, "Face": {"FaceId": "f-1"}}]}],
    }
    es = EventStore(home / "events.sqlite3")
    es.upsert([rec])
    es.close()
    ev = EvidenceStore(home / "evidence")
    ev.save_frame("ev-1", np.full((48, 64, 3), 200, np.uint8), np.array([[8.0, 8.0, 30.0, 40.0]]), 0)
    ev.close()
    frame, clip = tmp_path / "out.jpg", tmp_path / "out.mp4"
    base = ["events", "export", "ev-1", "--frame", str(frame)]
    with pytest.raises(SystemExit) as exited:  # argparse: --purpose is required
        main(base)
    assert exited.value.code == 2 and "--purpose" in capsys.readouterr().err and not frame.exists()
    src = face("face_recognition/examples/short_hamilton_clip.mp4")
    args = ["--clip", str(clip), "--seconds", "0.1", "--source", str(src), "--purpose", "case 9", "--json"]
    assert main([*base, *args]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert frame.read_bytes()[:2] == b"\xff\xd8" and clip.stat().st_size > 0
    assert out["Clip"]["Frames"] >= 1 and out["Clip"]["MatchedFaceKnown"] is False
    assert main(["events", "export", "nope", "--frame", str(frame), "--purpose", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["events", "list", "--face-id", "f-1", "--purpose", "sar 3", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [e["EventId"] for e in listed["Events"]] == ["ev-1"]
    entries = [e for e in AuditLog(home / "audit.jsonl").entries() if e["operation"] == "ExportEventMedia"]
    assert len(entries) == 1 and entries[0]["purpose"] == "case 9"


def test_hamilton_preview_blurs_the_pianist(analyzer: FaceAnalyzer) -> None:
    from pipelines.evidence import SmallFaceFinder, redacted_preview

    with av.open(str(face("face_recognition/examples/short_hamilton_clip.mp4"))) as c:
        rgb = next(
            f.to_ndarray(format="rgb24") for f in c.decode(video=0) if f.time is not None and f.time >= 1.0
        )
    # Lin-Manuel Miranda sings on the right; the pianist's face, far left, is ~23 px: below the
    # stream's searchable minimum (28 px), so only the redaction minimum (12 px) is sure to see it.
    finder = SmallFaceFinder()
    found = finder.boxes(rgb)
    pianist = [b for b in found if b[2] < 160]
    assert len(pianist) == 1
    px1, py1, px2, py2 = pianist[0]
    assert px2 - px1 < 28
    stream = analyzer.detect([rgb], ["hamilton-preview"])[0]
    jpeg = redacted_preview(rgb, stream.boxes, finder, max_side_px=640)
    out = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    assert out.shape == rgb.shape
    # nothing face-like is left where the pianist (or anyone) was ...
    assert all(_iou(b, a) < 0.1 for b in finder.boxes(out) for a in found)
    # ... because his face was blurred, not just recompressed
    y1, y2, x1, x2 = int(py1), int(py2), int(px1), int(px2)
    before = rgb[y1:y2, x1:x2].astype(np.float32)
    after = out[y1:y2, x1:x2].astype(np.float32)
    assert np.abs(np.diff(after, axis=1)).mean() < 0.6 * np.abs(np.diff(before, axis=1)).mean()
