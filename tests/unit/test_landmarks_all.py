"""Attributes=["ALL"]: Rekognition's 30 landmark types in FaceDetail, and the dlib start boxes
(no data, no models: the analyzer is a stub)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from facestream.imageio import LoadedImage
from facestream.operations import FaceOperations
from facestream.rekognition import face_detail
from facestream.types import ALL_LANDMARK_TYPES, LANDMARK_TYPES, FaceBatch
from models.landmarks import REKOGNITION_FROM_68, dlib_start_boxes, mtcnn_face_features

#: a frontal MTCNN face: box 100 x 125 px, eyes, nose tip, mouth corners
BOX = np.array([[100.0, 100.0, 200.0, 225.0]], np.float32)
POINTS = np.array([[[128, 150], [172, 150], [150, 175], [132, 200], [168, 200]]], np.float32)


def _batch(n: int = 1) -> FaceBatch:
    return FaceBatch(
        image_width=400,
        image_height=300,
        boxes=np.repeat(BOX, n, axis=0),
        landmarks=np.repeat(POINTS, n, axis=0),
        scores=np.full(n, 0.99, np.float32),
        brightness=np.full(n, 50.0, np.float32),
        sharpness=np.full(n, 50.0, np.float32),
        pose=np.zeros((n, 3), np.float32),
    )


class StubAnalyzer:
    """Detects one fixed face; records the landmarks_all calls."""

    model_name = "dlib-resnet"

    def __init__(self) -> None:
        self.all_calls = 0

    def detect(self, images: list[np.ndarray]) -> list[FaceBatch]:
        return [_batch() for _ in images]

    def analyze(self, images: list[np.ndarray]) -> list[FaceBatch]:
        raise NotImplementedError

    def landmarks_all(self, image: np.ndarray, batch: FaceBatch) -> np.ndarray:
        self.all_calls += 1
        return np.tile(np.arange(30, dtype=np.float32)[:, None], (len(batch), 1, 2))


def _ops() -> tuple[FaceOperations, StubAnalyzer]:
    stub = StubAnalyzer()
    store: Any = None  # detect_faces touches neither the store nor the audit log
    return FaceOperations(stub, store, store), stub


IMAGE = LoadedImage(rgb=np.zeros((300, 400, 3), np.uint8), sha256="0" * 64, source_format="PNG")


@pytest.mark.parametrize(
    ("attributes", "types", "calls"),
    [
        (None, LANDMARK_TYPES, 0),
        (["DEFAULT"], LANDMARK_TYPES, 0),
        (["ALL"], ALL_LANDMARK_TYPES, 1),
        (["DEFAULT", "ALL"], ALL_LANDMARK_TYPES, 1),
    ],
)
def test_detect_faces_landmarks_by_attributes(
    attributes: list[str] | None, types: tuple[str, ...], calls: int
) -> None:
    ops, stub = _ops()
    out = ops.detect_faces(IMAGE, attributes=attributes)
    (detail,) = out["FaceDetails"]
    assert [lm["Type"] for lm in detail["Landmarks"]] == list(types)
    assert stub.all_calls == calls
    if calls:  # ratios of the image size, in ALL_LANDMARK_TYPES order
        assert detail["Landmarks"][3] == {"Type": "mouthLeft", "X": 3 / 400, "Y": 3 / 300}


def test_face_detail_default_keeps_the_five() -> None:
    d = face_detail(_batch(), 0)
    assert [lm["Type"] for lm in d["Landmarks"]] == list(LANDMARK_TYPES)
    assert d["Landmarks"][0]["X"] == round(128 / 400, 6)


def test_all_types_are_rekognitions_thirty() -> None:
    assert len(ALL_LANDMARK_TYPES) == len(set(ALL_LANDMARK_TYPES)) == 30
    assert ALL_LANDMARK_TYPES[:5] == LANDMARK_TYPES
    assert set(REKOGNITION_FROM_68) == set(ALL_LANDMARK_TYPES)
    assert all(0 <= i < 68 for idx in REKOGNITION_FROM_68.values() for i in idx)


def test_dlib_start_boxes() -> None:
    assert dlib_start_boxes(np.zeros((0, 4)), np.zeros((0, 5, 2))).shape == (0, 4)
    feats = mtcnn_face_features(BOX, POINTS)
    assert feats.shape == (1, 12) and feats[0, 0] == 1.0 and feats[0, 1] == pytest.approx(1.25)
    (x1, y1, x2, y2) = dlib_start_boxes(BOX, POINTS)[0]
    w, h = x2 - x1, y2 - y1
    # dlib's HOG boxes are square (MTCNN's are taller than wide) around the eyes-mouth region
    assert 0.7 * 100 < w < 1.4 * 100 and abs(w - h) < 0.15 * w
    assert x1 < 128 and x2 > 172 and y1 < 150 and y2 > 200
    # translation and scale equivariant
    moved = dlib_start_boxes(BOX * 2 + 10, POINTS * 2 + 10)[0]
    np.testing.assert_allclose(moved, np.array([x1, y1, x2, y2]) * 2 + 10, rtol=1e-4, atol=1e-3)
