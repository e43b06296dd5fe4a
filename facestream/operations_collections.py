"""Collection and face-management operations (Rekognition-shaped), mixed into FaceOperations.

CreateCollection, DeleteCollection, ListCollections, DescribeCollection, ListFaces,
DeleteFaces and SearchFaces (by FaceId). Every change and every search is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facestream import operations_common as ops
from facestream.audit import Actor
from facestream.errors import FacestreamError, InvalidParameter, ResourceNotFound
from facestream.paths import StateHome
from facestream.rekognition import MODELS_FIELD, ArnConfig, model_version
from facestream.thumbnails import ThumbnailConfig, ThumbnailStore, crop_jpeg

if TYPE_CHECKING:
    from facestream.audit import AuditLog
    from facestream.operations_common import Analyzer
    from facestream.store import FaceRecord, FaceStore

log = logging.getLogger(__name__)

#: Rekognition's ListCollections / ListFaces page size when MaxResults is not given.
DEFAULT_PAGE = 1000


class CollectionOperationsMixin:
    analyzer: Analyzer
    store: FaceStore
    audit: AuditLog
    #: enrolled-face thumbnails (``<home>/thumbnails``); None: this deployment keeps none
    thumbnails: ThumbnailStore | None = None
    thumbnail_config: ThumbnailConfig = ThumbnailConfig()
    #: how collection ARNs are spelled (partition, region, account)
    arn: ArnConfig = ArnConfig()

    def attach_thumbnails(self, home: Path, config: ThumbnailConfig | None = None) -> None:
        """Keep (when ``config.enabled``) and always delete thumbnails under ``<home>/thumbnails``."""
        self.thumbnail_config = config or ThumbnailConfig.from_env()
        self.thumbnails = ThumbnailStore(StateHome(home).thumbnails)

    def save_thumbnails(self, collection: str, rgb: np.ndarray, records: Sequence[FaceRecord]) -> int:
        """IndexFaces: one small crop per indexed face (the reviewer's enrolled photo).

        A failure to write one is logged, never fails the indexing (the vector is what counts).
        """
        if self.thumbnails is None or not self.thumbnail_config.enabled:
            return 0
        h, w = rgb.shape[:2]
        n = 0
        for rec in records:
            left, top, width, height = rec.bounding_box
            box = np.array([left * w, top * h, (left + width) * w, (top + height) * h], dtype=np.float32)
            try:
                self.thumbnails.put(collection, rec.face_id, crop_jpeg(rgb, box, self.thumbnail_config))
                n += 1
            except (OSError, FacestreamError) as exc:
                log.warning("thumbnail of face %s in %s not kept: %s", rec.face_id, collection, exc)
        return n

    def create_collection(self, collection: str, *, actor: Actor, model: str | None = None) -> dict[str, Any]:
        from facestream.embedders import MODEL_DIMS

        model = self.analyzer.model_name if model is None else model
        if model not in MODEL_DIMS:
            raise InvalidParameter(f"model {model!r}: expected one of {sorted(MODEL_DIMS)}")
        info = self.store.create_collection(collection, model=model, dim=MODEL_DIMS[model])
        self.audit.append(actor=actor, operation="CreateCollection", inputs={"collection": collection})
        return {
            "StatusCode": 200,
            "CollectionArn": self.arn.collection(collection),
            **ops.model_fields(info.model),
        }

    def delete_collection(self, collection: str, *, actor: Actor) -> dict[str, Any]:
        self.store.delete_collection(collection)
        if self.thumbnails is not None:
            self.thumbnails.delete_collection(collection)
        self.audit.append(actor=actor, operation="DeleteCollection", inputs={"collection": collection})
        return {"StatusCode": 200}

    def list_collections(
        self, *, max_results: int | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        names, token = self.store.list_collections_page(
            max_results=max_results or DEFAULT_PAGE, next_token=next_token
        )
        models = [self.store.describe_collection(n).model for n in names]
        out: dict[str, Any] = {
            "CollectionIds": names,
            "FaceModelVersions": [model_version(m) for m in models],
            MODELS_FIELD: models,
        }
        if token is not None:
            out["NextToken"] = token
        return out

    def describe_collection(self, collection: str) -> dict[str, Any]:
        info = self.store.describe_collection(collection)
        return {
            "FaceCount": info.face_count,
            "UserCount": self.store.count_users(collection),
            **ops.model_fields(info.model),
            "CollectionARN": self.arn.collection(info.name),
            "CreationTimestamp": info.created_at / 1000.0,
        }

    def list_faces(
        self,
        collection: str,
        *,
        max_results: int | None = None,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        info = self.store.describe_collection(collection)
        if face_ids:
            faces = self.store.get_faces(collection, face_ids)
            if user_id is not None:
                faces = [f for f in faces if f.user_id == user_id]
            token = None
        else:
            faces, token = self.store.list_faces(
                collection, max_results=max_results or DEFAULT_PAGE, next_token=next_token, user_id=user_id
            )
        out: dict[str, Any] = {
            "Faces": [ops.face_json(f, info.model) for f in faces],
            **ops.model_fields(info.model),
        }
        if token is not None:
            out["NextToken"] = token
        return out

    def delete_faces(self, collection: str, face_ids: Sequence[str], *, actor: Actor) -> dict[str, Any]:
        """Delete faces; like Rekognition, a face associated with a user is not deleted
        (disassociate it or delete the user first) and is reported with the reason."""
        found = {f.face_id: f for f in self.store.get_faces(collection, face_ids)}
        unsuccessful: list[dict[str, Any]] = []
        deletable: list[str] = []
        for fid in dict.fromkeys(face_ids):
            rec = found.get(fid)
            if rec is None:
                unsuccessful.append({"FaceId": fid, "Reasons": ["FACE_NOT_FOUND"]})
            elif rec.user_id is not None:
                unsuccessful.append(
                    {"FaceId": fid, "UserId": rec.user_id, "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]}
                )
            else:
                deletable.append(fid)
        deleted = self.store.delete_faces(collection, deletable) if deletable else []
        if self.thumbnails is not None and deleted:
            self.thumbnails.delete(collection, deleted)
        self.audit.append(
            actor=actor,
            operation="DeleteFaces",
            inputs={"collection": collection, "face_ids": list(face_ids)},
            results={"deleted": deleted},
        )
        return {"DeletedFaces": deleted, "UnsuccessfulFaceDeletions": unsuccessful}

    def search_faces(
        self,
        collection: str,
        face_id: str,
        *,
        actor: Actor,
        purpose: str | None,
        threshold: float = ops.DEFAULT_THRESHOLD,
        max_faces: int = 10,
    ) -> dict[str, Any]:
        """Stored faces like the stored face ``face_id`` (which is not among the answers)."""
        purpose = ops.check_purpose(purpose)
        ops.check_threshold(threshold, "FaceMatchThreshold")
        ops.check_max_faces(max_faces)
        info = self.store.describe_collection(collection)
        faces = self.store.get_faces(collection, [face_id], with_embeddings=True)
        if not faces or faces[0].embedding is None:
            raise ResourceNotFound(f"face {face_id!r} does not exist in collection {collection!r}")
        query = faces[0].embedding.reshape(1, -1).astype(np.float32)
        hits = self.store.search(
            collection, query, model=info.model, max_faces=max_faces + 1, min_similarity=threshold
        )[0]
        hits = [h for h in hits if h.face_id != face_id][:max_faces]
        self.audit.append(
            actor=actor,
            operation="SearchFaces",
            purpose=purpose,
            inputs={"collection": collection, "face_id": face_id, "threshold": threshold},
            results={"matches": [[h.face_id, round(h.similarity, 3)] for h in hits]},
        )
        return {
            "SearchedFaceId": face_id,
            "FaceMatches": ops.matches_json(self.store, collection, hits, info.model),
            **ops.model_fields(info.model),
        }
