"""Erasure reaches the audit log without breaking it (issue 18 item 6), over the running API.

A person is indexed (ExternalImageId), made a user (UserId), searched for; the audit log holds
only keyed pseudonyms of both ids, which an auditor can resolve while the person is live. After
ErasePerson (by ExternalImageId, then by UserId) the chain still verifies (VerifyAuditLog and
``facestream audit verify``), neither id appears in any entry, in QueryAuditLog or in an
ExportAuditLog export, and the pseudonyms left in the chain resolve to nobody; another person's
pseudonym still resolves.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
import requests

from facestream.audit import AuditLog
from serve.keys import Role
from tests.api.conftest import Api
from tests.helpers import face, run_cli

pytestmark = pytest.mark.slow

OBAMA = "face_recognition/tests/test_images/obama.jpg"
OBAMA3 = "face_recognition/tests/test_images/obama3.jpg"
BIDEN = "face_recognition/tests/test_images/biden.jpg"


def _img(rel: str) -> dict[str, str]:
    return {"Bytes": base64.b64encode(face(rel).read_bytes()).decode("ascii")}


def test_erasure_shreds_the_audit_pseudonyms_and_the_chain_verifies(api: Api) -> None:
    tag = secrets.token_hex(4)
    ext, user, other = f"erase-me-{tag}", f"user-erase-{tag}", f"keep-me-{tag}"
    col = f"erasure-{tag}"
    key = api.keystore.create(
        [Role.ADMIN, Role.INDEXER, Role.SEARCHER], "tests/api erasure", purpose=f"dsar {tag}"
    )
    bearer = {"Authorization": f"Bearer {key.access_key_id}:{key.secret_access_key}"}
    auditor = api.keys["auditor"].bearer

    def call(op: str, body: dict[str, Any], headers: dict[str, str] = bearer, status: int = 200) -> Any:
        r = requests.post(f"{api.url}/v1/{op}", json=body, headers=headers, timeout=300)
        assert r.status_code == status, (op, r.status_code, r.text[:300])
        return r.json()

    call("CreateCollection", {"CollectionId": col})
    fid = call("IndexFaces", {"CollectionId": col, "Image": _img(OBAMA), "ExternalImageId": ext})[
        "FaceRecords"
    ][0]["Face"]["FaceId"]
    call("IndexFaces", {"CollectionId": col, "Image": _img(BIDEN), "ExternalImageId": other})
    call("CreateUser", {"CollectionId": col, "UserId": user})
    call("AssociateFaces", {"CollectionId": col, "UserId": user, "FaceIds": [fid]})
    call("SearchFacesByImage", {"CollectionId": col, "Image": _img(OBAMA3)})
    call("SearchUsers", {"CollectionId": col, "UserId": user, "UserMatchThreshold": 0})
    call("SearchUsersByImage", {"CollectionId": col, "Image": _img(OBAMA3)})

    log = AuditLog(api.home / "audit.jsonl")
    text = log.path.read_text(encoding="utf-8")
    assert ext not in text and user not in text and other not in text
    # While the person is live, an auditor resolves both ways (and the lookup is audited).
    psn = call("ResolveAuditSubject", {"ExternalImageId": ext}, auditor)["Pseudonym"]
    assert psn in text
    assert call("ResolveAuditSubject", {"Pseudonym": psn}, auditor) == {
        "Pseudonym": psn,
        "ExternalImageId": ext,
    }
    user_psn = call("ResolveAuditSubject", {"UserId": user}, auditor)["Pseudonym"]
    assert user_psn in text
    other_psn = call("ResolveAuditSubject", {"ExternalImageId": other}, auditor)["Pseudonym"]
    call("ResolveAuditSubject", {"Pseudonym": psn}, api.keys["admin"].bearer, status=403)

    assert call("ErasePerson", {"ExternalImageId": ext})["DeletedFaces"][col] == 1
    call("ErasePerson", {"UserId": user})

    # The chain is intact: the API's check, the CLI's check, and every line still parses.
    verified = call("VerifyAuditLog", {}, auditor)
    assert verified["ChainIntact"] is True, verified
    code, lines, err = run_cli(["audit", "verify", "--json"], api.home)
    assert code == 0 and lines[0]["ok"] is True, (code, lines, err[-2000:])
    # Nowhere: not in the file, not in a query, not in an export.
    text = log.path.read_text(encoding="utf-8")
    entries = [json.loads(x) for x in text.splitlines()]
    assert len(entries) == verified["Entries"] + 1  # + the VerifyAuditLog entry itself
    for needle in (ext, user):
        assert needle not in text
    queried = call("QueryAuditLog", {"MaxResults": 10_000}, auditor)["Entries"]
    exported = call("ExportAuditLog", {"MaxResults": 10_000}, auditor)["JsonLines"]
    for blob in (json.dumps(queried), exported):
        assert ext not in blob and user not in blob
        assert psn in blob and user_psn in blob  # the entries stay; they name nobody now
    for gone in (psn, user_psn):
        call("ResolveAuditSubject", {"Pseudonym": gone}, auditor, status=400)
    call("ResolveAuditSubject", {"ExternalImageId": ext}, auditor, status=400)
    assert call("ResolveAuditSubject", {"Pseudonym": other_psn}, auditor)["ExternalImageId"] == other
    assert ext.encode() not in log.subjects.path.read_bytes()
    erase_entry = [e for e in entries if e["operation"] == "ErasePerson"][-2]
    assert erase_entry["inputs"]["external_image_id"] == psn and erase_entry["purpose"] == f"dsar {tag}"
