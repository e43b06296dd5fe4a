"""Retention and erasure of biometric data, enforced by facestream itself.

Milvus Lite accepts a collection TTL but never enforces it, and a Milvus server's TTL would
delete silently; facestream deletes expired faces itself and writes each deletion to the
audit log. Erasure removes every stored vector of a person (by ExternalImageId or UserId)
from one or every collection; the audit entry keeps the fact of the deletion — who asked,
why, how many faces — with the subject's id as a keyed pseudonym whose secret erasure destroys
(crypto-shredding, :mod:`facestream.subjects`): every audit entry that named the person stays
in the chain, which still verifies, but none can be tied back to them.

Given the state directory (``home``), erasure also reaches everything else that holds the
person: match events (``events.sqlite3``), records still waiting in every processor's spool
(``spool/*.sqlite3``), JSON-lines sink files (those under ``outputs/``, every ``jsonl:`` sink a
spool or the processor registry names, and any given explicitly), evidence frames of their
events (``evidence/``), enrolled thumbnails of their faces (``thumbnails/``) and review
candidates (``review.sqlite3``). SQLite files are rebuilt afterwards and Milvus collections
compacted, so the deleted bytes do not linger in free pages, WALs or segment files.

The clock is injectable (``now_ms``) so retention is testable without waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from facestream.audit import Actor, AuditLog
from facestream.operations import check_purpose
from facestream.paths import StateHome
from facestream.store import FaceStore

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


class MatchEvents(Protocol):
    """Where match events are kept (pipelines.sinks.EventStore): what retention and erasure need."""

    def erase(self, *, external_image_id: str | None = None, face_ids: list[str] | None = None) -> int: ...

    def delete_older_than(self, server_ts_s: float) -> int: ...


@dataclass
class RetentionReport:
    now_ms: int
    deleted: dict[str, int] = field(default_factory=dict)
    deleted_events: int = 0
    deleted_evidence: int = 0
    deleted_thumbnails: int = 0
    deleted_candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "now_ms": self.now_ms,
            "deleted_faces": self.deleted,
            "total": sum(self.deleted.values()),
            "deleted_events": self.deleted_events,
            "deleted_evidence_frames": self.deleted_evidence,
            "deleted_thumbnails": self.deleted_thumbnails,
            "deleted_candidates": self.deleted_candidates,
        }


def enforce_retention(
    store: FaceStore,
    audit: AuditLog,
    actor: Actor,
    *,
    now_ms: int | None = None,
    events: MatchEvents | None = None,
    events_retention_days: int | None = None,
    home: Path | None = None,
) -> RetentionReport:
    """Delete every face older than its collection's ``retention_days`` (with its thumbnail)
    and, when given, every match event older than ``events_retention_days`` — and with them
    (``home`` given) evidence frames and review candidates of that age; audit what was removed."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    report = RetentionReport(now_ms=now)
    if events_retention_days is not None:
        cutoff_s = (now - events_retention_days * DAY_MS) / 1000.0
        if events is not None:
            report.deleted_events = events.delete_older_than(cutoff_s)
        if home is not None:
            report.deleted_evidence = _evidence_older_than(home, cutoff_s)
            report.deleted_candidates = _candidates_older_than(home, cutoff_s)
        if report.deleted_events or report.deleted_evidence or report.deleted_candidates:
            audit.append(
                actor=actor,
                operation="EnforceRetention",
                inputs={"events_retention_days": events_retention_days, "now_ms": now},
                results={
                    "deleted_events": report.deleted_events,
                    "deleted_evidence_frames": report.deleted_evidence,
                    "deleted_candidates": report.deleted_candidates,
                },
            )
    thumbs = _thumbnails(home) if home is not None else None
    for name in store.list_collections():
        info = store.describe_collection(name)
        if info.retention_days is None:
            continue
        expired = store.faces_older_than(name, now - info.retention_days * DAY_MS)
        deleted = store.delete_faces(name, expired) if expired else []
        report.deleted[name] = len(deleted)
        if thumbs is not None and deleted:
            report.deleted_thumbnails += thumbs.delete(name, deleted)
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


def _thumbnails(home: Path) -> Any:
    from facestream.thumbnails import ThumbnailStore

    return ThumbnailStore(StateHome(home).thumbnails)


def _evidence_older_than(home: Path, cutoff_s: float) -> int:
    root = StateHome(home).evidence
    if not root.is_dir():
        return 0
    from pipelines.evidence import EvidenceStore

    ev = EvidenceStore(root)
    try:
        return ev.delete_older_than(cutoff_s)
    finally:
        ev.close()


