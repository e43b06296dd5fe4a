"""Per-face quality measured on the image (torch): brightness and sharpness.

Brightness is the mean luma (ITU-R BT.601) of the face box scaled to 0-100. Sharpness is
the variance of the Laplacian of the face resized to 64x64 grey, mapped to 0-100 by
``100 * (1 - exp(-var / 1000))`` (a crisp studio portrait reads ~60, a small or blurred
face < 15).

Pose from the five landmarks, Rekognition's QualityFilter with its cut-offs and the
image-relative minimum face size are numpy-only and live in the kernel
(:mod:`facestream.quality`, documented there); they are re-exported here so model code
imports them from one place.
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
