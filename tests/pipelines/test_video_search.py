"""Recorded-video face search (issue 17): key-frame segments, Ray Data analysis, stitching at
cuts, Rekognition-shaped results, per-video failures, audit. Real PyAV on the hamilton clip,
real Ray Data actors, real Milvus Lite through the store actor.

The clip: Lin-Manuel Miranda is on screen about 0.8-1.4 s and 3.7-7.9 s from the start of
the file (first video frame at 0.852 s; key frames at 0.85, 2.85, 4.86, 6.29, 7.89, 9.89 s).
Windows get the same 0.25 s of slack as the stream tests (tests/pipelines/test_streams_e2e.py).
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facestream.audit import Actor, AuditLog
from facestream.config import AnalyzerConfig, DeviceConfig
from facestream.video_results import get_face_search, page
from pipelines.video_segments import VideoUnreadable, decode_segment, plan_segments, probe
from tests.helpers import face

CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
LIN_WINDOWS_MS = [(800 - 250, 1400 + 250), (3700 - 250, 7900 + 250)]
KEYFRAMES_S = [0.852, 2.854, 4.856, 6.291, 7.892]
SEARCHER = Actor("test:searcher", "searcher")


def _in_windows(ms: int) -> bool:
    return any(lo <= ms <= hi for lo, hi in LIN_WINDOWS_MS)


def test_segments_start_at_key_frames_and_sample_the_same_frames_as_one_pass() -> None:
    info = probe(str(face(CLIP)))
    assert (info.codec, info.width, info.height) == ("h264", 640, 360)
    assert abs(info.start_s - 0.852) < 0.01 and 9.9 < info.end_s < 10.1
    meta = info.metadata()
    assert set(meta) == {
        "Codec",
        "DurationMillis",
        "Format",
        "FrameRate",
        "FrameHeight",
        "FrameWidth",
        "ColorRange",
    }
    assert abs(meta["FrameRate"] - 29.97) < 0.01
    one = plan_segments(info, 100.0)
    many = plan_segments(info, 1.0)
    assert len(one) == 1 and len(many) == 5
    assert [round(s.start_s, 2) for s in many] == [round(k, 2) for k in KEYFRAMES_S]
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(many))
    whole = [f.t_s for f in decode_segment(one[0], 5.0)]
    parts = [f.t_s for s in many for f in decode_segment(s, 5.0)]
    assert parts == whole and len(whole) == 46  # the grid does not depend on the cuts
    assert all(0.15 < b - a < 0.25 for a, b in itertools.pairwise(whole))
    # non-reference skipping changes which frames are decoded, not which are kept
    assert [f.t_s for f in decode_segment(one[0], 5.0, skip_nonref=False)] == whole


def test_unreadable_videos_are_refused_with_a_reason(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(20000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(face(CLIP).read_bytes()[:30000])
    for p in (garbage, truncated, tmp_path / "missing.mp4"):
        with pytest.raises(VideoUnreadable, match="cannot open video"):
            probe(str(p))


def test_results_sort_and_page_like_rekognition() -> None:
    def pm(t: int, i: int) -> dict[str, Any]:
        return {"Timestamp": t, "Person": {"Index": i}, "FaceMatches": []}

    persons = [pm(300, 0), pm(100, 1), pm(200, 0)]
    by_time = get_face_search("SUCCEEDED", metadata=None, persons=persons)
    assert [p["Timestamp"] for p in by_time["Persons"]] == [100, 200, 300] and "NextToken" not in by_time
    by_index = get_face_search("SUCCEEDED", metadata=None, persons=persons, sort_by="INDEX")
    assert [(p["Person"]["Index"], p["Timestamp"]) for p in by_index["Persons"]] == [
        (0, 200),
        (0, 300),
        (1, 100),
    ]
    first, token = page(list(range(5)), 2, None)  # type: ignore[arg-type]
    second, token2 = page(list(range(5)), 2, token)  # type: ignore[arg-type]
    last, token3 = page(list(range(5)), 2, token2)  # type: ignore[arg-type]
    assert (first, second, last, token3) == ([0, 1], [2, 3], [4], None)


def _enrol(store: Any, collection: str, photos: list[str]) -> None:
    from facestream.imageio import load_image_file
    from facestream.store import FaceRecord
    from models.analyzer import FaceAnalyzer
    from pipelines.gallery import ensure_collection
    from pipelines.store_actor import call

    ensure_collection(store, collection, "dlib-resnet", fresh=True)
    analyzer = FaceAnalyzer(AnalyzerConfig(device=DeviceConfig(device="cpu")))
    records = []
    for n, name in enumerate(photos):
        img = load_image_file(str(face(f"face_recognition/examples/{name}")))
        fb = analyzer.analyze([img.rgb])[0].largest_first()
        assert fb.embeddings is not None and len(fb) >= 1
        records.append(
            FaceRecord(
                face_id=f"00000000-0000-4000-8000-{n:012d}",
                external_image_id=Path(name).stem,
                image_id=img.sha256,
                bounding_box=(0.1, 0.1, 0.5, 0.5),
                confidence=99.0,
                quality={"brightness": 50.0, "sharpness": 50.0},
                created_at_ms=int(time.time() * 1000),
                embedding=np.asarray(fb.embeddings[0], np.float32),
            )
        )
    call(store.add_faces.remote(collection, records, model="dlib-resnet"), 120)


@pytest.mark.slow
def test_ray_data_job_finds_lin_manuel_once_per_appearance_across_cuts(
    tmp_path: Path, ray_local: None
) -> None:
    """5 segments (cuts at 2.85, 4.86, 6.29, 7.89 s): his second appearance crosses two cuts
    and is still one person; a corrupt video in the batch fails alone, with its reason; a
    collection of other people matches nothing; one audit entry per job and per match."""
    import ray

    from pipelines.store_actor import RemoteFaceStore
    from pipelines.video_search import SearchSpec, VideoJob
    from pipelines.video_tracks import VideoAnalysisConfig

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(20000))
    clip = str(face(CLIP))
    store = RemoteFaceStore(str(tmp_path / "milvus.db"))
    actor = store.actor
    audit = AuditLog(tmp_path / "audit.jsonl")
    try:
        _enrol(actor, "lin", ["lin-manuel-miranda.png"])
        _enrol(actor, "others", ["obama.jpg", "biden.jpg"])
        analyzer = AnalyzerConfig(device=DeviceConfig(device="cpu", torch_threads=1))
        cfg = VideoAnalysisConfig(segment_s=1.0)

        def run(collection: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            out: list[dict[str, Any]] = []
            job = VideoJob(
                cfg,
                analyzer,
                search=SearchSpec(collection, "case 17"),
                store=store,
                audit=audit,
                actor=SEARCHER,
                use_ray=True,
                actors=2,
            )
            stats = job.run([clip, str(corrupt)], out.append)
            return stats, out

        stats, results = run("lin")
        assert stats["segments"] == 5 and stats["frames"] == 46 and stats["failed"] == 1
        by_video = {r["video"]: r for r in results}
        bad = by_video[str(corrupt)]
        assert bad["JobStatus"] == "FAILED" and "cannot open video" in bad["StatusMessage"]
        assert bad["Persons"] == []
        good = by_video[clip]
        assert good["JobStatus"] == "SUCCEEDED" and good["VideoMetadata"]["FrameWidth"] == 640
        persons = good["Persons"]
        assert persons, "Lin-Manuel was not found"
        stamps = [p["Timestamp"] for p in persons]
        assert stamps == sorted(stamps)  # SortBy TIMESTAMP by default
        outside = [t for t in stamps if not _in_windows(t)]
        assert not outside, f"reported outside his windows: {outside}"
        for lo, hi in LIN_WINDOWS_MS:
            assert any(lo <= t <= hi for t in stamps), f"nothing in {lo}-{hi} ms"
        for p in persons:
            (m,) = p["FaceMatches"]
            assert m["Face"]["ExternalImageId"] == "lin-manuel-miranda" and m["Similarity"] >= 80
            assert set(m["Face"]) == {"FaceId", "ExternalImageId", "BoundingBox", "Confidence", "ImageId"}
            assert p["Person"]["BoundingBox"] == p["Person"]["Face"]["BoundingBox"]
        indexes = {p["Person"]["Index"] for p in persons}
        assert indexes == {0, 1}, f"one person per appearance, got {indexes}"
        second = [p["Timestamp"] for p in persons if p["Person"]["Index"] == 1]
        assert min(second) < 4856 and max(second) > 6291  # on both sides of two cuts
        matches = audit.query(operation="VideoFaceMatch")
        assert len(matches) == 2 and all(e["purpose"] == "case 17" for e in matches)
        assert len(audit.query(operation="StartFaceSearch")) == 1

        stats, results = run("others")
        assert {r["video"]: r["Persons"] for r in results} == {clip: [], str(corrupt): []}
        assert len(audit.query(operation="VideoFaceMatch")) == 2  # no new match
        assert len(audit.query(operation="StartFaceSearch")) == 2
        assert audit.verify().ok
    finally:
        ray.kill(actor)


@pytest.mark.slow
def test_job_entry_point_writes_results_and_failures_and_a_rerun_skips_finished_videos(
    tmp_path: Path, ray_local: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m pipelines.video_search`` at 2 fps in ~4 s segments (cuts at 2.85 and 7.89 s)."""
    import json
    import shutil

    import ray

    from pipelines.store_actor import RemoteFaceStore
    from pipelines.video_search import main

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(face(CLIP), videos / "a.mp4")
    (videos / "b.mp4").write_bytes(os.urandom(20000))
    home, out = tmp_path / "home", tmp_path / "out"
    store = RemoteFaceStore(str(home / "milvus.db"))
    try:
        _enrol(store.actor, "lin", ["lin-manuel-miranda.png"])
        argv = [
            "--collection", "lin", "--source", str(videos), "--purpose", "case 17", "--out", str(out),
            "--home", str(home), "--device", "cpu", "--fps", "2", "--segment-s", "4",
        ]  # fmt: skip
        assert main(["--collection", "lin", "--source", str(videos), "--out", str(out)]) == 2  # no purpose
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert (summary["videos"], summary["failed"], summary["skipped"]) == (2, 1, 0)
        good = json.loads((out / "00000-a.json").read_text())
        assert good["JobStatus"] == "SUCCEEDED" and good["Persons"]
        # cut at 7.89 s (a scene cut: someone else where he stood) must not continue his person
        stamps = [p["Timestamp"] for p in good["Persons"]]
        assert all(_in_windows(t) for t in stamps), stamps
        persons = {p["Person"]["Index"] for p in good["Persons"]}
        bad = json.loads((out / "00001-b.json").read_text())
        assert bad["JobStatus"] == "FAILED" and "cannot open video" in bad["StatusMessage"]
        (failure,) = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
        assert failure["video"].endswith("b.mp4") and "cannot open video" in failure["error"]

        assert main(argv) == 0  # a restarted job: the finished video is not searched again
        summary = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert (summary["videos"], summary["skipped"], summary["segments"]) == (1, 1, 0)
        audit = AuditLog(home / "audit.jsonl")
        assert len(audit.query(operation="VideoFaceMatch")) == len(persons)  # one per match
    finally:
        ray.kill(store.actor)
