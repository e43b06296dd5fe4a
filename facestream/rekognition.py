"""Rekognition-shaped JSON for faces: the field names outside tools already know.

BoundingBox and landmark coordinates are ratios of the image width/height; Confidence and
Similarity are percentages (0-100).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facestream.types import ALL_LANDMARK_TYPES, LANDMARK_TYPES, FaceBatch


def bounding_box(box: np.ndarray, width: int, height: int) -> dict[str, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return {
        "Width": round((x2 - x1) / width, 6),
        "Height": round((y2 - y1) / height, 6),
        "Left": round(x1 / width, 6),
        "Top": round(y1 / height, 6),
    }


def face_detail(batch: FaceBatch, i: int, all_landmarks: np.ndarray | None = None) -> dict[str, Any]:
    """One face as Rekognition's ``FaceDetail``: DEFAULT attributes, with ``all_landmarks``
    ((30, 2) px, :data:`ALL_LANDMARK_TYPES`; Attributes=["ALL"]) in place of the five."""
    w, h = batch.image_width, batch.image_height
    yaw, pitch, roll = (round(float(v), 3) for v in batch.pose[i])
    types, points = (
        (LANDMARK_TYPES, batch.landmarks[i]) if all_landmarks is None else (ALL_LANDMARK_TYPES, all_landmarks)
    )
    return {
        "BoundingBox": bounding_box(batch.boxes[i], w, h),
        "Confidence": round(float(batch.scores[i]) * 100.0, 5),
        "Landmarks": [
            {"Type": t, "X": round(float(x) / w, 6), "Y": round(float(y) / h, 6)}
            for t, (x, y) in zip(types, points, strict=True)
        ],
        "Pose": {"Yaw": yaw, "Pitch": pitch, "Roll": roll},
        "Quality": {
            "Brightness": round(float(batch.brightness[i]), 3),
            "Sharpness": round(float(batch.sharpness[i]), 3),
        },
    }


def face_details(batch: FaceBatch) -> list[dict[str, Any]]:
    return [face_detail(batch, i) for i in range(len(batch))]


def bbox_ratios(box: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """(left, top, width, height) ratios, the store's form."""
    b = bounding_box(box, width, height)
    return (b["Left"], b["Top"], b["Width"], b["Height"])
