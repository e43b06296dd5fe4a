"""The kernel's Rekognition shapes: UUID ImageIds, numeric model versions, ARNs, the wire
filter that drops facestream's own fields, and the landmark geometry of EyesOpen/MouthOpen."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from pydantic import ValidationError

from facestream.rekognition import (
    ArnConfig,
    eyes_mouth_open,
    model_version,
    rekognition_wire,
    wire_image_id,
)
from facestream.types import ALL_LANDMARK_TYPES

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_image_ids_are_stable_uuids() -> None:
    a, b = hashlib.sha256(b"one image").hexdigest(), hashlib.sha256(b"another").hexdigest()
    assert UUID.match(wire_image_id(a)) and wire_image_id(a) == wire_image_id(a) != wire_image_id(b)
    assert UUID.match(wire_image_id("not-a-sha"))


def test_model_versions_and_arns() -> None:
    assert (model_version("dlib-resnet"), model_version("facenet-vggface2"), model_version("x")) == (
        "1.0",
        "2.0",
        "0.0",
    )
    assert ArnConfig().collection("c.1") == "arn:aws:rekognition:us-east-1:000000000000:collection/c.1"
    cfg = ArnConfig(partition="aws-eu", region="eu-central-1", account="123456789012")
    assert cfg.collection("w") == "arn:aws-eu:rekognition:eu-central-1:123456789012:collection/w"
    for bad in ({"account": "12"}, {"partition": "AWS"}, {"region": "eu central"}, {"other": 1}):
        with pytest.raises(ValidationError):
            ArnConfig.model_validate(bad)


def test_wire_drops_facestream_fields_at_any_depth() -> None:
    answer = {
        "FaceModelVersion": "1.0",
        "FacestreamFaceModel": "dlib-resnet",
        "Output": {"FacestreamSinks": ["jsonl"]},
        "FaceMatches": [{"Face": {"FaceId": "f", "FacestreamX": 1}}],
    }
    assert rekognition_wire(answer) == {
        "FaceModelVersion": "1.0",
        "Output": {},
        "FaceMatches": [{"Face": {"FaceId": "f"}}],
    }
    assert answer["FacestreamFaceModel"] == "dlib-resnet"  # the input is not changed


def _face(eye_gap: float, lip_gap: float) -> np.ndarray:
    """30 landmarks of a frontal face: eyes 30 px wide, mouth 50 px wide."""
    p = {t: (0.0, 0.0) for t in ALL_LANDMARK_TYPES}
    for side, x0 in (("left", 100.0), ("right", 160.0)):
        p[f"{side}EyeLeft"], p[f"{side}EyeRight"] = (x0, 100.0), (x0 + 30.0, 100.0)
        p[f"{side}EyeUp"], p[f"{side}EyeDown"] = (x0 + 15, 100 - eye_gap / 2), (x0 + 15, 100 + eye_gap / 2)
    p["mouthLeft"], p["mouthRight"] = (120.0, 200.0), (170.0, 200.0)
    p["mouthUp"], p["mouthDown"] = (145.0, 200 - lip_gap / 2), (145.0, 200 + lip_gap / 2)
    return np.array([p[t] for t in ALL_LANDMARK_TYPES], np.float32)


@pytest.mark.parametrize(
    ("eye_gap", "lip_gap", "eyes", "mouth", "eye_conf", "mouth_conf"),
    [
        (10.0, 15.0, True, False, 99.0, 86.75),  # ratios 0.33 (past the span) and 0.30
        (3.0, 40.0, False, True, 99.0, 99.0),  # 0.10 and 0.80
        (6.0, 22.5, False, False, 50.0, 50.0),  # on both cut-offs: no confidence either way
        (7.5, 25.0, True, True, 74.5, 62.25),  # 0.25: half the span; 0.5: a quarter of it
    ],
)
def test_eyes_and_mouth_by_geometry(
    eye_gap: float, lip_gap: float, eyes: bool, mouth: bool, eye_conf: float, mouth_conf: float
) -> None:
    got = eyes_mouth_open(_face(eye_gap, lip_gap))
    assert got["EyesOpen"] == {"Value": eyes, "Confidence": pytest.approx(eye_conf, abs=0.01)}
    assert got["MouthOpen"] == {"Value": mouth, "Confidence": pytest.approx(mouth_conf, abs=0.01)}
