"""Least privilege: every role x every registered operation -> allowed or 403, over real HTTP.

The expected table is written out here, not derived from the code: a change of who may do
what must change this file too. Every operation the running server serves (its OpenAPI
paths) and every operation in the Python registries must have a row; a row for an
operation that is not registered yet is kept (it is checked once it exists).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from serve.keys import Role
from serve.service import OPERATIONS
from serve.streams import stream_operations
from tests.api.conftest import PURPOSE, Api

pytestmark = pytest.mark.slow

ALL = "*"  # every role the server knows
#: operation -> roles allowed to call it
EXPECTED: dict[str, set[str] | str] = {
    # collections and faces
    "CreateCollection": {"admin"},
    "DeleteCollection": {"admin"},
    "ListCollections": ALL,
    "DescribeCollection": ALL,
    "IndexFaces": {"indexer"},
    "ListFaces": ALL,
    "DeleteFaces": {"indexer"},
    "SearchFaces": {"searcher"},
    "SearchFacesByImage": {"searcher"},
    "CompareFaces": {"searcher"},
    "DetectFaces": {"searcher"},
    # users
    "CreateUser": {"indexer"},
    "DeleteUser": {"indexer"},
    "ListUsers": ALL,
    "AssociateFaces": {"indexer"},
    "DisassociateFaces": {"indexer"},
    "SearchUsers": {"searcher"},
    "SearchUsersByImage": {"searcher"},
    # keys and audit
    "CreateAccessKey": {"admin"},
    "ListAccessKeys": {"admin"},
    "RevokeAccessKey": {"admin"},
    "QueryAuditLog": {"auditor"},
    "ResolveAuditSubject": {"auditor"},
    # stream processors and their events
    "CreateStreamProcessor": {"admin"},
    "StartStreamProcessor": {"admin"},
    "StopStreamProcessor": {"admin"},
    "DeleteStreamProcessor": {"admin"},
    "UpdateStreamProcessor": {"admin"},
    "DescribeStreamProcessor": {"viewer", "auditor"},
    "ListStreamProcessors": {"viewer", "auditor"},
    "QueryMatchEvents": {"auditor"},
    # human review of matches
    "PutReviewPolicy": {"admin"},
    "DescribeReviewPolicy": ALL,
    "ListMatchCandidates": {"reviewer", "auditor", "admin"},
    "GetMatchCandidate": {"reviewer", "auditor", "admin"},
    "ReviewMatchCandidate": {"reviewer"},
    "GetStreamPreview": {"viewer", "auditor", "reviewer"},
    # erasure
    "ErasePerson": {"admin"},
    # the operator console's operations
    "GetCallerIdentity": ALL,
    "VerifyAuditLog": {"auditor"},
    "ExportAuditLog": {"auditor"},
    "GetErrorReport": ALL,
    "GetFaceThumbnails": {"admin", "indexer", "reviewer", "auditor"},
}


def _registered() -> set[str]:
    """Every operation in the Python registries (the optional ones if their module exists)."""
    ops = [*OPERATIONS, *stream_operations()]
    try:
        from serve.review import review_operations
    except ImportError:
        pass
    else:
        ops += review_operations()
    try:
        from serve.console import console_operations
    except ImportError:
        pass
    else:
        ops += console_operations()
    return {op.name for op in ops}


def _allowed(op: str) -> set[str]:
    roles = EXPECTED[op]
    return {r.value for r in Role} if roles == ALL else set(roles)


def _served_operations(api: Api) -> set[str]:
    schema = requests.get(f"{api.url}/openapi.json", headers=api.keys["admin"].bearer, timeout=60).json()
    return {p.split("/")[2] for p in schema["paths"] if p.startswith("/v1/")}


def test_every_registered_operation_has_a_row(sapi: Api) -> None:
    registered = _registered()
    served = _served_operations(sapi)
    assert registered <= served, registered - served
    missing = sorted(served - set(EXPECTED))
    assert not missing, f"operations without a row in EXPECTED (add who may call them): {missing}"
    # Every role the code defines appears somewhere in the table (a new role must be placed).
    named = {r for v in EXPECTED.values() if v != ALL for r in v}
    assert {r.value for r in Role} <= named | {"viewer"}, {r.value for r in Role} - named


def test_role_x_operation_matrix_over_http(sapi: Api) -> None:
    served = sorted(_served_operations(sapi) & set(EXPECTED))
    denied_before = _denials(sapi)
    session = requests.Session()
    wrong: list[str] = []
    calls = 0
    for op in served:
        allowed = _allowed(op)
        for role in sorted(sapi.keys):
            headers = {**sapi.keys[role].bearer, "X-Facestream-Purpose": PURPOSE + " role matrix"}
            # An empty body: a denied role must get 403 before any validation, an allowed one
            # gets past authorisation (a 400 for the missing fields, or 200 for a harmless list).
            resp = session.post(f"{sapi.url}/v1/{op}", json={}, headers=headers, timeout=120)
            calls += 1
            got = resp.status_code
            if role in allowed:
                if got in (401, 403) or got >= 500:
                    wrong.append(f"{op} as {role}: expected allowed, got {got} {resp.text[:200]}")
            elif got != 403 or resp.json()["error"]["code"] != "AccessDeniedException":
                wrong.append(f"{op} as {role}: expected 403, got {got} {resp.text[:200]}")
    assert not wrong, "\n".join(wrong)
    n_denied = sum(1 for op in served for role in sapi.keys if role not in _allowed(op))
    # Every refusal is audited (AccessDenied, naming the operation).
    assert _denials(sapi) - denied_before == n_denied
    assert calls == len(served) * len(sapi.keys)


def test_wire_protocol_refuses_the_same_roles(sapi: Api) -> None:
    """The Rekognition face (SigV4) enforces the same table: 403 AccessDeniedException."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    ops = [o for o in OPERATIONS if o.rekognition and o.name in EXPECTED]
    wrong = []
    for op in ops:
        for role in ("viewer", "searcher", "indexer", "admin"):
            key = sapi.keys[role]
            req = AWSRequest(
                method="POST",
                url=f"{sapi.url}/",
                data=b"{}",
                headers={
                    "X-Amz-Target": f"RekognitionService.{op.name}",
                    "Content-Type": "application/x-amz-json-1.1",
                },
            )
            SigV4Auth(Credentials(key.key_id, key.secret), "rekognition", "us-east-1").add_auth(req)
            resp = requests.post(req.url, data=req.body, headers=dict(req.headers), timeout=120)
            denied = resp.status_code == 403 and resp.json().get("__type") == "AccessDeniedException"
            if (role in _allowed(op.name)) == denied:
                wrong.append(f"{op.name} as {role}: {resp.status_code} {resp.text[:150]}")
    assert not wrong, "\n".join(wrong)


def _denials(api: Api) -> int:
    from facestream.audit import AuditLog

    entries: list[dict[str, Any]] = AuditLog(api.home / "audit.jsonl").query(
        operation="AccessDenied", limit=100_000
    )
    return len(entries)
