"""Native-only operations the review console needs beyond the face API.

- ``GetCallerIdentity`` (every role): the caller's key id and role, so the console can say who
  is signed in and offer only the pages that role may use.
- ``VerifyAuditLog`` (auditor): recompute the audit log's hash chain; intact or the first bad
  entry, plus the newest entry's seq/hash/time (what an auditor writes down to detect a later
  truncation).
- ``ExportAuditLog`` (auditor): the stored JSON lines themselves, byte for byte (each with its
  ``hash`` and ``prev_hash``), filtered like ``QueryAuditLog`` and paged by ``seq``.
- ``GetErrorReport`` (every role): the latest per-group error-rate report written by
  ``facestream report errors --save`` (JSON + PNG under ``<home>/reports/``).
- ``GetFaceThumbnails`` (admin, indexer, reviewer, auditor): the enrolled photo thumbnails of
  up to 100 faces of one collection (:mod:`facestream.thumbnails`), null where none is kept.
  Audited: enrolled photos are biometric data.

Verification and export are themselves audited.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facestream.audit import AuditLog
from facestream.errors import AuditIntegrityError, InvalidParameter
from facestream.fairness import error_report_paths
from serve.keys import Role, sorted_roles
from serve.models import CollectionIdT, FaceIdT
from serve.service import ALL_ROLES, AUDIT, ApiService, Operation, Principal

log = logging.getLogger(__name__)

#: entries one ExportAuditLog page may hold (an entry is a few hundred bytes)
MAX_EXPORT = 20_000
#: refuse to hand out a report JSON or PNG bigger than this (they are small; a big one is not ours)
MAX_REPORT_BYTES = 8 * 1024 * 1024


#: who may see enrolled photos: those who enrol them, decide on matches or audit
THUMBNAILS = frozenset({Role.ADMIN, Role.INDEXER, Role.REVIEWER, Role.AUDITOR})


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class GetCallerIdentityRequest(_Req):
    pass


class VerifyAuditLogRequest(_Req):
    pass


class ExportAuditLogRequest(_Req):
    Operation: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z]+$")
    AccessKeyId: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9:_.\-]+$")
    PurposeContains: str | None = Field(None, min_length=1, max_length=500)
    SinceMs: int | None = Field(None, ge=0, le=2**62)
    UntilMs: int | None = Field(None, ge=0, le=2**62)
    FromSeq: int = Field(0, ge=0, le=2**62, description="first sequence number to look at")
    MaxResults: int = Field(5000, ge=1, le=MAX_EXPORT, description="entries in this page")


class GetErrorReportRequest(_Req):
    pass


class GetFaceThumbnailsRequest(_Req):
    CollectionId: CollectionIdT
    FaceIds: list[FaceIdT] = Field(min_length=1, max_length=100)


# ── handlers ─────────────────────────────────────────────────────────────────────────────


def _identity(s: ApiService, r: GetCallerIdentityRequest, p: Principal, _: str | None) -> dict[str, Any]:
    roles = [r.value for r in sorted_roles(p.roles)]
    return {"AccessKeyId": p.access_key_id, "Role": roles[0], "Roles": roles}


def _last_entry(audit: AuditLog) -> dict[str, Any] | None:
    last = None
    for last in audit.entries():  # noqa: B007 - only the final one is wanted
        pass
    return last


def _verify(s: ApiService, r: VerifyAuditLogRequest, p: Principal, _: str | None) -> dict[str, Any]:
    result = s.audit.verify()
    out: dict[str, Any] = {
        "ChainIntact": result.ok,
        "Entries": result.entries,
        "FirstBadSeq": result.first_bad_seq,
        "Reason": result.reason,
        "VerifiedAtMs": int(time.time() * 1000),
        "LastSeq": None,
        "LastHash": None,
        "LastTimestampMs": None,
    }
    if result.ok:
        last = _last_entry(s.audit)
        if last is not None:
            out.update(LastSeq=last.get("seq"), LastHash=last.get("hash"), LastTimestampMs=last.get("ts_ms"))
    else:
        log.error("audit chain broken at seq %s: %s", result.first_bad_seq, result.reason)
    # Appended after the check: a broken chain still gets its verification on the record.
    s.audit.append(
        actor=p.actor,
        operation="VerifyAuditLog",
        results={"intact": result.ok, "entries": result.entries, "first_bad_seq": result.first_bad_seq},
    )
    return out


def _matches(e: dict[str, Any], r: ExportAuditLogRequest) -> bool:
    if r.Operation is not None and e.get("operation") != r.Operation:
        return False
    if r.AccessKeyId is not None and (e.get("actor") or {}).get("key_id") != r.AccessKeyId:
        return False
    if r.PurposeContains is not None and r.PurposeContains not in (e.get("purpose") or ""):
        return False
    ts = e.get("ts_ms", 0)
    if r.SinceMs is not None and ts < r.SinceMs:
        return False
    return not (r.UntilMs is not None and ts > r.UntilMs)


def _export(s: ApiService, r: ExportAuditLogRequest, p: Principal, _: str | None) -> dict[str, Any]:
    if r.SinceMs is not None and r.UntilMs is not None and r.SinceMs > r.UntilMs:
        raise InvalidParameter("SinceMs is after UntilMs")
    lines: list[str] = []
    next_seq: int | None = None
    path = s.audit.path
    if path.exists():
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f):
                if n < r.FromSeq:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    raise AuditIntegrityError(
                        f"audit log line {n + 1} is not JSON; run VerifyAuditLog"
                    ) from None
                if not _matches(entry, r):
                    continue
                if len(lines) == r.MaxResults:
                    next_seq = n
                    break
                lines.append(line.rstrip("\n"))
    s.audit.append(
        actor=p.actor,
        operation="ExportAuditLog",
        inputs={k: v for k, v in r.model_dump().items() if v is not None},
        results={"entries": len(lines), "next_seq": next_seq},
    )
    return {
        "JsonLines": "".join(line + "\n" for line in lines),
        "Count": len(lines),
        "NextSeq": next_seq,
    }


def _finite(obj: Any) -> Any:
    """NaN (a rate over zero pairs) becomes null: JSON has no NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _read_small(path: Path) -> bytes | None:
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size > MAX_REPORT_BYTES:
        raise InvalidParameter(f"{path.name} is {size} bytes, over the {MAX_REPORT_BYTES}-byte limit")
    data: bytes = path.read_bytes()
    return data


