"""Rekognition's QualityFilter on per-face measurements (numpy only): size, brightness, sharpness, pose.

The measurements come from :mod:`models.quality` (brightness and sharpness in torch) and
:func:`pose_from_landmarks` here; the filter itself needs no model, so the kernel's
operations apply it without loading torch.

Brightness is the mean luma (ITU-R BT.601) of the face box scaled to 0-100. Sharpness is
the variance of the Laplacian of the face resized to 64x64 grey, mapped to 0-100 by
``100 * (1 - exp(-var / 1000))`` (a crisp studio portrait reads ~60, a small or blurred
face < 15).
Pose is estimated from the five landmarks (no 3-D model): roll is the eye-line angle; yaw
as atan of the nose's horizontal offset from the eye midpoint over half the inter-ocular
distance; pitch from where the nose sits between the eye line and the mouth line. Good to
~10 degrees near frontal, which is what filtering needs.

QualityFilter cut-offs (a face must pass all of its level):

========  ===========  =========  ==========  ===========  =========
level     min side px  sharpness  brightness  abs yaw      abs pitch
========  ===========  =========  ==========  ===========  =========
NONE      -            -          -           -            -
LOW       20           5          5-98        <= 75        <= 60
AUTO      40           15         10-95       <= 60        <= 45
MEDIUM    40           15         10-95       <= 60        <= 45
HIGH      80           35         20-90       <= 35        <= 30
========  ===========  =========  ==========  ===========  =========

AUTO is Rekognition's "let the service choose" and is the same as MEDIUM here.

The minimum side is relative to the image, as Rekognition documents SMALL_BOUNDING_BOX
("no smaller than 40x40 pixels in an image with 1920x1080 pixels; images with dimensions
higher than 1920x1080 need a larger minimum face size proportionally"): the table's value
holds at 1920x1080 and scales with the image's linear size, ``sqrt(width * height /
(1920 * 1080))`` (orientation-free), so a 12-megapixel photo (4000x3000) needs 96 px at AUTO.
Smaller images scale it down too, but never below half the table's value (AUTO: 20 px, the
detector's own minimum): a 35 px face in an 800x600 photo is indexed. See :func:`min_side_px`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

# Where the nose sits between eye line (0) and mouth line (1) in a frontal face (MTCNN points).
_FRONTAL_NOSE_RATIO = 0.5


class QualityFilter(StrEnum):
    NONE = "NONE"
    AUTO = "AUTO"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


@dataclass(frozen=True)
class _Cutoffs:
    min_side_px: float
    min_sharpness: float
    brightness: tuple[float, float]
    max_abs_yaw: float
    max_abs_pitch: float


_CUTOFFS: dict[QualityFilter, _Cutoffs] = {
    QualityFilter.LOW: _Cutoffs(20, 5, (5, 98), 75, 60),
    QualityFilter.MEDIUM: _Cutoffs(40, 15, (10, 95), 60, 45),
    QualityFilter.AUTO: _Cutoffs(40, 15, (10, 95), 60, 45),
    QualityFilter.HIGH: _Cutoffs(80, 35, (20, 90), 35, 30),
}


def pose_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """``landmarks`` (n,5,2) px in MTCNN order -> (n,3) yaw, pitch, roll in degrees."""
    n = landmarks.shape[0]
    out = np.zeros((n, 3), np.float32)
    for i in range(n):
        le, re, nose, ml, mr = landmarks[i].astype(np.float64)
        d = re - le
        roll = math.degrees(math.atan2(d[1], d[0]))
        c, s = math.cos(math.radians(-roll)), math.sin(math.radians(-roll))
        rot = np.array([[c, -s], [s, c]])
        le_r, re_r, nose_r, ml_r, mr_r = (rot @ p for p in (le, re, nose, ml, mr))
        half_iod = max(abs(re_r[0] - le_r[0]) / 2.0, 1e-6)
        eye_mid = (le_r + re_r) / 2.0
        mouth_mid = (ml_r + mr_r) / 2.0
        # The nose tip stands about half an inter-ocular distance in front of the eyes, so its
        # image offset over the (foreshortened) half IOD is ~tan(yaw).
        yaw = math.degrees(math.atan((nose_r[0] - eye_mid[0]) / half_iod))
        span = max(mouth_mid[1] - eye_mid[1], 1e-6)
        ratio = (nose_r[1] - eye_mid[1]) / span
        pitch = math.degrees(math.asin(float(np.clip((ratio - _FRONTAL_NOSE_RATIO) * 2.0, -1, 1))))
        out[i] = (yaw, pitch, roll)
    return out


#: the image size at which the table's minimum side holds (Rekognition's reference)
REFERENCE_IMAGE_PX = (1920, 1080)
#: below the reference size the minimum side shrinks with the image, down to this share of it
_MIN_SIDE_FLOOR = 0.5


def min_side_px(level: QualityFilter, image_wh: tuple[int, int] | None = None) -> float:
    """Smallest face side (px) ``level`` accepts in an image of ``image_wh`` (width, height).

    None: the 1920x1080 reference (the table's value). 0 for NONE.
    """
    if level is QualityFilter.NONE:
        return 0.0
    base = _CUTOFFS[level].min_side_px
    if image_wh is None:
        return float(base)
    ref_w, ref_h = REFERENCE_IMAGE_PX
    w, h = image_wh
    scale = math.sqrt((w * h) / (ref_w * ref_h))
    return float(base * max(scale, _MIN_SIDE_FLOOR))


def failure_reasons(
    level: QualityFilter,
    sizes_px: np.ndarray,
    brightness: np.ndarray,
    sharpness: np.ndarray,
    pose: np.ndarray,
    image_wh: tuple[int, int] | None = None,
) -> list[list[str]]:
    """Per face, Rekognition's ``UnindexedFaces`` reasons for failing ``level`` (empty = passes).

    ``image_wh``: the image's (width, height), for the relative SMALL_BOUNDING_BOX rule
    (:func:`min_side_px`); None applies the table's value as at 1920x1080.
    """
    out: list[list[str]] = [[] for _ in range(sizes_px.shape[0])]
    if level is QualityFilter.NONE:
        return out
    c = _CUTOFFS[level]
    smallest = min_side_px(level, image_wh)
    for i, r in enumerate(out):
        if sizes_px[i] < smallest:
            r.append("SMALL_BOUNDING_BOX")
        if sharpness[i] < c.min_sharpness:
            r.append("LOW_SHARPNESS")
        if not c.brightness[0] <= brightness[i] <= c.brightness[1]:
            r.append("LOW_BRIGHTNESS")
        if abs(pose[i, 0]) > c.max_abs_yaw or abs(pose[i, 1]) > c.max_abs_pitch:
            r.append("EXTREME_POSE")
    return out


def passes(
    level: QualityFilter,
    sizes_px: np.ndarray,
    brightness: np.ndarray,
    sharpness: np.ndarray,
    pose: np.ndarray,
    image_wh: tuple[int, int] | None = None,
) -> np.ndarray:
    """(n,) bool: which faces pass ``level`` (see the module table; ``image_wh`` as in
    :func:`failure_reasons`)."""
    if level is QualityFilter.NONE:
        return np.ones(sizes_px.shape[0], bool)
    c = _CUTOFFS[level]
    return (
        (sizes_px >= min_side_px(level, image_wh))
        & (sharpness >= c.min_sharpness)
        & (brightness >= c.brightness[0])
        & (brightness <= c.brightness[1])
        & (np.abs(pose[:, 0]) <= c.max_abs_yaw)
        & (np.abs(pose[:, 1]) <= c.max_abs_pitch)
    )
