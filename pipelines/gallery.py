"""Enrolling reference photos into a collection through the face deployment and store actor."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from facestream.audit import Actor, AuditLog
from facestream.errors import CollectionExists
from facestream.imageio import LoadedImage
from facestream.rekognition import bbox_ratios
from facestream.store import FaceRecord
from facestream.thumbnails import ThumbnailConfig, ThumbnailStore, crop_jpeg
from pipelines.store_actor import call

log = logging.getLogger(__name__)


def ensure_collection(store: Any, name: str, model: str, *, fresh: bool = False) -> None:
    """Create ``name`` for ``model``; with ``fresh`` an existing one is emptied first."""
    from facestream.embedders import MODEL_DIMS

    try:
        call(store.create_collection.remote(name, model=model, dim=MODEL_DIMS[model]), 60)
    except CollectionExists:
        if fresh:
            call(store.delete_collection.remote(name), 60)
            call(store.create_collection.remote(name, model=model, dim=MODEL_DIMS[model]), 60)


def enrol(
    face_handle: Any,
    store: Any,
    collection: str,
    images: list[tuple[str, LoadedImage]],
    *,
    audit: AuditLog,
    actor: Actor,
    thumbnails: ThumbnailStore | None = None,
) -> dict[str, int]:
    """Index the largest face of each image with ExternalImageId = its label.

    Returns faces indexed per label (0 when no face was found). Audited as IndexFaces. With
    ``thumbnails`` (and FACESTREAM_THUMBNAILS not off), each indexed face's crop is kept for
    the reviewers' console, as IndexFaces does.
    """
    model = str(face_handle.model_name.remote().result(timeout_s=60))
    responses = [(label, img, face_handle.analyze.remote(img.rgb)) for label, img in images]
    counts: dict[str, int] = {}
    records: list[FaceRecord] = []
    crops: list[bytes | None] = []
    keep_crops = thumbnails is not None and ThumbnailConfig.from_env().enabled
    now_ms = int(time.time() * 1000)
    for label, img, resp in responses:
        batch = resp.result(timeout_s=300).largest_first()
        counts[label] = min(1, len(batch))
        if len(batch) == 0 or batch.embeddings is None:
            continue
        records.append(
            FaceRecord(
                face_id=str(uuid.uuid4()),
                external_image_id=label,
                image_id=img.sha256,
                bounding_box=bbox_ratios(batch.boxes[0], batch.image_width, batch.image_height),
                confidence=float(batch.scores[0]) * 100.0,
                quality={"brightness": float(batch.brightness[0]), "sharpness": float(batch.sharpness[0])},
                created_at_ms=now_ms,
                embedding=batch.embeddings[0],
            )
        )
        crops.append(crop_jpeg(img.rgb, batch.boxes[0]) if keep_crops else None)
    if records:
        call(store.add_faces.remote(collection, records, model=model), 120)
    if thumbnails is not None:
        for r, jpeg in zip(records, crops, strict=True):
            if jpeg is not None:
                thumbnails.put(collection, r.face_id, jpeg)
    audit.append(
        actor=actor,
        operation="IndexFaces",
        inputs={"collection": collection, "images": [img.sha256 for _, img in images]},
        results={"face_ids": [r.face_id for r in records]},
    )
    return counts