def _error_report(s: ApiService, r: GetErrorReportRequest, p: Principal, _: str | None) -> dict[str, Any]:
    json_path, png_path = error_report_paths(s.config.home)
    raw = _read_small(json_path)
    if raw is None:
        return {"Report": None, "Png": None}
    try:
        report = json.loads(raw)
    except ValueError:
        log.error("error report %s is not JSON", json_path)
        report = None
    png = _read_small(png_path)
    return {
        "Report": _finite(report),
        "Png": None if png is None else base64.b64encode(png).decode("ascii"),
    }


def _thumbnails(s: ApiService, r: GetFaceThumbnailsRequest, p: Principal, _: str | None) -> dict[str, Any]:
    from facestream.thumbnails import ThumbnailStore

    s.store.describe_collection(r.CollectionId)  # unknown collection: ResourceNotFound
    store = ThumbnailStore(s.config.state.thumbnails)  # the files IndexFaces keeps
    out = []
    for face_id in dict.fromkeys(r.FaceIds):
        data = store.get(r.CollectionId, face_id)
        out.append({"FaceId": face_id, "Jpeg": None if data is None else base64.b64encode(data).decode()})
    s.audit.append(
        actor=p.actor,
        operation="GetFaceThumbnails",
        inputs={"collection": r.CollectionId, "face_ids": list(dict.fromkeys(r.FaceIds))},
        results={"thumbnails": sum(1 for t in out if t["Jpeg"] is not None)},
    )
    return {"Thumbnails": out}


def console_operations() -> list[Operation]:
    return [
        Operation(
            "GetCallerIdentity",
            GetCallerIdentityRequest,
            ALL_ROLES,
            _identity,
            rekognition=False,
            summary="The calling key's id and role",
        ),
        Operation(
            "VerifyAuditLog",
            VerifyAuditLogRequest,
            AUDIT,
            _verify,
            rekognition=False,
            summary="Recompute the audit log's hash chain; intact, or the first bad entry",
        ),
        Operation(
            "ExportAuditLog",
            ExportAuditLogRequest,
            AUDIT,
            _export,
            rekognition=False,
            summary="The stored audit entries as JSON lines (with their hashes), filtered, paged by seq",
        ),
        Operation(
            "GetErrorReport",
            GetErrorReportRequest,
            ALL_ROLES,
            _error_report,
            rekognition=False,
            summary="The latest per-group error-rate report (facestream report errors --save)",
        ),
        Operation(
            "GetFaceThumbnails",
            GetFaceThumbnailsRequest,
            THUMBNAILS,
            _thumbnails,
            rekognition=False,
            summary="Enrolled photo thumbnails of up to 100 faces of a collection (audited)",
        ),
    ]


__all__ = ["console_operations"]
