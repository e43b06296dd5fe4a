"""The `facestream` console script, run as a real subprocess: its --json output is a contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import face, run_cli

pytestmark = pytest.mark.slow

OBAMA = "face_recognition/tests/test_images/obama.jpg"
TWO = "face_recognition/examples/two_people.jpg"


def run(args: list[str], home: Path, check_status: int | None = 0) -> tuple[int, list[dict], str]:
    code, lines, err = run_cli(args, home)
    if check_status is not None:
        assert code == check_status, (code, lines, err[-3000:])
    return code, lines, err


def test_detect_json_contract(tmp_path: Path) -> None:
    _, lines, _ = run(["detect", str(face(OBAMA)), str(face(TWO)), "--json"], tmp_path)
    assert [len(line["FaceDetails"]) for line in lines] == [1, 2]
    fd = lines[0]["FaceDetails"][0]
    assert set(fd) >= {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    bb = fd["BoundingBox"]
    assert all(0.0 <= bb[k] <= 1.0 for k in ("Width", "Height", "Left", "Top"))
    assert 90 <= fd["Confidence"] <= 100
    assert [lm["Type"] for lm in fd["Landmarks"]] == [
        "eyeLeft",
        "eyeRight",
        "nose",
        "mouthLeft",
        "mouthRight",
    ]
    assert set(fd["Pose"]) == {"Yaw", "Pitch", "Roll"} and set(fd["Quality"]) == {"Brightness", "Sharpness"}
    _, lines, _ = run(["detect", str(face(TWO)), "--json", "--max-faces", "1"], tmp_path)
    assert len(lines[0]["FaceDetails"]) == 1


def test_bad_inputs_exit_2_and_others_still_answered(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a jpeg\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "trunc.jpg"
    data = face(OBAMA).read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    huge = tmp_path / "huge.png"
    from PIL import Image

    Image.new("1", (9000, 9000)).save(huge)
    args = [
        "detect",
        str(tmp_path / "missing.jpg"),
        str(text),
        str(empty),
        str(truncated),
        str(huge),
        str(face(OBAMA)),
        "--json",
    ]
    _, lines, _ = run(args, tmp_path, check_status=2)
    by_image = {line["image"]: line for line in lines}
    assert by_image[str(face(OBAMA))]["FaceDetails"]
    codes = {Path(k).name: v["error"]["code"] for k, v in by_image.items() if "error" in v}
    assert codes == {
        "missing.jpg": "FileNotFoundException",
        "notes.jpg": "InvalidImageFormatException",
        "empty.png": "InvalidImageFormatException",
        "trunc.jpg": "InvalidImageFormatException",
        "huge.png": "ImageTooLargeException",
    }
    assert all(v["error"]["message"] for v in by_image.values() if "error" in v)


def test_embed_and_compare(tmp_path: Path) -> None:
    _, lines, _ = run(["embed", str(face(TWO)), "--json"], tmp_path)
    faces = lines[0]["faces"]
    assert lines[0]["model"] == "dlib-resnet" and len(faces) == 2
    areas = [f["BoundingBox"]["Width"] * f["BoundingBox"]["Height"] for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert len(faces[0]["Embedding"]) == 128
    assert abs(sum(v * v for v in faces[0]["Embedding"]) - 1.0) < 1e-3

    # face_recognition's own acceptance pairs.
    for other, same in [("obama2.jpg", True), ("obama3.jpg", True), ("biden.jpg", False)]:
        _, lines, _ = run(
            ["compare", str(face(OBAMA)), str(face(f"face_recognition/tests/test_images/{other}")), "--json"],
            tmp_path,
        )
        out = lines[0]
        assert bool(out["FaceMatches"]) is same, (other, out)
        assert len(out["FaceMatches"]) + len(out["UnmatchedFaces"]) == 1
        if same:
            assert out["FaceMatches"][0]["Similarity"] >= 80


def test_collection_lifecycle_index_search(tmp_path: Path) -> None:
    run(["collections", "create", "people", "--json"], tmp_path)
    _, lines, _ = run(["collections", "list", "--json"], tmp_path)
    assert lines[0]["CollectionIds"] == ["people"] and lines[0]["FaceModelVersions"] == ["dlib-resnet"]
    _, lines, _ = run(["collections", "create", "people", "--json"], tmp_path, check_status=2)
    assert lines[0]["error"]["code"] == "ResourceAlreadyExistsException"

    obama2 = face("face_recognition/tests/test_images/obama2.jpg")
    biden = face("face_recognition/tests/test_images/biden.jpg")
    _, lines, _ = run(["index", "people", str(obama2), "--external-id", "barack-obama", "--json"], tmp_path)
    obama_face = lines[0]["FaceRecords"][0]["Face"]
    assert obama_face["ExternalImageId"] == "barack-obama" and len(obama_face["FaceId"]) == 36
    run(["index", "people", str(biden), "--json"], tmp_path)
    _, lines, _ = run(["collections", "describe", "people", "--json"], tmp_path)
    assert lines[0]["FaceCount"] == 2

    _, lines, _ = run(["search", "people", str(face(OBAMA)), "--purpose", "case 42", "--json"], tmp_path)
    matches = lines[0]["FaceMatches"]
    assert [m["Face"]["ExternalImageId"] for m in matches] == ["barack-obama"]
    assert matches[0]["Similarity"] >= 80

    # No purpose, empty purpose, unknown collection: refused with status 2, nothing searched.
    run(["search", "people", str(face(OBAMA)), "--json"], tmp_path, check_status=2)
    _, lines, _ = run(
        ["search", "people", str(face(OBAMA)), "--purpose", " ", "--json"], tmp_path, check_status=2
    )
    assert lines[0]["error"]["code"] == "PurposeRequiredException"
    _, lines, _ = run(
        ["search", "nobody", str(face(OBAMA)), "--purpose", "x", "--json"], tmp_path, check_status=2
    )
    assert lines[0]["error"]["code"] == "ResourceNotFoundException"
    _, lines, _ = run(["index", "nobody", str(obama2), "--json"], tmp_path, check_status=2)
    assert lines[0]["error"]["code"] == "ResourceNotFoundException"

    _, lines, _ = run(["faces", "list", "people", "--json"], tmp_path)
    assert len(lines[0]["Faces"]) == 2
    _, lines, _ = run(["faces", "delete", "people", obama_face["FaceId"], "--json"], tmp_path)
    assert lines[0]["DeletedFaces"] == [obama_face["FaceId"]]
    _, lines, _ = run(["search", "people", str(face(OBAMA)), "--purpose", "case 42", "--json"], tmp_path)
    assert lines[0]["FaceMatches"] == []

    # The audit trail holds the searches with their purpose, and no image bytes.
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    searches = [e for e in audit if e["operation"] == "SearchFacesByImage"]
    assert [e["purpose"] for e in searches] == ["case 42", "case 42"]
    assert all(len(e["inputs"]["image_sha256"]) == 64 for e in searches)
    run(["collections", "delete", "people", "--json"], tmp_path)
    _, lines, _ = run(["collections", "list", "--json"], tmp_path)
    assert lines[0]["CollectionIds"] == []


def test_demo_runs_and_finds_the_astronaut(tmp_path: Path) -> None:
    # The demo streams a generated clip (astronaut, then a cat) through a stream processor.
    _, lines, _ = run(["demo", "--purpose", "test", "--json"], tmp_path)
    assert [line["ExternalImageId"] for line in lines if line.get("event") == "indexed"] == ["eileen-collins"]
    matches = [line for line in lines if line.get("event") == "match"]
    assert matches and {m["ExternalImageId"] for m in matches} == {"eileen-collins"}, lines
    assert all(m["Similarity"] >= 80 for m in matches)
    assert all(m["FrameOffsetInSeconds"] < 3.0 for m in matches)  # never during the cat
    (stream,) = [line for line in lines if line.get("event") == "stream"]
    assert stream["Status"] == "STOPPED"
    (audit,) = [line for line in lines if line.get("event") == "audit"]
    assert audit["ok"] and audit["entries"] >= 3
    # The enrolled face's thumbnail is kept for the reviewers' console (a real JPEG).
    (thumb,) = (tmp_path / "thumbnails" / "demo-watchlist").glob("*.jpg")
    assert thumb.read_bytes()[:3] == b"\xff\xd8\xff"
    run(["demo", "--json"], tmp_path, check_status=2)  # purpose is required
