"""Rekognition Video's stored-video result shapes: GetFaceSearch and GetFaceDetection.

Faces are :func:`facestream.rekognition.face_detail` dicts (FaceDetail), timestamps are
milliseconds from the start of the file. facestream finds faces, not bodies: a Person's
``BoundingBox`` is its face's box.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Literal

from facestream.errors import InvalidParameter

JobStatus = Literal["IN_PROGRESS", "SUCCEEDED", "FAILED"]
SORT_BY = ("INDEX", "TIMESTAMP")
MAX_RESULTS_LIMIT = 1000


def person_match(
    timestamp_ms: float, index: int, detail: dict[str, Any], face_matches: list[dict[str, Any]]
) -> dict[str, Any]:
    """One ``PersonMatch``: a person seen at a time, with the collection faces it matches."""
    return {
        "Timestamp": round(timestamp_ms),
        "Person": {"Index": index, "BoundingBox": detail["BoundingBox"], "Face": detail},
        "FaceMatches": face_matches,
    }


def face_match(similarity: float, face: dict[str, Any]) -> dict[str, Any]:
    """``FaceMatch``: ``face`` is ``Face`` {FaceId, ExternalImageId, BoundingBox, Confidence, ImageId}."""
    return {"Similarity": round(float(similarity), 5), "Face": face}


def sort_persons(persons: Sequence[dict[str, Any]], sort_by: str = "TIMESTAMP") -> list[dict[str, Any]]:
    if sort_by not in SORT_BY:
        raise InvalidParameter(f"SortBy {sort_by!r}: expected one of {list(SORT_BY)}")
    if sort_by == "INDEX":
        return sorted(persons, key=lambda p: (p["Person"]["Index"], p["Timestamp"]))
    return sorted(persons, key=lambda p: (p["Timestamp"], p["Person"]["Index"]))


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode() + b"==").decode())
        offset = int(data["o"])
    except (ValueError, KeyError, TypeError):
        raise InvalidParameter("NextToken is not one this service issued") from None
    if offset < 0:
        raise InvalidParameter("NextToken is not one this service issued")
    return offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def page(
    items: Sequence[dict[str, Any]], max_results: int | None, next_token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """``MaxResults`` (1-1000, default 1000) items from ``NextToken``; the next token or None."""
    limit = MAX_RESULTS_LIMIT if max_results is None else max_results
    if not 1 <= limit <= MAX_RESULTS_LIMIT:
        raise InvalidParameter(f"MaxResults must be 1-{MAX_RESULTS_LIMIT}, got {max_results}")
    start = _offset(next_token)
    chunk = list(items[start : start + limit])
    return chunk, (_token(start + limit) if start + limit < len(items) else None)


def get_face_search(
    status: JobStatus,
    *,
    metadata: dict[str, Any] | None,
    persons: Sequence[dict[str, Any]],
    message: str | None = None,
    sort_by: str = "TIMESTAMP",
    max_results: int | None = None,
    next_token: str | None = None,
) -> dict[str, Any]:
    """GetFaceSearch's response."""
    chunk, token = page(sort_persons(persons, sort_by), max_results, next_token)
    out: dict[str, Any] = {"JobStatus": status}
    if message:
        out["StatusMessage"] = message
    if metadata is not None:
        out["VideoMetadata"] = metadata
    out["Persons"] = chunk
    if token:
        out["NextToken"] = token
    return out


def get_face_detection(
    status: JobStatus,
    *,
    metadata: dict[str, Any] | None,
    faces: Sequence[dict[str, Any]],
    message: str | None = None,
    max_results: int | None = None,
    next_token: str | None = None,
) -> dict[str, Any]:
    """GetFaceDetection's response: ``Faces`` [{Timestamp, Face FaceDetail}] by time."""
    ordered = sorted(faces, key=lambda f: f["Timestamp"])
    chunk, token = page(ordered, max_results, next_token)
    out: dict[str, Any] = {"JobStatus": status}
    if message:
        out["StatusMessage"] = message
    if metadata is not None:
        out["VideoMetadata"] = metadata
    out["Faces"] = chunk
    if token:
        out["NextToken"] = token
    return out