def _review_store(home: Path) -> Any | None:
    """The review queue (pipelines/review.py), if this install has it and the file exists."""
    path = StateHome(home).review_db
    if not path.exists():
        return None
    try:
        from pipelines.review import ReviewStore
    except ImportError:  # an install without human confirmation
        return None
    return ReviewStore(path)


def _candidates_older_than(home: Path, cutoff_s: float) -> int:
    rs = _review_store(home)
    if rs is None:
        return 0
    try:
        return int(rs.delete_older_than(cutoff_s))
    finally:
        rs.close()


@dataclass
class ErasureReport:
    """What one erasure removed, per store (counts only: the report is audited)."""

    faces: dict[str, int] = field(default_factory=dict)
    events: int = 0
    spooled: int = 0
    jsonl_lines: int = 0
    jsonl_files: int = 0
    evidence_frames: int = 0
    thumbnails: int = 0
    candidates: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "DeletedFaces": self.faces,
            "Total": sum(self.faces.values()),
            "DeletedEvents": self.events,
            "DeletedSpooledRecords": self.spooled,
            "DeletedJsonlLines": self.jsonl_lines,
            "JsonlFilesRewritten": self.jsonl_files,
            "DeletedEvidenceFrames": self.evidence_frames,
            "DeletedThumbnails": self.thumbnails,
            "DeletedCandidates": self.candidates,
        }


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
    home: Path | None = None,
    jsonl_paths: Sequence[Path] = (),
    events_path: Path | None = None,
) -> dict[str, Any]:
    """Delete every face of one person (by ExternalImageId and/or UserId) from ``collections``
        (default: all) and, with ``home``, everything else that holds them (see the module doc).
    ``events_path``: the event store when it is not ``<home>/events.sqlite3``.

        Returns per-store counts (:meth:`ErasureReport.to_dict`); the audit entry holds the id's
        pseudonym and the counts, and the pseudonym secret is then destroyed (every earlier entry
        naming the person becomes unresolvable too).
    """
    purpose = check_purpose(purpose)
    from facestream.errors import InvalidParameter

    if external_image_id is None and user_id is None:
        raise InvalidParameter("erasure needs an ExternalImageId or a UserId")
    known = store.list_collections()
    targets = collections if collections is not None else known
    missing = sorted(set(targets) - set(known))
    if missing:
        from facestream.errors import CollectionNotFound

        raise CollectionNotFound(f"collections {missing} do not exist (existing: {sorted(known)})")
    rep = ErasureReport()
    all_removed: set[str] = set()
    for name in targets:
        removed: set[str] = set()
        if external_image_id is not None:
            removed |= set(store.delete_by_external_id(name, external_image_id))
        if user_id is not None:
            faces = store.user_face_ids(name, user_id)
            removed |= set(store.delete_faces(name, faces)) if faces else set()
        rep.faces[name] = len(removed)
        all_removed |= removed
        if removed:
            _compact(store, name)
    face_ids = sorted(all_removed)
    owned_events = None
    ev_path = events_path or (StateHome(home).events_db if home is not None else None)
    if events is None and ev_path is not None and ev_path.exists():
        from pipelines.sinks import EventStore

        events = owned_events = EventStore(ev_path)
    event_ids: set[str] = set()
    try:
        if events is not None:
            ids_of = getattr(events, "event_ids_of", None)
            if ids_of is not None:
                event_ids.update(ids_of(external_image_id=external_image_id, face_ids=face_ids))
            # Match events name the matched face and its ExternalImageId: they go too.
            rep.events = events.erase(external_image_id=external_image_id, face_ids=face_ids)
    finally:
        if owned_events is not None:
            owned_events.close()
            _scrub(ev_path)
    if home is not None:
        _erase_under_home(home, rep, event_ids, external_image_id, face_ids, jsonl_paths)
    elif jsonl_paths:
        _erase_jsonl_files(set(jsonl_paths), rep, event_ids, external_image_id, face_ids)
    audit.append(
        actor=actor,
        operation="ErasePerson",
        purpose=purpose,
        inputs={
            # Written as pseudonyms (facestream.audit), whose secrets are shredded just below.
            "external_image_id": external_image_id,
            "user_id": user_id,
            "collections": targets,
        },
        results={
            "deleted_faces": rep.faces,
            "deleted_events": rep.events,
            "deleted_spooled_records": rep.spooled,
            "deleted_jsonl_lines": rep.jsonl_lines,
            "deleted_evidence_frames": rep.evidence_frames,
            "deleted_thumbnails": rep.thumbnails,
            "deleted_candidates": rep.candidates,
        },
    )
    # Crypto-shredding: with the secrets gone, no audit entry (this one included) can be tied
    # back to the person; the chain is untouched and still verifies.
    if external_image_id is not None:
        audit.shred_subject("external_image_id", external_image_id)
    if user_id is not None:
        audit.shred_subject("user_id", user_id)
    return rep.to_dict()


