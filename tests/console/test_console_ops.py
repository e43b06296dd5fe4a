"""The console's own operations over real HTTP against the running app: caller identity, audit
chain verification (an edited entry is found), byte-exact export paged by seq, thumbnails,
the error report; who may call them; and the console's files served by the app itself."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from facestream.audit import _entry_hash
from tests.api.conftest import Key
from tests.console.conftest import ConsoleApi
from tests.helpers import face

pytestmark = pytest.mark.slow


def _post(capi: ConsoleApi, op: str, body: dict[str, Any], key: Key) -> requests.Response:
    return requests.post(f"{capi.url}/v1/{op}", json=body, headers=key.bearer, timeout=120)


def test_console_is_served_by_the_app_without_a_key(capi: ConsoleApi) -> None:
    r = requests.get(f"{capi.url}/console/", timeout=30)
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    assert (
        requests.get(f"{capi.url}/console/app.js", timeout=30)
        .headers["content-type"]
        .startswith("text/javascript")
    )
    # The API around it still wants a key.
    assert requests.post(f"{capi.url}/v1/GetCallerIdentity", json={}, timeout=30).status_code == 401


def test_caller_identity_for_every_role(capi: ConsoleApi) -> None:
    for role, key in capi.keys.items():
        r = _post(capi, "GetCallerIdentity", {}, key)
        assert r.status_code == 200 and r.json() == {"AccessKeyId": key.key_id, "Role": role, "Roles": [role]}
    wrong = Key(capi.keys["viewer"].key_id, "x" * 40)
    assert _post(capi, "GetCallerIdentity", {}, wrong).status_code == 401


def test_verify_finds_an_edited_entry(capi: ConsoleApi) -> None:
    auditor = capi.keys["auditor"]
    for role in ("viewer", "admin", "reviewer"):
        for op in ("VerifyAuditLog", "ExportAuditLog"):
            r = _post(capi, op, {}, capi.keys[role])
            assert r.status_code == 403 and r.json()["error"]["code"] == "AccessDeniedException"
    ok = _post(capi, "VerifyAuditLog", {}, auditor).json()
    assert ok["ChainIntact"] is True and ok["Entries"] >= 3 and ok["FirstBadSeq"] is None
    assert ok["LastSeq"] == ok["Entries"] - 1 and len(ok["LastHash"]) == 64

    path = capi.home / "audit.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    victim = len(lines) // 2
    entry = json.loads(lines[victim])
    entry["purpose"] = "edited afterwards"
    edited = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    original = lines[victim]
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(original, edited, 1), encoding="utf-8")
    try:
        bad = _post(capi, "VerifyAuditLog", {}, auditor).json()
        assert bad["ChainIntact"] is False and bad["FirstBadSeq"] == victim
        assert "does not match its hash" in bad["Reason"] and bad["LastHash"] is None
    finally:
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(edited, original, 1), encoding="utf-8")
    again = _post(capi, "VerifyAuditLog", {}, auditor).json()
    assert again["ChainIntact"] is True and again["Entries"] > ok["Entries"]  # verifications are audited


def test_export_is_byte_exact_and_paged(capi: ConsoleApi) -> None:
    auditor = capi.keys["auditor"]
    first = _post(capi, "ExportAuditLog", {"MaxResults": 2}, auditor).json()
    assert first["Count"] == 2 and first["NextSeq"] == 2
    stored = (capi.home / "audit.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert first["JsonLines"] == "".join(stored[:2])
    rest = _post(capi, "ExportAuditLog", {"FromSeq": first["NextSeq"], "MaxResults": 3}, auditor).json()
    assert [json.loads(x)["seq"] for x in rest["JsonLines"].splitlines()] == [2, 3, 4]
    only = _post(capi, "ExportAuditLog", {"Operation": "VerifyAuditLog"}, auditor).json()
    entries = [json.loads(x) for x in only["JsonLines"].splitlines()]
    assert entries and {e["operation"] for e in entries} == {"VerifyAuditLog"}
    assert all(e["hash"] == _entry_hash(e) for e in entries)
    for bad in ({"MaxResults": 0}, {"SinceMs": 5, "UntilMs": 1}, {"Operation": "a b"}, {"Extra": 1}):
        r = _post(capi, "ExportAuditLog", bad, auditor)
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameterException", bad
    exports = [e for e in capi.home.joinpath("audit.jsonl").read_text().splitlines() if "ExportAuditLog" in e]
    assert exports  # exporting is on the record too


def test_face_thumbnails(capi: ConsoleApi) -> None:
    admin, indexer = capi.keys["admin"], capi.keys["indexer"]
    assert _post(capi, "CreateCollection", {"CollectionId": "console-thumbs"}, admin).status_code == 200
    img = {
        "Bytes": base64.b64encode(face("face_recognition/examples/alex-lacamoire.png").read_bytes()).decode()
    }
    rec = _post(capi, "IndexFaces", {"CollectionId": "console-thumbs", "Image": img}, indexer).json()
    face_id = rec["FaceRecords"][0]["Face"]["FaceId"]
    missing = "00000000-0000-4000-8000-000000000000"
    body = {"CollectionId": "console-thumbs", "FaceIds": [face_id, missing]}
    for role in ("admin", "indexer", "reviewer", "auditor"):
        out = _post(capi, "GetFaceThumbnails", body, capi.keys[role]).json()["Thumbnails"]
        assert [t["FaceId"] for t in out] == [face_id, missing]
        assert base64.b64decode(out[0]["Jpeg"])[:2] == b"\xff\xd8" and out[1]["Jpeg"] is None
    for role in ("viewer", "searcher"):
        assert _post(capi, "GetFaceThumbnails", body, capi.keys[role]).status_code == 403
    r = _post(capi, "GetFaceThumbnails", {"CollectionId": "console-nope", "FaceIds": [face_id]}, admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "ResourceNotFoundException"
    r = _post(capi, "GetFaceThumbnails", {"CollectionId": "console-thumbs", "FaceIds": ["../../x"]}, admin)
    assert r.status_code == 400
