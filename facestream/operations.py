"""Rekognition-shaped face operations over an analyzer, the store and the audit log.

The CLI and the HTTP API both call these, so their answers and their audit entries are the
same. Images arrive already decoded (:class:`facestream.imageio.LoadedImage`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from facestream.audit import Actor, AuditLog
from facestream.errors import InvalidParameter
from facestream.imageio import LoadedImage
from facestream.operations_collections import CollectionOperationsMixin
from facestream.operations_common import (
    DEFAULT_THRESHOLD,
    MAX_PURPOSE_CHARS,
    Analyzer,
    check_max_faces,
    check_purpose,
    check_threshold,
    face_json,
    match_json,
    matches_json,
    model_fields,
    require_quality,
)
from facestream.operations_users import UserOperationsMixin
from facestream.quality import QualityFilter, failure_reasons
from facestream.rekognition import MODEL_FIELD, bbox_ratios, bounding_box, face_detail
from facestream.similarity import cosine_to_similarity
from facestream.store import FaceRecord, FaceStore
from facestream.types import FaceBatch

log = logging.getLogger(__name__)


def _row(points: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if points is None else points[i]


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
            MODEL_FIELD: self.analyzer.model_name,  # Rekognition's CompareFaces names no model
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
            indexed.append({"Face": face_json(rec, model), "FaceDetail": detail})
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
        return {"FaceRecords": indexed, "UnindexedFaces": unindexed, **model_fields(model)}

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
        matches = matches_json(self.store, collection, hits, info.model)
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
            **model_fields(info.model),
        }


__all__ = [
    "DEFAULT_THRESHOLD",
    "MAX_PURPOSE_CHARS",
    "Analyzer",
    "FaceOperations",
    "check_max_faces",
    "check_purpose",
    "check_threshold",
    "face_json",
    "match_json",
    "require_quality",
]
