"""Detection, quality and alignment on real photographs (../shared/data/faces)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facestream.config import DetectorConfig
from facestream.imageio import load_image_file
from models.align import align_faces, similarity_transform
from models.detector import MtcnnDetector
from models.device import choose_placement
from models.embedders.base import ChipSpec
from models.quality import QualityFilter, brightness_sharpness, failure_reasons, passes, pose_from_landmarks
from tests.helpers import face


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    return MtcnnDetector()


# Counts the source projects' own tests assert (EXPECTED_FACES.tsv).
EXPECTED = [
    ("face_recognition/tests/test_images/obama.jpg", 1),
    ("face_recognition/tests/test_images/32bit.png", 1),
    ("face_recognition/examples/two_people.jpg", 2),
    ("face_recognition/examples/knn_examples/test/kit_with_rose.jpg", 2),
    ("deepface/tests/unit/dataset/img1.jpg", 1),
    ("deepface/tests/unit/dataset/couple.jpg", 2),
    ("dlib/examples/faces/2007_007763.jpg", 7),
    ("dlib/examples/faces/2008_002470.jpg", 6),
    ("dlib/examples/faces/2009_004587.jpg", 2),
    ("face-api.js/examples/images/bbt4.jpg", 6),
    ("openface/images/examples/longoria-cooper.jpg", 2),
    ("CompreFace/embedding-calculator/sample_images/016_8.jpg", 8),
    ("CompreFace/embedding-calculator/sample_images/017_0.jpg", 0),
    ("mtcnn/tests/images/no-faces.jpg", 0),
]


@pytest.mark.parametrize(("rel", "count"), EXPECTED, ids=[e[0].split("/")[-1] for e in EXPECTED])
def test_face_counts_match_source_projects(detector: MtcnnDetector, rel: str, count: int) -> None:
    det = detector.detect([load_image_file(face(rel)).rgb])[0]
    assert len(det) == count
    assert det.boxes.dtype == np.float32 and det.landmarks.shape == (count, 5, 2)


def test_obama_box_agrees_with_face_recognition(detector: MtcnnDetector) -> None:
    # face_recognition's CNN box (top, right, bottom, left) ~ (144, 608, 389, 363) ± 25.
    det = detector.detect([load_image_file(face("face_recognition/tests/test_images/obama.jpg")).rgb])[0]
    x1, y1, x2, y2 = det.boxes[0]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert abs(cx - (608 + 363) / 2) < 40 and abs(cy - (144 + 389) / 2) < 60


def test_crowd_photo_finds_many_faces(detector: MtcnnDetector) -> None:
    img = load_image_file(face("retinaface/tests/dataset/img3.jpg")).rgb
    small = MtcnnDetector(DetectorConfig(min_face_px=10, max_side_px=None))
    n_default = len(detector.detect([img])[0])
    n_small = len(small.detect([img])[0])
    assert n_default >= 30
    assert n_small >= n_default


def test_batch_of_mixed_sizes_keeps_order(detector: MtcnnDetector) -> None:
    a = load_image_file(face("dlib/examples/faces/2007_007763.jpg")).rgb
    b = load_image_file(face("face_recognition/examples/two_people.jpg")).rgb
    out = detector.detect([a, b, a])
    assert [len(d) for d in out] == [7, 2, 7]
    np.testing.assert_allclose(out[0].boxes, out[2].boxes, atol=1e-3)


def test_downscaled_detection_maps_boxes_back(detector: MtcnnDetector) -> None:
    img = load_image_file(face("deepface/tests/unit/dataset/img4.jpg")).rgb  # 2500 px wide
    full = MtcnnDetector(DetectorConfig(max_side_px=None)).detect([img])[0]
    fast = detector.detect([img])[0]
    assert len(full) == len(fast) == 1
    np.testing.assert_allclose(fast.boxes, full.boxes, atol=0.05 * (full.boxes[0, 2] - full.boxes[0, 0]))


def test_quality_and_pose_are_plausible(detector: MtcnnDetector) -> None:
    img = load_image_file(face("face_recognition/tests/test_images/obama.jpg")).rgb
    det = detector.detect([img])[0]
    bright, sharp = brightness_sharpness(img, det.boxes)
    pose = pose_from_landmarks(det.landmarks)
    assert 20 < bright[0] < 90
    assert sharp[0] > 40
    assert np.all(np.abs(pose[0]) < 25)  # a frontal portrait
    # Blurring the face lowers its sharpness score a lot.
    blurred = (
        torch.nn.functional.avg_pool2d(
            torch.from_numpy(img).permute(2, 0, 1).float()[None], 9, stride=1, padding=4
        )[0]
        .permute(1, 2, 0)
        .round()
        .to(torch.uint8)
        .numpy()
    )
    _, sharp_blur = brightness_sharpness(blurred, det.boxes)
    assert sharp_blur[0] < sharp[0] * 0.7


def test_pose_from_synthetic_landmarks() -> None:
    frontal = np.array([[[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]], np.float32)
    yaw, pitch, roll = pose_from_landmarks(frontal)[0]
    assert abs(yaw) < 1 and abs(roll) < 1 and abs(pitch) < 1
    turned = frontal.copy()
    turned[0, 2, 0] = 62  # nose toward the right eye
    assert pose_from_landmarks(turned)[0, 0] > 20
    theta = np.radians(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], np.float32)
    rolled = (frontal[0] - 50) @ rot.T + 50
    assert abs(pose_from_landmarks(rolled[None])[0, 2] - 30) < 0.5


QF = [
    (QualityFilter.NONE, 5, 0, 50, 80, []),
    (QualityFilter.LOW, 30, 10, 50, 0, []),
    (QualityFilter.MEDIUM, 30, 10, 50, 0, ["SMALL_BOUNDING_BOX", "LOW_SHARPNESS"]),
    (QualityFilter.HIGH, 100, 50, 5, 0, ["LOW_BRIGHTNESS"]),
    (QualityFilter.HIGH, 100, 50, 50, 50, ["EXTREME_POSE"]),
    (QualityFilter.AUTO, 100, 50, 50, 10, []),
]


@pytest.mark.parametrize(("level", "size", "sharp", "bright", "yaw", "reasons"), QF)
def test_quality_filter_levels(
    level: QualityFilter, size: float, sharp: float, bright: float, yaw: float, reasons: list[str]
) -> None:
    args = (np.array([size]), np.array([bright]), np.array([sharp]), np.array([[yaw, 0.0, 0.0]]))
    assert failure_reasons(level, *args)[0] == reasons
    assert bool(passes(level, *args)[0]) == (not reasons)


def test_similarity_transform_recovers_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    theta, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    rot = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    m = similarity_transform(src, src @ rot.T + t)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


@pytest.mark.parametrize("spread", [1.0, 6.0], ids=["near-chip-scale", "large-face-downscaled"])
def test_alignment_puts_landmarks_on_the_template(spread: float) -> None:
    # Bright dots at five landmark positions must land where the similarity transform says.
    template = np.array([[38, 52], [74, 52], [56, 72], [42, 92], [70, 92]], np.float32)
    base = np.array([[200, 150], [280, 160], [240, 200], [210, 250], [270, 255]], np.float64)
    lm = ((base - 200) * spread + 200 + 400 * (spread - 1)).astype(np.float32)
    h = int(lm[:, 1].max() + 200)
    w = int(lm[:, 0].max() + 200)
    m = similarity_transform(lm, template)
    expected = lm @ m[:, :2].T + m[:, 2]
    r = int(2 * spread)
    for (x, y), (u, v) in zip(lm, expected, strict=True):
        img = np.zeros((h, w, 3), np.uint8)
        img[int(y) - r : int(y) + r + 1, int(x) - r : int(x) + r + 1] = 255
        chip = align_faces(img, lm[None], ChipSpec(size=112, template=template))
        assert chip.shape == (1, 3, 112, 112) and chip.dtype == torch.uint8
        c = chip[0, 0].numpy().astype(np.float64)
        ys, xs = np.nonzero(c)
        wts = c[ys, xs]
        assert abs(np.sum(xs * wts) / wts.sum() - u) < 0.5
        assert abs(np.sum(ys * wts) / wts.sum() - v) < 0.5


def test_alignment_of_real_faces_is_upright() -> None:
    det = MtcnnDetector().detect(
        [img := load_image_file(face("face_recognition/examples/two_people.jpg")).rgb]
    )[0]
    template = np.array([[38, 52], [74, 52], [56, 72], [42, 92], [70, 92]], np.float32)
    chips = align_faces(img, det.landmarks, ChipSpec(size=112, template=template))
    redet = MtcnnDetector(DetectorConfig(min_confidence=0.5)).detect(
        [c.permute(1, 2, 0).numpy().copy() for c in chips]
    )
    for d in redet:
        assert len(d) >= 1
        assert abs(pose_from_landmarks(d.landmarks[:1])[0, 2]) < 5  # roll removed


def test_device_selection_logic() -> None:
    cpu = choose_placement("auto", "auto", cuda_available=False)
    assert cpu.device.type == "cpu" and cpu.precision == "fp32"
    gpu = choose_placement("auto", "auto", cuda_available=True, cuda_bf16_supported=True)
    assert gpu.device == torch.device("cuda:0") and gpu.precision == "bf16"
    old_gpu = choose_placement("cuda:1", "auto", cuda_available=True, cuda_bf16_supported=False)
    assert old_gpu.device == torch.device("cuda:1") and old_gpu.precision == "fp16"
    assert choose_placement("cpu", "bf16", cuda_available=False).precision == "bf16"
    from facestream.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="no CUDA GPU"):
        choose_placement("cuda", "auto", cuda_available=False)
    with pytest.raises(InvalidParameter, match="needs a CUDA device"):
        choose_placement("cpu", "fp16", cuda_available=False)
    with pytest.raises(InvalidParameter):
        choose_placement("tpu", "auto", cuda_available=False)
