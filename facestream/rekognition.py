"""Rekognition-shaped JSON for faces: the field names outside tools already know.

BoundingBox and landmark coordinates are ratios of the image width/height; Confidence and
Similarity are percentages (0-100).

Identifiers take Rekognition's shapes: ``ImageId`` is a UUID derived from the image's sha256
(stable per image; the store keeps the sha256), ``FaceModelVersion``/``IndexFacesModelVersion``
a numeric version per embedding model (:data:`MODEL_VERSIONS`; the model's name travels in
facestream's own ``FacestreamFaceModel`` field, native API only), and a collection's ARN is
``arn:<partition>:rekognition:<region>:<account>:collection/<id>`` (:class:`ArnConfig`).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from facestream.types import ALL_LANDMARK_TYPES, LANDMARK_TYPES, FaceBatch

#: embedding model -> the numeric version the Rekognition fields carry (pattern ``[0-9.]+``).
#: Append only: a version, once given out, names that model for good.
MODEL_VERSIONS: dict[str, str] = {"dlib-resnet": "1.0", "facenet-vggface2": "2.0"}
#: the facestream-only fields that name the model (stripped on the Rekognition protocol)
MODEL_FIELD = "FacestreamFaceModel"
MODELS_FIELD = "FacestreamFaceModels"


def model_version(model: str) -> str:
    """Rekognition-shaped version of an embedding model ("0.0": a model without one yet)."""
    return MODEL_VERSIONS.get(model, "0.0")


def wire_image_id(image_id: str) -> str:
    """The ``ImageId`` shown for a stored image id (sha256 hex): a UUID made of its first 128
    bits (version and variant bits set), so one image always shows the same ImageId."""
    if len(image_id) == 64:
        try:
            return str(uuid.UUID(hex=image_id[:32], version=5))
        except ValueError:
            pass
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "facestream:image:" + image_id))


#: facestream's own answer fields start with this; the Rekognition protocol leaves them out
FACESTREAM_FIELD_PREFIX = "Facestream"


def rekognition_wire(value: Any) -> Any:
    """An answer as the Rekognition protocol sends it: without facestream's own fields
    (``Facestream*``, at any depth), which botocore's output shapes do not know."""
    if isinstance(value, dict):
        return {
            k: rekognition_wire(v)
            for k, v in value.items()
            if not (isinstance(k, str) and k.startswith(FACESTREAM_FIELD_PREFIX))
        }
    if isinstance(value, list):
        return [rekognition_wire(v) for v in value]
    return value


class ArnConfig(BaseModel):
    """How collection ARNs are spelled: ``arn:<partition>:rekognition:<region>:<account>:collection/<id>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str = Field("aws", pattern=r"^[a-z][a-z0-9-]{1,31}$", description="ARN partition")
    region: str = Field("us-east-1", pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="region named in ARNs")
    account: str = Field("000000000000", pattern=r"^[0-9]{12}$", description="12-digit account id in ARNs")

    def collection(self, collection_id: str) -> str:
        return f"arn:{self.partition}:rekognition:{self.region}:{self.account}:collection/{collection_id}"


def bounding_box(box: np.ndarray, width: int, height: int) -> dict[str, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return {
        "Width": round((x2 - x1) / width, 6),
        "Height": round((y2 - y1) / height, 6),
        "Left": round(x1 / width, 6),
        "Top": round(y1 / height, 6),
    }


#: eye aspect ratio (eyelid gap / eye width, both eyes averaged) above which eyes count as open:
#: 0.2, the cut-off of Soukupova & Cech's blink detector on the same 68-point contours
EYES_OPEN_RATIO = 0.2
#: outer-lip height (mouthUp to mouthDown) / mouth width above which the mouth counts as open:
#: closed lips measure about 0.25-0.4 (lip thickness alone), a parted mouth more
MOUTH_OPEN_RATIO = 0.45
#: how far from the cut-off (in ratio units) a measurement must be for full confidence
_EYE_SPAN = 0.1
_MOUTH_SPAN = 0.2


def _geometric_state(ratio: float, cut: float, span: float) -> dict[str, Any]:
    """{"Value", "Confidence"}: Value = ratio > cut; Confidence (50-99) grows linearly with the
    distance from the cut-off, reaching 99 at ``span``. A measurement, not a trained classifier."""
    margin = min(abs(ratio - cut) / span, 1.0)
    return {"Value": bool(ratio > cut), "Confidence": round(50.0 + 49.0 * margin, 3)}


def eyes_mouth_open(points: np.ndarray) -> dict[str, Any]:
    """``EyesOpen`` and ``MouthOpen`` from one face's ALL landmarks ((30, 2) px in
    :data:`ALL_LANDMARK_TYPES` order), by landmark geometry (see the ratios above)."""
    idx = {t: k for k, t in enumerate(ALL_LANDMARK_TYPES)}
    p = np.asarray(points, np.float64)

    def dist(a: str, b: str) -> float:
        return float(np.linalg.norm(p[idx[a]] - p[idx[b]]))

    ears = []
    for side in ("left", "right"):
        width = dist(f"{side}EyeLeft", f"{side}EyeRight")
        if width > 0:
            ears.append(dist(f"{side}EyeUp", f"{side}EyeDown") / width)
    mouth_w = dist("mouthLeft", "mouthRight")
    mar = dist("mouthUp", "mouthDown") / mouth_w if mouth_w > 0 else 0.0
    ear = float(np.mean(ears)) if ears else 0.0
    return {
        "EyesOpen": _geometric_state(ear, EYES_OPEN_RATIO, _EYE_SPAN),
        "MouthOpen": _geometric_state(mar, MOUTH_OPEN_RATIO, _MOUTH_SPAN),
    }


def face_detail(batch: FaceBatch, i: int, all_landmarks: np.ndarray | None = None) -> dict[str, Any]:
    """One face as Rekognition's ``FaceDetail``: DEFAULT attributes, with ``all_landmarks``
    ((30, 2) px, :data:`ALL_LANDMARK_TYPES`; Attributes=["ALL"]) in place of the five, and then
    ``EyesOpen``/``MouthOpen`` measured from them. Age, gender and emotions are never inferred
    (docs/api.md, deviations)."""
    w, h = batch.image_width, batch.image_height
    yaw, pitch, roll = (round(float(v), 3) for v in batch.pose[i])
    types, points = (
        (LANDMARK_TYPES, batch.landmarks[i]) if all_landmarks is None else (ALL_LANDMARK_TYPES, all_landmarks)
    )
    out: dict[str, Any] = {
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
    if all_landmarks is not None:
        out.update(eyes_mouth_open(all_landmarks))
    return out


def face_details(batch: FaceBatch) -> list[dict[str, Any]]:
    return [face_detail(batch, i) for i in range(len(batch))]


def bbox_ratios(box: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """(left, top, width, height) ratios, the store's form."""
    b = bounding_box(box, width, height)
    return (b["Left"], b["Top"], b["Width"], b["Height"])
