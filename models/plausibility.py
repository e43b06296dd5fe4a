"""Is a detection a face? Checks after MTCNN's own score, to cut false faces without losing real ones.

Two independent checks (calibrated on the shared photos, see ``bench.detect_stills``):

* **Five-point geometry** (:func:`plausible_landmarks`): all five points inside the (unclipped)
  box, the eye distance a sensible share of the box width, the mouth below the eyes, and the
  head's yaw and pitch (from the points, :func:`models.quality.pose_from_landmarks`) within
  limits a real face shows (any roll: a head tilted 70 degrees is still found). O-Net's
  points on background clutter often break one.
* **Colour independence** (:func:`grey_scores`): a face is still a face without its colours.
  O-Net re-scores each uncertain face on a greyscale copy of its crop; false faces on dark or
  colourful background patches (skin-like hues, textures) lose most of their score there,
  real faces, even tiny or blurred ones, keep it. Only faces below ``sure`` are re-scored.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn.functional import interpolate

from models.quality import pose_from_landmarks

#: points may lie this far (share of the box side) outside the box
_INSIDE_SLACK = 0.1
#: eye distance over box width: frontal MTCNN faces ~0.4-0.6, full profiles ~0.2
_IOD_RANGE = (0.12, 0.85)
#: |yaw|, |pitch| in degrees beyond which MTCNN's points describe no real head (roll is free:
#: a tilted head is a head, and Rekognition restricts no roll)
_MAX_POSE = (80.0, 65.0)


def plausible_landmarks(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(n,) bool for unclipped ``boxes`` (n,4+) px and ``points`` (n,5,2) px (MTCNN order:
    left eye, right eye, nose, left and right mouth corners)."""
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, bool)
    b = boxes[:, :4].astype(np.float64)
    p = points.astype(np.float64)
    w = np.maximum(b[:, 2] - b[:, 0], 1e-6)
    h = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    sx, sy = (_INSIDE_SLACK * w)[:, None], (_INSIDE_SLACK * h)[:, None]
    inside = (
        (p[..., 0] >= b[:, 0:1] - sx)
        & (p[..., 0] <= b[:, 2:3] + sx)
        & (p[..., 1] >= b[:, 1:2] - sy)
        & (p[..., 1] <= b[:, 3:4] + sy)
    ).all(axis=1)
    iod = np.linalg.norm(p[:, 1] - p[:, 0], axis=1) / w
    iod_ok = (iod >= _IOD_RANGE[0]) & (iod <= _IOD_RANGE[1])
    # mouth below the eyes, measured along the face's own vertical axis (roll removed)
    eye_vec = p[:, 1] - p[:, 0]
    down = np.stack([-eye_vec[:, 1], eye_vec[:, 0]], axis=1)
    down /= np.maximum(np.linalg.norm(down, axis=1, keepdims=True), 1e-9)
    mouth_drop = (((p[:, 3] + p[:, 4]) / 2 - (p[:, 0] + p[:, 1]) / 2) * down).sum(axis=1)
    order_ok = mouth_drop > 0
    pose = np.abs(pose_from_landmarks(points.astype(np.float32)))
    pose_ok = (pose[:, 0] <= _MAX_POSE[0]) & (pose[:, 1] <= _MAX_POSE[1])
    return np.asarray(inside & iod_ok & order_ok & pose_ok, dtype=bool)


def _square_crop(rgb: np.ndarray, box: np.ndarray, size: int) -> torch.Tensor:
    """(1,3,size,size) float crop of the square around ``box`` (MTCNN's ``rerec``), edge-padded."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    xa, ya = math.floor(cx - side / 2), math.floor(cy - side / 2)
    xb, yb = xa + max(1, round(side)), ya + max(1, round(side))
    pads = ((max(0, -ya), max(0, yb - h)), (max(0, -xa), max(0, xb - w)), (0, 0))
    region = rgb[max(0, ya) : min(h, yb), max(0, xa) : min(w, xb)]
    if region.size == 0:
        return torch.zeros((1, 3, size, size))
    if any(a or b for a, b in pads[:2]):
        region = np.pad(region, pads, mode="edge")
    t = torch.from_numpy(np.ascontiguousarray(region, dtype=np.float32)).permute(2, 0, 1)[None]
    return interpolate(t, size=(size, size), mode="area")


def grey_scores(onet: torch.nn.Module, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n,) O-Net face probability of each box's crop in greyscale (BT.601 luma in all channels)."""
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, np.float32)
    crops = torch.cat([_square_crop(rgb, b, 48) for b in boxes])
    luma = crops[:, 0] * 0.299 + crops[:, 1] * 0.587 + crops[:, 2] * 0.114
    grey = luma[:, None].expand(-1, 3, -1, -1)
    dtype = next(onet.parameters()).dtype
    with torch.inference_mode():
        _, _, prob = onet(((grey - 127.5) * 0.0078125).to(dtype))
    return prob[:, 1].float().numpy().astype(np.float32)
