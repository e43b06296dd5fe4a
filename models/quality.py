"""Per-face quality: size, brightness, sharpness and head pose, plus Rekognition's QualityFilter.

Brightness and sharpness are measured here (torch); pose, the QualityFilter cut-offs and
the checks are numpy-only and live in the kernel (:mod:`facestream.quality`), re-exported
here so model code imports them from one place.

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

import numpy as np
import torch
import torch.nn.functional as F

from facestream.quality import (
    REFERENCE_IMAGE_PX,
    QualityFilter,
    failure_reasons,
    min_side_px,
    passes,
    pose_from_landmarks,
)
from models.device import image_tensor

__all__ = [
    "REFERENCE_IMAGE_PX",
    "QualityFilter",
    "brightness_sharpness",
    "failure_reasons",
    "min_side_px",
    "passes",
    "pose_from_landmarks",
]

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64).view(
    1, 1, 3, 3
)
_SHARPNESS_SCALE = 1000.0


def brightness_sharpness(rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` (H,W,3) uint8, ``boxes`` (n,4) px -> brightness (n,), sharpness (n,), both 0-100."""
    n = boxes.shape[0]
    bright = np.zeros(n, np.float32)
    sharp = np.zeros(n, np.float32)
    if n == 0:
        return bright, sharp
    h, w = rgb.shape[:2]
    grey = image_tensor(np.ascontiguousarray(rgb)).double() @ torch.tensor(
        [0.299, 0.587, 0.114], dtype=torch.float64
    )
    crops = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        xa, ya = max(0, int(x1)), max(0, int(y1))
        xb, yb = min(w, max(xa + 1, math.ceil(x2))), min(h, max(ya + 1, math.ceil(y2)))
        patch = grey[ya:yb, xa:xb]
        bright[i] = float(patch.mean()) / 255.0 * 100.0
        crops.append(F.interpolate(patch[None, None], size=(64, 64), mode="bilinear", antialias=True))
    lap = F.conv2d(torch.cat(crops), _LAPLACIAN)
    var = lap.flatten(1).var(dim=1).numpy()
    sharp[:] = 100.0 * (1.0 - np.exp(-var / _SHARPNESS_SCALE))
    return bright, sharp
