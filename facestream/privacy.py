"""Retention and erasure of biometric data, enforced by facestream itself.

Milvus Lite accepts a collection TTL but never enforces it, and a Milvus server's TTL would
delete silently; facestream deletes expired faces itself and writes each deletion to the
audit log. Erasure removes every stored vector of a person (by ExternalImageId or UserId)
from one or every collection; the audit entry keeps the fact of the deletion — who asked,
why, how many faces — with the subject's id hashed, never the data.

The clock is injectable (``now_ms``) so retention is testable without waiting.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from facestream.audit import Actor, AuditLog
from facestream.operations import check_purpose
from facestream.store import FaceStore

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


class MatchEvents(Protocol):
    """Where match events are kept (pipelines.sinks.EventStore): what retention and erasure need."""

    def erase(self, *, external_image_id: str | None = None, face_ids: list[str] | None = None) -> int: ...

    def delete_older_than(self, server_ts_s: float) -> int: ...


def subject_hash(value: str) -> str:
    """What the audit log keeps of an erased subject's id: enough to answer "was X erased?"
    (hash the id you are asked about and compare) without keeping the id itself."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass
class RetentionReport:
    now_ms: int
    deleted: dict[str, int] = field(default_factory=dict)
    deleted_events: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "now_ms": self.now_ms,
            "deleted_faces": self.deleted,
            "total": sum(self.deleted.values()),
            "deleted_events": self.deleted_events,
        }


def enforce_retention(
    store: FaceStore,
    audit: AuditLog,
    actor: Actor,
    *,
    now_ms: int | None = None,
    events: MatchEvents | None = None,
    events_retention_days: int | None = None,
) -> RetentionReport:
    """Delete every face older than its collection's ``retention_days`` and, when given, every
    match event older than ``events_retention_days``; audit what was removed."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    report = RetentionReport(now_ms=now)
    if events is not None and events_retention_days is not None:
        report.deleted_events = events.delete_older_than((now - events_retention_days * DAY_MS) / 1000.0)
        if report.deleted_events:
            audit.append(
                actor=actor,
                operation="EnforceRetention",
                inputs={"events_retention_days": events_retention_days, "now_ms": now},
                results={"deleted_events": report.deleted_events},
            )
    for name in store.list_collections():
        info = store.describe_collection(name)
        if info.retention_days is None:
            continue
        expired = store.faces_older_than(name, now - info.retention_days * DAY_MS)
        deleted = store.delete_faces(name, expired) if expired else []
        report.deleted[name] = len(deleted)
        if deleted:
            audit.append(
                actor=actor,
                operation="EnforceRetention",
                inputs={"collection": name, "retention_days": info.retention_days, "now_ms": now},
                results={"deleted_face_ids": deleted},
            )
            log.info(
                "retention: deleted %d faces older than %d days from %s",
                len(deleted),
                info.retention_days,
                name,
            )
    return report


def erase_person(
    store: FaceStore,
    audit: AuditLog,
    actor: Actor,
    *,
    purpose: str | None,
    external_image_id: str | None = None,
    user_id: str | None = None,
    collections: list[str] | None = None,
    events: MatchEvents | None = None,
) -> dict[str, Any]:
    """Delete every face of one person (by ExternalImageId and/or UserId) from ``collections``
    (default: all). Returns per-collection counts; the audit entry holds the hashed id."""
    purpose = check_purpose(purpose)
    from facestream.errors import InvalidParameter

    if external_image_id is None and user_id is None:
        raise InvalidParameter("erasure needs an ExternalImageId or a UserId")
    targets = collections if collections is not None else store.list_collections()
    deleted: dict[str, int] = {}
    all_removed: set[str] = set()
    for name in targets:
        removed: set[str] = set()
        if external_image_id is not None:
            removed |= set(store.delete_by_external_id(name, external_image_id))
        if user_id is not None:
            faces = store.user_face_ids(name, user_id)
            removed |= set(store.delete_faces(name, faces)) if faces else set()
        deleted[name] = len(removed)
        all_removed |= removed
    # Match events name the matched face and its ExternalImageId: they go too.
    deleted_events = (
        events.erase(external_image_id=external_image_id, face_ids=sorted(all_removed)) if events else 0
    )
    audit.append(
        actor=actor,
        operation="ErasePerson",
        purpose=purpose,
        inputs={
            "external_image_id_sha256": subject_hash(external_image_id) if external_image_id else None,
            "user_id_sha256": subject_hash(user_id) if user_id else None,
            "collections": targets,
        },
        results={"deleted_faces": deleted, "deleted_events": deleted_events},
    )
    return {"DeletedFaces": deleted, "Total": sum(deleted.values()), "DeletedEvents": deleted_events}
