"""Purpose-bound and expiring keys over HTTP (issue 18 item 1): CreateAccessKey with Roles and a
Purpose; a search signed with the key needs no header and is audited with the key's purpose; a
header sent with it is recorded beside it; an expired key is refused (401)."""

from __future__ import annotations

import base64
import secrets
import sqlite3

import pytest
import requests

from facestream.audit import AuditLog
from tests.api.conftest import Api
from tests.helpers import face

pytestmark = pytest.mark.slow

OBAMA = "face_recognition/tests/test_images/obama.jpg"


def test_purpose_bound_key_over_http(api: Api) -> None:
    tag = secrets.token_hex(3)
    r = api.post(
        "CreateAccessKey",
        {"Roles": ["searcher", "viewer"], "Purpose": f"case {tag}", "ExpiresDays": 1},
    )
    assert r.status_code == 200, r.text
    made = r.json()
    assert (
        made["Roles"] == ["searcher", "viewer"] and made["Purpose"] == f"case {tag}" and made["ExpiresAtMs"]
    )
    bearer = {"Authorization": f"Bearer {made['AccessKeyId']}:{made['SecretAccessKey']}"}
    assert api.post("CreateCollection", {"CollectionId": f"pk-{tag}"}).status_code == 200
    body = {
        "CollectionId": f"pk-{tag}",
        "Image": {"Bytes": base64.b64encode(face(OBAMA).read_bytes()).decode()},
    }
    url = f"{api.url}/v1/SearchFacesByImage"
    assert requests.post(url, json=body, headers=bearer, timeout=300).status_code == 200
    with_header = {**bearer, "X-Facestream-Purpose": f"follow-up {tag}"}
    assert requests.post(url, json=body, headers=with_header, timeout=300).status_code == 200
    entries = AuditLog(api.home / "audit.jsonl").query(
        key_id=made["AccessKeyId"], operation="SearchFacesByImage"
    )
    assert [e["purpose"] for e in entries] == [f"case {tag}", f"case {tag}"]
    assert [e.get("purpose_header") for e in entries] == [None, f"follow-up {tag}"]
    assert entries[0]["actor"]["roles"] == ["searcher", "viewer"]
    # Neither role may make keys; one role of the two is enough for what it allows.
    assert (
        requests.post(f"{api.url}/v1/ListCollections", json={}, headers=bearer, timeout=60).status_code == 200
    )
    denied = requests.post(
        f"{api.url}/v1/CreateAccessKey", json={"Role": "viewer"}, headers=bearer, timeout=60
    )
    assert denied.status_code == 403 and "searcher, viewer" in denied.json()["error"]["message"]

    # Expiry: the key stops working at once (the row is read on every request).
    with sqlite3.connect(api.home / "keys.sqlite") as db:
        db.execute("UPDATE keys SET expires_at_ms = 1 WHERE access_key_id = ?", (made["AccessKeyId"],))
    r = requests.post(f"{api.url}/v1/ListCollections", json={}, headers=bearer, timeout=60)
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    listed = {k["AccessKeyId"]: k for k in api.post("ListAccessKeys", {}).json()["AccessKeys"]}
    assert listed[made["AccessKeyId"]]["Status"] == "Expired"