def _compact(store: Any, collection: str) -> None:
    """Rewrite the collection's segments so the deleted rows are gone from disk too."""
    compact = getattr(store, "compact", None)
    if compact is None:
        log.warning("store %s cannot compact; deleted rows stay on disk until Milvus compacts", store)
        return
    compact(collection)


def _scrub(path: Path | None) -> None:
    if path is None or not path.exists():
        return
    import sqlite3

    from pipelines.sinks import scrub_sqlite

    try:
        scrub_sqlite(path)
    except sqlite3.Error as exc:  # busy: the rows are deleted; their bytes go at the next VACUUM
        log.warning("could not rebuild %s after erasure: %s", path, exc)


def jsonl_sink_paths(home: Path) -> set[Path]:
    """Every JSON-lines sink file this deployment is known to write."""
    state = StateHome(home)
    paths = {p for p in state.outputs.rglob("*.jsonl")} if state.outputs.is_dir() else set()
    spool_dir = state.spool_dir
    if spool_dir.is_dir():
        from pipelines.sinks import Spool

        for sp in sorted(spool_dir.glob("*.sqlite3")):
            spool = Spool(sp)
            try:
                names = spool.sink_names()
            finally:
                spool.close()
            paths |= {Path(n.removeprefix("jsonl:")) for n in names if n.startswith("jsonl:")}
    reg = state.processor_registry
    if reg.exists():
        from pipelines.config import JsonlSinkConfig
        from pipelines.manager import ProcessorRegistry

        registry = ProcessorRegistry(reg)
        for name in registry.names():
            try:
                settings = registry.settings(name)
            except (ValueError, KeyError) as exc:
                log.warning("processor %s: settings unreadable (%s); its sinks are not searched", name, exc)
                continue
            paths |= {s.path for s in settings.sinks if isinstance(s, JsonlSinkConfig)}
    return paths


def _erase_jsonl_files(
    paths: set[Path],
    rep: ErasureReport,
    event_ids: set[str],
    external_image_id: str | None,
    face_ids: list[str],
) -> None:
    from pipelines.sinks import erase_jsonl

    for path in sorted(paths):
        n, ids = erase_jsonl(path, external_image_id=external_image_id, face_ids=face_ids)
        rep.jsonl_lines += n
        rep.jsonl_files += n > 0
        event_ids.update(ids)


def _erase_under_home(
    home: Path,
    rep: ErasureReport,
    event_ids: set[str],
    external_image_id: str | None,
    face_ids: list[str],
    jsonl_paths: Sequence[Path],
) -> None:
    from pipelines.sinks import Spool

    # Spools: records not yet delivered.
    state = StateHome(home)
    spool_dir = state.spool_dir
    for sp in sorted(spool_dir.glob("*.sqlite3")) if spool_dir.is_dir() else []:
        spool = Spool(sp)
        try:
            n, ids = spool.erase(external_image_id=external_image_id, face_ids=face_ids)
        finally:
            spool.close()
        rep.spooled += n
        event_ids.update(ids)
        if n:
            _scrub(sp)
    _erase_jsonl_files(jsonl_sink_paths(home) | set(jsonl_paths), rep, event_ids, external_image_id, face_ids)
    # Review candidates (pipelines/review.py): their EventIds first, for the evidence frames.
    rs = _review_store(home)
    if rs is not None:
        try:
            for c in rs.candidates(limit=10_000):
                if c.face_id in face_ids or (
                    external_image_id is not None and c.external_image_id == external_image_id
                ):
                    event_ids.add(c.event_id)
            rep.candidates = int(rs.erase(external_image_id=external_image_id, face_ids=face_ids))
        finally:
            rs.close()
        if rep.candidates:
            _scrub(state.review_db)
    # Evidence frames of their events (and any recorded as showing them).
    ev_root = state.evidence
    if ev_root.is_dir():
        from pipelines.evidence import EvidenceStore

        ev = EvidenceStore(ev_root)
        try:
            event_ids.update(ev.event_ids_of(external_image_id=external_image_id, face_ids=face_ids))
            rep.evidence_frames = ev.erase(sorted(event_ids))
        finally:
            ev.close()
        _scrub(ev_root / "index.sqlite3")
    rep.thumbnails = _thumbnails(home).delete_everywhere(face_ids)
