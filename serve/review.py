"""Human confirmation over HTTP: review policies, the candidate queue, decisions, previews.

Native API only (``POST /v1/<Operation>``). Reviewers are access keys with the ``reviewer``
role: the key id is the reviewer's identity, so "two distinct reviewers" means two keys, and
the same key cannot decide twice (409 ``AlreadyReviewedException``). Every decision and every
release is audited. See :mod:`pipelines.review` for the rules.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from facestream.errors import CollectionNotFound, ResourceNotFound
from pipelines.review import Decision, ReviewStore, Status, effective_required, review_path
from pipelines.worker import preview_path
from serve.keys import Role
from serve.service import ADMIN, ALL_ROLES, ApiService, Operation, Principal

_PlainText = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]
_CollectionId = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_.\-]{1,255}$")]
_EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,512}$")]
_ProcessorName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")]

REVIEW = frozenset({Role.REVIEWER})
READ_CANDIDATES = frozenset({Role.REVIEWER, Role.AUDITOR, Role.ADMIN})
PREVIEW = frozenset({Role.VIEWER, Role.AUDITOR, Role.REVIEWER})


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class PutReviewPolicyRequest(_Req):
    CollectionId: _CollectionId
    RequiredConfirmations: int = Field(ge=0, le=5, description="distinct reviewers per match; 0: none")


class DescribeReviewPolicyRequest(_Req):
    CollectionId: _CollectionId


class ListMatchCandidatesRequest(_Req):
    Status: Literal["PENDING", "CONFIRMED", "REJECTED"] | None = None
    StreamProcessorName: _ProcessorName | None = None
    MaxResults: int = Field(100, ge=1, le=1000)


class MatchCandidateRequest(_Req):
    EventId: _EventId


class ReviewMatchCandidateRequest(_Req):
    EventId: _EventId
    Decision: Literal["CONFIRM", "REJECT"]
    Reason: _PlainText = ""


class GetStreamPreviewRequest(_Req):
    Name: _ProcessorName


_lock = threading.Lock()
_stores: dict[Path, ReviewStore] = {}


def review_store(s: ApiService) -> ReviewStore:
    """The replica's review store (one SQLite connection per state directory)."""
    path = review_path(s.config.home)
    with _lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = ReviewStore(path)
        return store


def _jpeg(data: bytes | None) -> dict[str, str] | None:
    return None if data is None else {"Jpeg": base64.b64encode(data).decode()}


def _policy(s: ApiService, collection: str) -> dict[str, Any]:
    if collection not in s.store.list_collections():
        raise CollectionNotFound(f"collection {collection!r} does not exist")
    info = s.store.describe_collection(collection)
    explicit = review_store(s).policy(collection)
    return {
        "CollectionId": collection,
        "RequiredConfirmations": effective_required(explicit, info.require_confirmation),
        "Explicit": explicit is not None,
    }


def _put_policy(s: ApiService, r: PutReviewPolicyRequest, p: Principal, _: str | None) -> dict[str, Any]:
    _policy(s, r.CollectionId)  # the collection must exist
    review_store(s).set_policy(r.CollectionId, r.RequiredConfirmations, by=p.access_key_id)
    s.audit.append(
        actor=p.actor,
        operation="PutReviewPolicy",
        inputs={"collection": r.CollectionId, "required_confirmations": r.RequiredConfirmations},
    )
    return _policy(s, r.CollectionId)


def _describe_policy(
    s: ApiService, r: DescribeReviewPolicyRequest, p: Principal, _: str | None
) -> dict[str, Any]:
    return _policy(s, r.CollectionId)


def _list(s: ApiService, r: ListMatchCandidatesRequest, p: Principal, _: str | None) -> dict[str, Any]:
    found = review_store(s).candidates(
        status=Status(r.Status) if r.Status else None, processor=r.StreamProcessorName, limit=r.MaxResults
    )
    s.audit.append(
        actor=p.actor,
        operation="ListMatchCandidates",
        inputs={k: v for k, v in r.model_dump().items() if v is not None},
        results={"candidates": len(found)},
    )
    return {"Candidates": [c.to_json() for c in found]}


