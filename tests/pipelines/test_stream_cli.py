"""``facestream stream`` as a real subprocess: refusals before anything starts, and the whole
path on the Hamilton clip (its own local Ray, Serve deployment, Milvus Lite store actor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import face, run_cli

pytestmark = pytest.mark.slow  # each call starts the CLI in a subprocess

CLIP = "face_recognition/examples/short_hamilton_clip.mp4"


def run(args: list[str], home: Path, *, status: int, media: Path | None = None) -> tuple[list[dict], str]:
    env = {"FACESTREAM_MEDIA_DIRS": str(media)} if media is not None else None
    code, lines, err = run_cli(args, home, env=env)
    assert code == status, (code, lines, err[-3000:])
    return lines, err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--purpose"),  # argparse: required
        (["--purpose", "  "], "purpose"),
        (["--purpose", "x", "--threshold", "120"], "threshold must be in [0, 100]"),
    ],
)
def test_stream_refuses_without_purpose_or_with_bad_values(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    _, err = run(
        ["stream", "clip.mp4", "--collection", "c", "--events", "e.jsonl", *extra], tmp_path, status=2
    )
    assert message in err


@pytest.mark.parametrize("source", ["ftp://cam.example/x", "concat:a.mp4|b.mp4", "gopher://h/x"])
def test_stream_refuses_sources_outside_the_allowlist(tmp_path: Path, source: str) -> None:
    _, err = run(
        ["stream", source, "--collection", "c", "--events", "e", "--purpose", "p"], tmp_path, status=2
    )
    assert "not allowed" in err


def test_stream_reads_a_file_the_operator_names_and_always_leaves_the_events_file(tmp_path: Path) -> None:
    """A file named on the command line is the operator's choice: read although it lies outside
    the media directories (the API keeps that rule for remote callers). With nothing to match,
    the events file is still there, empty."""
    clip = face(CLIP)
    run(["collections", "create", "nobody-here", "--json"], tmp_path, status=0)
    events = tmp_path / "out" / "events.jsonl"
    lines, _ = run(
        [
            "stream",
            str(clip),
            "--collection",
            "nobody-here",
            "--events",
            str(events),
            "--purpose",
            "case 2026-8",
            "--fps",
            "1",
            "--json",
        ],
        tmp_path,
        status=0,
        media=tmp_path,
    )
    (summary,) = lines
    assert summary["Status"] == "STOPPED" and summary["Events"] == 0, summary
    assert events.is_file() and events.read_text() == ""


def test_stream_credentials_never_echoed(tmp_path: Path) -> None:
    _, err = run(
        ["stream", "ftp://bob:pa55word-x@cam/x", "--collection", "c", "--events", "e", "--purpose", "p"],
        tmp_path,
        status=2,
    )
    assert "pa55word-x" not in err


def test_stream_file_writes_lin_manuel_match_records(tmp_path: Path) -> None:
    clip = face(CLIP)
    ex = clip.parent
    run(["collections", "create", "hamilton", "--json"], tmp_path, status=0)
    run(
        ["index", "hamilton", str(ex / "lin-manuel-miranda.png"), str(ex / "alex-lacamoire.png"), "--json"],
        tmp_path,
        status=0,
    )
    events = tmp_path / "events.jsonl"
    lines, _ = run(
        [
            "stream",
            str(clip),
            "--collection",
            "hamilton",
            "--events",
            str(events),
            "--purpose",
            "case 2026-7",
            "--fps",
            "5",
            "--json",
        ],
        tmp_path,
        status=0,
        media=ex,
    )
    (summary,) = lines
    assert summary["Status"] == "STOPPED" and summary["StatusMessage"] == "end of file"
    assert summary["Counters"]["drops"] == {}  # a file is replayed losslessly
    records = [json.loads(x) for x in events.read_text().splitlines()]
    assert summary["Events"] == len(records) > 0
    lin = [
        r
        for r in records
        if r["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"]["ExternalImageId"] == "lin-manuel-miranda"
    ]
    assert lin and all(r["FaceSearchResponse"][0]["MatchedFaces"][0]["Similarity"] >= 80 for r in lin)
    offsets = [r["InputInformation"]["Stream"]["FrameOffsetInSeconds"] for r in lin]
    assert all(0.55 <= t <= 1.65 or 3.45 <= t <= 8.15 for t in offsets), offsets
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    ops = [e["operation"] for e in audit]
    assert "StartStreamProcessor" in ops and ops.count("StreamFaceMatch") == len(records)
    assert all(e["purpose"] == "case 2026-7" for e in audit if e["operation"] == "StreamFaceMatch")
