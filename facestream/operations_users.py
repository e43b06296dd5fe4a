"""Users (Rekognition's CreateUser ... SearchUsersByImage), mixed into FaceOperations.

A user is one identity made of several faces of the same person. A user-level search scores
each user by the best similarity between the query face(s) and any of the user's faces, so
more (and more varied) enrolled faces make a person easier to find; each user appears once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facestream import operations_common as ops
from facestream.audit import Actor
from facestream.errors import InvalidParameter, ResourceNotFound
from facestream.imageio import LoadedImage
from facestream.quality import QualityFilter
from facestream.rekognition import face_detail
from facestream.similarity import cosine_to_similarity
from facestream.types import SearchHit

if TYPE_CHECKING:
    from facestream.audit import AuditLog
    from facestream.operations_common import Analyzer
    from facestream.store import FaceStore

#: Rekognition: AssociateFaces takes 1-100 face ids and a user holds at most 100 faces.
MAX_FACES_PER_USER = 100
DEFAULT_ASSOCIATE_THRESHOLD = 75.0
DEFAULT_MAX_USERS = 10
MAX_USERS = 500


def _status(face_count: int) -> str:
    return "ACTIVE" if face_count else "CREATED"


class UserOperationsMixin:
    analyzer: Analyzer
    store: FaceStore
    audit: AuditLog

    def create_user(self, collection: str, user_id: str, *, actor: Actor) -> dict[str, Any]:
        self.store.create_user(collection, user_id)
        self.audit.append(
            actor=actor, operation="CreateUser", inputs={"collection": collection, "user_id": user_id}
        )
        return {}

    def delete_user(self, collection: str, user_id: str, *, actor: Actor) -> dict[str, Any]:
        faces = self.store.delete_user(collection, user_id)
        self.audit.append(
            actor=actor,
            operation="DeleteUser",
            inputs={"collection": collection, "user_id": user_id},
            results={"disassociated": faces},
        )
        return {}

    def list_users(
        self, collection: str, *, max_results: int | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        if max_results is not None and not 1 <= max_results <= MAX_USERS:
            raise InvalidParameter(f"MaxResults must be in [1, {MAX_USERS}], got {max_results}")
        ids, token = self.store.list_users(
            collection, max_results=max_results or MAX_USERS, next_token=next_token
        )
        users = [
            {"UserId": uid, "UserStatus": _status(len(self.store.user_face_ids(collection, uid)))}
            for uid in ids
        ]
        out: dict[str, Any] = {"Users": users}
        if token is not None:
            out["NextToken"] = token
        return out

    def _check_face_list(self, face_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(face_ids))
        if not 1 <= len(ids) <= MAX_FACES_PER_USER:
            raise InvalidParameter(f"FaceIds must hold 1 to {MAX_FACES_PER_USER} ids, got {len(ids)}")
        return ids

    def associate_faces(
        self,
        collection: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        actor: Actor,
        threshold: float = DEFAULT_ASSOCIATE_THRESHOLD,
    ) -> dict[str, Any]:
        """Associate faces with a user. A face must match the user's existing faces at
        ``threshold`` (UserMatchThreshold, default 75) so one user stays one person."""
        ops.check_threshold(threshold, "UserMatchThreshold")
        ids = self._check_face_list(face_ids)
        info = self.store.describe_collection(collection)
        self.store.require_user(collection, user_id)
        existing_ids = self.store.user_face_ids(collection, user_id)
        existing = (
            self.store.get_faces(collection, existing_ids, with_embeddings=True) if existing_ids else []
        )
        anchor = [f.embedding for f in existing if f.embedding is not None]
        found = {f.face_id: f for f in self.store.get_faces(collection, ids, with_embeddings=True)}
        associated: list[str] = []
        failed: list[dict[str, Any]] = []
        for fid in ids:
            rec = found.get(fid)
            if rec is None or rec.embedding is None:
                failed.append({"FaceId": fid, "Reasons": ["FACE_NOT_FOUND"]})
                continue
            if rec.user_id is not None and rec.user_id != user_id:
                failed.append(
                    {"FaceId": fid, "UserId": rec.user_id, "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
                )
                continue
            if rec.user_id == user_id:
                associated.append(fid)  # already there: idempotent, as Rekognition reports it
                continue
            if anchor:
                cos = np.stack(anchor) @ rec.embedding
                sim = float(np.max(cosine_to_similarity(info.model, cos)))
                if sim < threshold:
                    failed.append(
                        {
                            "FaceId": fid,
                            "UserId": user_id,
                            "Confidence": round(sim, 5),
                            "Reasons": ["LOW_MATCH_CONFIDENCE"],
                        }
                    )
                    continue
            if (
                len(existing_ids) + len([a for a in associated if a not in existing_ids])
                >= MAX_FACES_PER_USER
            ):
                raise InvalidParameter(f"user {user_id!r} would hold more than {MAX_FACES_PER_USER} faces")
            associated.append(fid)
            anchor.append(rec.embedding)
        new = [a for a in associated if a not in existing_ids]
        if new:
            self.store.set_face_user(collection, new, user_id)
        self.audit.append(
            actor=actor,
            operation="AssociateFaces",
            inputs={"collection": collection, "user_id": user_id, "face_ids": ids, "threshold": threshold},
            results={"associated": associated, "failed": [f["FaceId"] for f in failed]},
        )
        return {
            "AssociatedFaces": [{"FaceId": a} for a in associated],
            "UnsuccessfulFaceAssociations": failed,
            "UserStatus": _status(len(existing_ids) + len(new)),
        }

    def disassociate_faces(
        self, collection: str, user_id: str, face_ids: Sequence[str], *, actor: Actor
    ) -> dict[str, Any]:
        ids = self._check_face_list(face_ids)
        self.store.require_user(collection, user_id)
        found = {f.face_id: f for f in self.store.get_faces(collection, ids)}
        done: list[str] = []
        failed: list[dict[str, Any]] = []
        for fid in ids:
            rec = found.get(fid)
            if rec is None:
                failed.append({"FaceId": fid, "Reasons": ["FACE_NOT_FOUND"]})
            elif rec.user_id != user_id:
                failed.append(
                    {
                        "FaceId": fid,
                        **({"UserId": rec.user_id} if rec.user_id else {}),
                        "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"],
                    }
                )
            else:
                done.append(fid)
        if done:
            self.store.set_face_user(collection, done, None)
        self.audit.append(
            actor=actor,
            operation="DisassociateFaces",
            inputs={"collection": collection, "user_id": user_id, "face_ids": ids},
            results={"disassociated": done},
        )
        remaining = len(self.store.user_face_ids(collection, user_id))
        return {
            "DisassociatedFaces": [{"FaceId": d} for d in done],
            "UnsuccessfulFaceDisassociations": failed,
            "UserStatus": _status(remaining),
        }

    def _user_matches(
        self,
        collection: str,
        model: str,
        queries: np.ndarray,
        *,
        threshold: float,
        max_users: int,
        exclude_user: str | None = None,
        exclude_faces: set[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Users whose faces match any query face: best similarity per user, highest first."""
        # Enough face hits that max_users distinct users survive users with many faces.
        k = min(4096, max(100, max_users * MAX_FACES_PER_USER // 4))
        best: dict[str, SearchHit] = {}
        for hits in self.store.search(
            collection, queries, model=model, max_faces=k, min_similarity=threshold, users_only=True
        ):
            for h in hits:
                if h.user_id is None or h.user_id == exclude_user or h.face_id in (exclude_faces or set()):
                    continue
                if h.user_id not in best or h.similarity > best[h.user_id].similarity:
                    best[h.user_id] = h
        ranked = sorted(best.values(), key=lambda h: (-h.similarity, h.user_id or ""))[:max_users]
        return [
            {"Similarity": round(h.similarity, 5), "User": {"UserId": h.user_id, "UserStatus": "ACTIVE"}}
            for h in ranked
        ]

    def search_users(
        self,
        collection: str,
        *,
        actor: Actor,
        purpose: str | None,
        user_id: str | None = None,
        face_id: str | None = None,
        threshold: float = ops.DEFAULT_THRESHOLD,
        max_users: int = DEFAULT_MAX_USERS,
    ) -> dict[str, Any]:
        """Users like a stored user (all its faces) or a stored face (exactly one of the two)."""
        purpose = ops.check_purpose(purpose)
        ops.check_threshold(threshold, "UserMatchThreshold")
        _check_max_users(max_users)
        if (user_id is None) == (face_id is None):
            raise InvalidParameter("give exactly one of UserId and FaceId")
        info = self.store.describe_collection(collection)
        if user_id is not None:
            self.store.require_user(collection, user_id)
            fids = self.store.user_face_ids(collection, user_id)
            if not fids:
                raise InvalidParameter(f"user {user_id!r} has no faces associated; nothing to search with")
            searched: dict[str, Any] = {"SearchedUser": {"UserId": user_id}}
        else:
            assert face_id is not None
            fids = [face_id]
            searched = {"SearchedFace": {"FaceId": face_id}}
        faces = self.store.get_faces(collection, fids, with_embeddings=True)
        vecs = [f.embedding for f in faces if f.embedding is not None]
        if not vecs:
            raise ResourceNotFound(f"face {face_id!r} does not exist in collection {collection!r}")
        own_user = user_id if user_id is not None else faces[0].user_id
        matches = self._user_matches(
            collection,
            info.model,
            np.stack(vecs).astype(np.float32),
            threshold=threshold,
            max_users=max_users,
            exclude_user=user_id,
            exclude_faces=set(fids),
        )
        self.audit.append(
            actor=actor,
            operation="SearchUsers",
            purpose=purpose,
            inputs={"collection": collection, "user_id": user_id, "face_id": face_id, "threshold": threshold},
            results={
                "matches": [{"user_id": m["User"]["UserId"], "similarity": m["Similarity"]} for m in matches],
                "own_user": own_user,
            },
        )
        return {"UserMatches": matches, **ops.model_fields(info.model), **searched}

    def search_users_by_image(
        self,
        collection: str,
        image: LoadedImage,
        *,
        actor: Actor,
        purpose: str | None,
        threshold: float = ops.DEFAULT_THRESHOLD,
        max_users: int = DEFAULT_MAX_USERS,
        quality_filter: QualityFilter = QualityFilter.NONE,
    ) -> dict[str, Any]:
        purpose = ops.check_purpose(purpose)
        ops.check_threshold(threshold, "UserMatchThreshold")
        _check_max_users(max_users)
        info = self.store.describe_collection(collection)
        batch = self.analyzer.analyze([image.rgb])[0].largest_first()
        if len(batch) == 0:
            raise InvalidParameter("no face found in the image to search with")
        ops.require_quality(batch, quality_filter, "the largest face of the image")
        assert batch.embeddings is not None
        matches = self._user_matches(
            collection, info.model, batch.embeddings[:1], threshold=threshold, max_users=max_users
        )
        self.audit.append(
            actor=actor,
            operation="SearchUsersByImage",
            purpose=purpose,
            inputs={"collection": collection, "image_sha256": image.sha256, "threshold": threshold},
            results={
                "matches": [{"user_id": m["User"]["UserId"], "similarity": m["Similarity"]} for m in matches]
            },
        )
        return {
            "UserMatches": matches,
            **ops.model_fields(info.model),
            "SearchedFace": {"FaceDetail": face_detail(batch, 0)},
            "UnsearchedFaces": [
                {"FaceDetails": face_detail(batch, i), "Reasons": ["FACE_NOT_LARGEST"]}
                for i in range(1, len(batch))
            ],
        }


def _check_max_users(value: int) -> None:
    if not 1 <= value <= MAX_USERS:
        raise InvalidParameter(f"MaxUsers must be in [1, {MAX_USERS}], got {value}")
