"""Rekognition-shaped face operations over an analyzer, the store and the audit log.

The CLI and the HTTP API both call these, so their answers and their audit entries are the
same. Images arrive already decoded (:class:`facestream.imageio.LoadedImage`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from facestream.audit import Actor, AuditLog
from facestream.errors import InvalidParameter, PurposeRequired
from facestream.imageio import LoadedImage
from facestream.operations_collections import CollectionOperationsMixin
from facestream.operations_users import UserOperationsMixin
from facestream.quality import QualityFilter, failure_reasons
from facestream.rekognition import bbox_ratios, bounding_box, face_detail
from facestream.similarity import cosine_to_similarity
from facestream.store import FaceRecord, FaceStore
from facestream.types import FaceBatch, SearchHit

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 80.0
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


def _row(points: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if points is None else points[i]


def check_max_faces(value: int | None, upper: int = 4096) -> int | None:
    if value is not None and not 1 <= value <= upper:
        raise InvalidParameter(f"max faces must be in [1, {upper}], got {value}")
    return value


class FaceOperations(CollectionOperationsMixin, UserOperationsMixin):
    def __init__(self, analyzer: Analyzer, store: FaceStore, audit: AuditLog) -> None:
        self.analyzer = analyzer
        self.store = store
        self.audit = audit

    # --- detection ------------------------------------------------------------------------
    def detect_faces(
        self, image: LoadedImage, max_faces: int | None = None, attributes: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """``attributes`` containing "ALL": Rekognition's 30 landmark types instead of the five."""
        check_max_faces(max_faces)
        batch = self.analyzer.detect([image.rgb])[0].largest_first()
        if max_faces is not None:
            batch = batch.select(np.arange(min(max_faces, len(batch))))
        extra = self._all_landmarks(image, batch, attributes)
        return {"FaceDetails": [face_detail(batch, i, _row(extra, i)) for i in range(len(batch))]}

    def _all_landmarks(
        self, image: LoadedImage, batch: FaceBatch, attributes: Sequence[str] | None
    ) -> np.ndarray | None:
        if not attributes or "ALL" not in attributes or len(batch) == 0:
            return None
        return self.analyzer.landmarks_all(image.rgb, batch)

    # --- comparison -----------------------------------------------------------------------
    def compare_faces(
        self, source: LoadedImage, target: LoadedImage, threshold: float = DEFAULT_THRESHOLD
    ) -> dict[str, Any]:
        check_threshold(threshold, "SimilarityThreshold")
        src_b, tgt_b = self.analyzer.analyze([source.rgb, target.rgb])
        src_b = src_b.largest_first()
        if len(src_b) == 0:
            raise InvalidParameter("no face found in the source image")
        assert src_b.embeddings is not None and tgt_b.embeddings is not None  # analyze() embeds
        sims = cosine_to_similarity(self.analyzer.model_name, tgt_b.embeddings @ src_b.embeddings[0])
        matches, unmatched = [], []
        for i in np.argsort(-sims, kind="stable"):
            detail = face_detail(tgt_b, int(i))
            if sims[i] >= threshold:
                matches.append({"Similarity": round(float(sims[i]), 5), "Face": detail})
            else:
                unmatched.append(detail)
        return {
            "SourceImageFace": {
                "BoundingBox": bounding_box(src_b.boxes[0], src_b.image_width, src_b.image_height),
                "Confidence": round(float(src_b.scores[0]) * 100.0, 5),
            },
            "FaceMatches": matches,
            "UnmatchedFaces": unmatched,
            "FaceModelVersion": self.analyzer.model_name,
        }

    # --- collections ----------------------------------------------------------------------
    def index_faces(
        self,
        collection: str,
        image: LoadedImage,
        *,
        actor: Actor,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = QualityFilter.AUTO,
        detection_attributes: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        check_max_faces(max_faces)
        info = self.store.describe_collection(collection)
        model = self.analyzer.model_name
        if info.model != model:
            from facestream.errors import ModelMismatch

            raise ModelMismatch(
                f"collection {collection!r} holds {info.model} embeddings; this analyzer makes {model}"
            )
        batch = self.analyzer.analyze([image.rgb])[0].largest_first()
        assert batch.embeddings is not None
        reasons = failure_reasons(
            quality_filter,
            batch.sizes_px,
            batch.brightness,
            batch.sharpness,
            batch.pose,
            (batch.image_width, batch.image_height),
        )
        records: list[FaceRecord] = []
        indexed: list[dict[str, Any]] = []
        unindexed: list[dict[str, Any]] = []
        now_ms = int(time.time() * 1000)
        extra = self._all_landmarks(image, batch, detection_attributes)
        for i in range(len(batch)):
            detail = face_detail(batch, i, _row(extra, i))
            if reasons[i]:
                unindexed.append({"Reasons": reasons[i], "FaceDetail": detail})
                continue
            if max_faces is not None and len(records) >= max_faces:
                unindexed.append({"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": detail})
                continue
            rec = FaceRecord(
                face_id=str(uuid.uuid4()),
                external_image_id=external_image_id,
                image_id=image.sha256,
                bounding_box=bbox_ratios(batch.boxes[i], batch.image_width, batch.image_height),
                confidence=float(batch.scores[i]) * 100.0,
                quality={"brightness": float(batch.brightness[i]), "sharpness": float(batch.sharpness[i])},
                created_at_ms=now_ms,
                user_id=None,
                embedding=batch.embeddings[i],
            )
            records.append(rec)
            indexed.append({"Face": face_json(rec), "FaceDetail": detail})
        if records:
            self.store.add_faces(collection, records, model=model)
            self.save_thumbnails(collection, image.rgb, records)
        self.audit.append(
            actor=actor,
            operation="IndexFaces",
            inputs={
                "collection": collection,
                "image_sha256": image.sha256,
                "external_image_id": external_image_id,
            },
            results={"face_ids": [r.face_id for r in records], "unindexed": len(unindexed)},
        )
        return {"FaceRecords": indexed, "UnindexedFaces": unindexed, "FaceModelVersion": model}

    def search_faces_by_image(
        self,
        collection: str,
        image: LoadedImage,
        *,
        actor: Actor,
        purpose: str | None,
        threshold: float = DEFAULT_THRESHOLD,
        max_faces: int = 10,
        quality_filter: QualityFilter = QualityFilter.NONE,
    ) -> dict[str, Any]:
        purpose = check_purpose(purpose)
        check_threshold(threshold, "FaceMatchThreshold")
        check_max_faces(max_faces)
        info = self.store.describe_collection(collection)
        batch = self.analyzer.analyze([image.rgb])[0].largest_first()
        if len(batch) == 0:
            raise InvalidParameter("no face found in the image to search with")
        require_quality(batch, quality_filter, "the largest face of the image")
        assert batch.embeddings is not None
        hits = self.store.search(
            collection, batch.embeddings[:1], model=info.model, max_faces=max_faces, min_similarity=threshold
        )[0]
        matches = [match_json(h) for h in hits]
        self.audit.append(
            actor=actor,
            operation="SearchFacesByImage",
            purpose=purpose,
            inputs={"collection": collection, "image_sha256": image.sha256, "threshold": threshold},
            results={"matches": [[h.face_id, round(h.similarity, 3)] for h in hits]},
        )
        return {
            "SearchedFaceBoundingBox": bounding_box(batch.boxes[0], batch.image_width, batch.image_height),
            "SearchedFaceConfidence": round(float(batch.scores[0]) * 100.0, 5),
            "FaceMatches": matches,
            "FaceModelVersion": info.model,
        }


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


def match_json(h: SearchHit) -> dict[str, Any]:
    """One search hit as Rekognition's ``FaceMatch``."""
    return {
        "Similarity": round(h.similarity, 5),
        "Face": {
            "FaceId": h.face_id,
            "ExternalImageId": h.external_image_id,
            "ImageId": h.image_id,
            **({"UserId": h.user_id} if h.user_id else {}),
        },
    }


def face_json(rec: FaceRecord) -> dict[str, Any]:
    left, top, width, height = rec.bounding_box
    out: dict[str, Any] = {
        "FaceId": rec.face_id,
        "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
        "ImageId": rec.image_id,
        "Confidence": round(rec.confidence, 5),
    }
    if rec.external_image_id is not None:
        out["ExternalImageId"] = rec.external_image_id
    if rec.user_id is not None:
        out["UserId"] = rec.user_id
    return out
