"""The fast per-stream detector (models/fastdetect.py) on real frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facestream.config import DetectorConfig, StreamDetectConfig
from facestream.imageio import load_image_file
from models.detector import MtcnnDetector
from models.fastdetect import StreamDetector, pyramid_scales
from tests.helpers import face


@pytest.fixture(scope="module")
def base() -> MtcnnDetector:
    return MtcnnDetector(DetectorConfig(max_side_px=None))


def _fast(base: MtcnnDetector, **kw: object) -> StreamDetector:
    return StreamDetector(base.mtcnn, DetectorConfig(stream=StreamDetectConfig(**kw)), torch.device("cpu"))


def test_pyramid_scales_from_min_face_and_cap() -> None:
    s = pyramid_scales(480, 640, 20, 0.709)
    assert s[0] == pytest.approx(0.6) and min(480, 640) * s[-1] >= 12
    assert len(pyramid_scales(480, 640, 40, 0.709)) < len(s)  # bigger faces: fewer levels
    assert max(pyramid_scales(480, 640, 8, 0.709)) <= 1.0  # capped: no upsampling


def test_motion_gate_k_refresh_and_state_miss(base: MtcnnDetector) -> None:
    img = load_image_file(face("face_recognition/examples/two_people.jpg")).rgb
    fast = _fast(base, detect_every=3, motion_threshold=1.0)
    first = fast.detect([img], ["a"])[0]
    assert len(first) == 2 and fast.stats.full == 1 and fast.stats.state_misses == 1
    again = fast.detect([img], ["a"])[0]
    assert fast.stats.reused == 1 and again is first  # unchanged frame: previous faces reused
    fast.detect([img], ["a"])
    assert fast.stats.reused == 2 and fast.stats.full == 1
    fast.detect([img], ["a"])
    assert fast.stats.full == 2  # k=3: a full detection at least every 3 frames
    fast.detect([img], ["b"])
    assert fast.stats.state_misses == 2 and fast.stats.full == 3  # unknown stream: full detection
    moved = np.roll(img, 24, axis=1)  # 24 px: ~15% of these faces, well beyond regression noise
    out = fast.detect([moved], ["a"])[0]
    assert fast.stats.refined == 1 and len(out) == 2  # changed frame between full ones: refined
    shift = out.boxes[:, 0].mean() - first.boxes[:, 0].mean()
    assert 16 < shift < 32  # the refined boxes followed the faces


@pytest.mark.parametrize(
    "rel", ["dlib/examples/faces/2007_007763.jpg", "face-api.js/examples/images/bbt4.jpg"]
)
def test_recall_equals_mtcnn_on_real_frames(base: MtcnnDetector, rel: str) -> None:
    img = load_image_file(face(rel)).rgb
    b = base.detect([img])[0]
    f = _fast(base).detect([img], ["s"])[0]
    assert len(f) == len(b) > 0
    centres = (f.boxes[:, :2] + f.boxes[:, 2:]) / 2
    for bx in b.boxes:
        inside = (
            (centres[:, 0] > bx[0])
            & (centres[:, 0] < bx[2])
            & (centres[:, 1] > bx[1])
            & (centres[:, 1] < bx[3])
        )
        assert inside.any()


def test_mtcnn_mode_is_facenet_pytorch() -> None:
    from facenet_pytorch import MTCNN

    from facestream.config import AnalyzerConfig, DeviceConfig
    from models.analyzer import FaceAnalyzer

    img = load_image_file(face("face_recognition/examples/two_people.jpg")).rgb
    cfg = AnalyzerConfig(
        device=DeviceConfig(device="cpu"),
        detector=DetectorConfig(max_side_px=None, stream=StreamDetectConfig(mode="mtcnn")),
    )
    ours = FaceAnalyzer(cfg).detect_raw([img], ["cam"])[0]
    boxes, probs = MTCNN(keep_all=True, device="cpu").detect(img)
    ref = np.asarray(boxes, np.float32)[np.asarray(probs) >= 0.9]
    order = np.argsort(-np.asarray(probs)[np.asarray(probs) >= 0.9])
    np.testing.assert_allclose(ours.boxes, ref[order], atol=1e-3)
