"""EyesOpen / MouthOpen (DetectFaces Attributes=["ALL"]) from the 68-point-derived landmarks of
the real analyzer, on labelled stills of the shared data: a closed-eyes photo, an open-eyes
one, a surprised face (mouth wide open) and a closed-mouth portrait."""

from __future__ import annotations

import pytest

from facestream.imageio import load_image_file
from facestream.rekognition import eyes_mouth_open
from tests.helpers import face

REACTION = "insightface/cpp-package/inspireface/test_res/data"
CASES = [
    # (image, eyes open?, mouth open?) - None: not labelled here
    (f"{REACTION}/reaction/close_eyes.jpeg", False, None),
    (f"{REACTION}/reaction/open_eyes.png", True, None),
    ("face-api.js/examples/images/surprised.jpg", True, True),
    (f"{REACTION}/emotion/sad.png", True, False),
    ("openface/images/examples/carell.jpg", True, False),
]


@pytest.fixture(scope="module")
def analyzer():  # type: ignore[no-untyped-def]
    from models.analyzer import FaceAnalyzer

    return FaceAnalyzer()


@pytest.mark.parametrize(("rel", "eyes", "mouth"), CASES)
def test_open_or_closed_from_landmarks(analyzer, rel: str, eyes: bool, mouth: bool | None) -> None:  # type: ignore[no-untyped-def]
    image = load_image_file(face(rel))
    batch = analyzer.detect([image.rgb])[0].largest_first()
    assert len(batch) >= 1
    points = analyzer.landmarks_all(image.rgb, batch)[0]
    got = eyes_mouth_open(points)
    assert got["EyesOpen"]["Value"] is eyes, got
    assert got["EyesOpen"]["Confidence"] >= 80, got  # these are clear cases
    if mouth is not None:
        assert got["MouthOpen"]["Value"] is mouth, got
        assert got["MouthOpen"]["Confidence"] >= 80, got
