"""dlib-resnet chips are dlib's own: ``align_faces`` with the dlib5 template cuts the pixels
``dlib.get_face_chip`` cuts (similarity fitted in image space, dlib's rectangle convention, its
``pyramid_down<2>`` levels for large faces), on shared photos at their own resolution."""

from __future__ import annotations

import numpy as np
import pytest

import models.embedders  # noqa: F401  (first: models.landmarks and models.embedders import each other)
from facestream.imageio import load_image_file
from models.align import _dlib_pyramid_down, align_faces
from models.embedders.dlib_resnet import DLIB_CHIP
from models.landmarks import default_shape_predictor_path
from tests.helpers import face

dlib = pytest.importorskip("dlib")

#: small faces (sampled directly), mid-size and large faces (one and several pyramid levels)
PHOTOS = (
    "face_recognition/examples/two_people.jpg",
    "face_recognition/tests/test_images/obama.jpg",
    "deepface/tests/unit/dataset/img1.jpg",
    "CompreFace/embedding-calculator/sample_images/001_A.jpg",
)


def test_pyramid_down_matches_dlib() -> None:
    rng = np.random.default_rng(0)
    for h, w in ((20, 20), (21, 38), (101, 64)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = np.asarray(dlib.pyramid_down(2)(img))
        np.testing.assert_array_equal(_dlib_pyramid_down(img), ref)


@pytest.mark.parametrize("rel", PHOTOS)
def test_chips_are_dlibs_get_face_chip(rel: str) -> None:
    rgb = load_image_file(face(rel)).rgb
    detector = dlib.get_frontal_face_detector()
    # dlib's 5-point predictor on dlib's own boxes: the same points for both chip cutters
    predictor = dlib.shape_predictor(str(default_shape_predictor_path()))
    small = 1.0 if max(rgb.shape[:2]) <= 2000 else 2000 / max(rgb.shape[:2])
    view = rgb if small == 1.0 else rgb[:: round(1 / small), :: round(1 / small)]
    rects = detector(np.ascontiguousarray(view), 0)
    assert len(rects) >= 1
    k = round(1 / small)
    for r in rects:
        rect = dlib.rectangle(r.left() * k, r.top() * k, r.right() * k, r.bottom() * k)
        shape = predictor(rgb, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        ours = align_faces(rgb, pts[None], DLIB_CHIP)[0].permute(1, 2, 0).numpy()
        ref = np.asarray(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
        diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
        # float rounding can move a truncated value by one grey level, nothing more
        assert diff.max() <= 1 and diff.mean() < 0.01, (rel, diff.max(), diff.mean())