def _get(s: ApiService, r: MatchCandidateRequest, p: Principal, _: str | None) -> dict[str, Any]:
    store = review_store(s)
    cand = store.get(r.EventId)
    enrolled: list[dict[str, Any]] = []
    try:
        faces = s.store.get_faces(cand.collection, [cand.face_id])
        if faces and faces[0].user_id:
            ids = s.store.user_face_ids(cand.collection, faces[0].user_id)[:8]
            faces = faces + [f for f in s.store.get_faces(cand.collection, ids) if f.face_id != cand.face_id]
    except (CollectionNotFound, ResourceNotFound):
        faces = []  # the person was erased or the collection deleted since
    thumbs = _thumbnails(s)
    for f in faces:
        enrolled.append(
            {
                "FaceId": f.face_id,
                "ExternalImageId": f.external_image_id,
                "UserId": f.user_id,
                **(_jpeg(thumbs.get(cand.collection, f.face_id) if thumbs else None) or {"Jpeg": None}),
            }
        )
    s.audit.append(
        actor=p.actor,
        operation="GetMatchCandidate",
        inputs={"event_id": r.EventId},
        results={"face_id": cand.face_id, "status": cand.status.value},
    )
    return {
        "Candidate": cand.to_json(),
        "StreamFace": _jpeg(store.crop(r.EventId)),
        "EnrolledFaces": enrolled,
    }


def _thumbnails(s: ApiService) -> Any:
    try:
        from facestream.thumbnails import ThumbnailStore
    except ImportError:  # pragma: no cover - older installs without enrolled thumbnails
        return None
    return ThumbnailStore(s.config.state.thumbnails)


def _review(s: ApiService, r: ReviewMatchCandidateRequest, p: Principal, _: str | None) -> dict[str, Any]:
    cand, released = review_store(s).decide(
        r.EventId, reviewer=p.access_key_id, role=p.role.value, decision=Decision(r.Decision), reason=r.Reason
    )
    s.audit.append(
        actor=p.actor,
        operation="ReviewMatchCandidate",
        inputs={"event_id": r.EventId, "decision": r.Decision, "reason": r.Reason},
        results={
            "status": cand.status.value,
            "confirmations": len(cand.confirmations),
            "required": cand.required,
            "face_id": cand.face_id,
        },
    )
    if released:
        s.audit.append(
            actor=p.actor,
            operation="ReleaseMatchAlert",
            inputs={"event_id": r.EventId, "stream_processor": cand.processor},
            results={"confirmed_by": cand.confirmations},
        )
    return {"Candidate": cand.to_json()}


def _preview(s: ApiService, r: GetStreamPreviewRequest, p: Principal, _: str | None) -> dict[str, Any]:
    path = preview_path(s.config.home, r.Name)
    if not path.is_file():
        return {"Name": r.Name, "Jpeg": None, "Timestamp": None}
    return {
        "Name": r.Name,
        "Jpeg": base64.b64encode(path.read_bytes()).decode(),
        "Timestamp": round(path.stat().st_mtime, 3),
    }


def review_operations() -> list[Operation]:
    return [
        Operation("PutReviewPolicy", PutReviewPolicyRequest, ADMIN, _put_policy, rekognition=False),
        Operation(
            "DescribeReviewPolicy",
            DescribeReviewPolicyRequest,
            ALL_ROLES,
            _describe_policy,
            rekognition=False,
        ),
        Operation(
            "ListMatchCandidates",
            ListMatchCandidatesRequest,
            READ_CANDIDATES,
            _list,
            rekognition=False,
            summary="Candidate matches of collections that require human confirmation",
        ),
        Operation("GetMatchCandidate", MatchCandidateRequest, READ_CANDIDATES, _get, rekognition=False),
        Operation(
            "ReviewMatchCandidate",
            ReviewMatchCandidateRequest,
            REVIEW,
            _review,
            rekognition=False,
            summary="Confirm or reject a candidate; N distinct reviewers release the alert",
        ),
        Operation("GetStreamPreview", GetStreamPreviewRequest, PREVIEW, _preview, rekognition=False),
    ]


__all__ = ["review_operations", "review_store"]
