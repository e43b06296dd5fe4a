"""``facestream video search|detect`` as a real subprocess on the hamilton clip (Milvus Lite,
PyAV, the analyser in the CLI's own process): one JSON object per video, a corrupt video
answered FAILED with exit status 2 while the others are answered, purpose required."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facestream.audit import AuditLog
from tests.helpers import face, run_cli

pytestmark = pytest.mark.slow  # each call starts the CLI in a subprocess

EX = "face_recognition/examples"
CLIP = f"{EX}/short_hamilton_clip.mp4"


def test_video_search_needs_a_purpose_and_valid_values(tmp_path: Path) -> None:
    code, _, err = run_cli(["video", "search", "x.mp4", "--collection", "c", "--json"], tmp_path)
    assert code == 2 and "--purpose" in err
    code, lines, _ = run_cli(
        ["video", "search", "x.mp4", "--collection", "c", "--purpose", "p", "--fps", "0", "--json"], tmp_path
    )
    assert code == 2 and "--fps" in lines[0]["error"]["message"]


def test_video_search_and_detect_on_the_hamilton_clip(tmp_path: Path) -> None:
    clip = str(face(CLIP))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(20000))
    assert run_cli(["collections", "create", "lin", "--json"], tmp_path)[0] == 0
    code, _, err = run_cli(["index", "lin", str(face(f"{EX}/lin-manuel-miranda.png")), "--json"], tmp_path)
    assert code == 0, err[-2000:]

    code, lines, err = run_cli(
        ["video", "search", clip, str(corrupt), "--collection", "lin", "--purpose", "case 17", "--json"],
        tmp_path,
    )
    assert code == 2, err[-2000:]
    good, bad = lines
    assert set(good) == {"video", "JobStatus", "VideoMetadata", "Persons"} and good["video"] == clip
    assert good["JobStatus"] == "SUCCEEDED" and good["VideoMetadata"]["Codec"] == "h264"
    stamps = [p["Timestamp"] for p in good["Persons"]]
    assert stamps and all(550 <= t <= 1650 or 3450 <= t <= 8150 for t in stamps), stamps
    assert {p["FaceMatches"][0]["Face"]["ExternalImageId"] for p in good["Persons"]} == {"lin-manuel-miranda"}
    assert bad["video"] == str(corrupt) and bad["JobStatus"] == "FAILED"
    assert "cannot open video" in bad["StatusMessage"] and bad["error"]["code"]

    code, lines, err = run_cli(["video", "detect", clip, "--fps", "2", "--json"], tmp_path)
    assert code == 0, err[-2000:]
    (det,) = lines
    assert det["JobStatus"] == "SUCCEEDED" and len(det["Faces"]) >= 25
    first = det["Faces"][0]
    assert first["Timestamp"] == 852 and {"BoundingBox", "Confidence", "Landmarks", "Pose"} <= set(
        first["Face"]
    )

    audit = AuditLog(tmp_path / "audit.jsonl")
    assert len(audit.query(operation="VideoFaceMatch")) == 2  # one per person matched
    assert [e["purpose"] for e in audit.query(operation="StartFaceSearch")] == ["case 17"]
