"""What the Rekognition-shaped operations share: input checks, the analyzer they need, JSON shapes.

:mod:`facestream.operations` (the facade) and its mixins (``operations_collections``,
``operations_users``) all import from here, so no file imports the facade it is mixed into.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from facestream.errors import InvalidParameter, PurposeRequired
from facestream.quality import QualityFilter, failure_reasons
from facestream.rekognition import MODEL_FIELD, model_version, wire_image_id
from facestream.similarity import DEFAULT_MATCH_THRESHOLD
from facestream.store import FaceRecord, FaceStore
from facestream.types import FaceBatch, SearchHit

#: the operations' name for :data:`facestream.similarity.DEFAULT_MATCH_THRESHOLD` (defined there once)
DEFAULT_THRESHOLD = DEFAULT_MATCH_THRESHOLD
MAX_PURPOSE_CHARS = 500


class Analyzer(Protocol):
    """What the operations need from a face analyzer (local, or a Serve deployment proxy)."""

    @property
    def model_name(self) -> str: ...

    def detect(self, images: list[np.ndarray]) -> list[FaceBatch]: ...

    def analyze(self, images: list[np.ndarray]) -> list[FaceBatch]: ...

    def landmarks_all(self, image: np.ndarray, batch: FaceBatch) -> np.ndarray:
        """(n, 30, 2) px: Rekognition's ALL landmarks (facestream.types.ALL_LANDMARK_TYPES)."""
        ...


def check_purpose(purpose: str | None) -> str:
    """Every search/identification says why it is made; the reason goes to the audit log."""
    if purpose is None or not purpose.strip():
        raise PurposeRequired("a purpose (case id or reason) is required for every search and identification")
    if len(purpose) > MAX_PURPOSE_CHARS:
        raise InvalidParameter(f"purpose is {len(purpose)} characters; at most {MAX_PURPOSE_CHARS}")
    if any(ord(c) < 32 for c in purpose):
        raise InvalidParameter("purpose must not contain control characters")
    return purpose.strip()


def check_threshold(value: float, name: str = "threshold") -> float:
    """A threshold in [0, 100] and not below the deployment profile's floor
    (``FACESTREAM_PROFILE``: public-safety refuses anything under 99)."""
    from facestream.profiles import resolve_profile

    if not 0.0 <= value <= 100.0:
        raise InvalidParameter(f"{name} must be in [0, 100], got {value}")
    profile = resolve_profile()
    if value < profile.min_threshold:
        raise InvalidParameter(
            f"{name} {value} is below the floor of {profile.min_threshold} set by the "
            f"{profile.name!r} deployment profile"
        )
    return float(value)


def check_max_faces(value: int | None, upper: int = 4096) -> int | None:
    if value is not None and not 1 <= value <= upper:
        raise InvalidParameter(f"max faces must be in [1, {upper}], got {value}")
    return value


def require_quality(batch: FaceBatch, quality_filter: QualityFilter, what: str) -> None:
    """Refuse to search with a face that fails ``quality_filter`` (the first face of ``batch``)."""
    if quality_filter is QualityFilter.NONE:
        return
    first = batch.select([0])
    reasons = failure_reasons(
        quality_filter,
        first.sizes_px,
        first.brightness,
        first.sharpness,
        first.pose,
        (first.image_width, first.image_height),
    )[0]
    if reasons:
        raise InvalidParameter(f"{what} fails QualityFilter {quality_filter.value}: {', '.join(reasons)}")


def model_fields(model: str) -> dict[str, str]:
    """``FaceModelVersion`` (Rekognition's numeric form) and facestream's ``FacestreamFaceModel``
    (the model's name; the Rekognition protocol leaves it out)."""
    return {"FaceModelVersion": model_version(model), MODEL_FIELD: model}


def match_json(h: SearchHit, rec: FaceRecord | None = None, model: str | None = None) -> dict[str, Any]:
    """One search hit as Rekognition's ``FaceMatch``; with the stored ``rec`` its ``Face`` has
    the BoundingBox and Confidence it was indexed with, and with ``model`` its
    IndexFacesModelVersion."""
    if rec is not None:
        face = face_json(rec, model)
    else:
        face = {"FaceId": h.face_id, "ImageId": wire_image_id(h.image_id)}
        if h.external_image_id:
            face["ExternalImageId"] = h.external_image_id
        if h.user_id:
            face["UserId"] = h.user_id
        if model is not None:
            face["IndexFacesModelVersion"] = model_version(model)
    return {"Similarity": round(h.similarity, 5), "Face": face}


def matches_json(
    store: FaceStore, collection: str, hits: list[SearchHit], model: str
) -> list[dict[str, Any]]:
    """Search hits as ``FaceMatches``, each ``Face`` completed from its stored record."""
    if not hits:
        return []
    records = {r.face_id: r for r in store.get_faces(collection, [h.face_id for h in hits])}
    return [match_json(h, records.get(h.face_id), model) for h in hits]


def face_json(rec: FaceRecord, model: str | None = None) -> dict[str, Any]:
    """A stored face as Rekognition's ``Face`` (``ImageId`` as a UUID, see
    :func:`facestream.rekognition.wire_image_id`); with ``model``, its IndexFacesModelVersion."""
    left, top, width, height = rec.bounding_box
    out: dict[str, Any] = {
        "FaceId": rec.face_id,
        "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
        "ImageId": wire_image_id(rec.image_id),
        "Confidence": round(rec.confidence, 5),
    }
    if rec.external_image_id is not None:
        out["ExternalImageId"] = rec.external_image_id
    if rec.user_id is not None:
        out["UserId"] = rec.user_id
    if model is not None:
        out["IndexFacesModelVersion"] = model_version(model)
    return out
