"""The native /v1 API over real HTTP: auth (401 vs 403), JSON and multipart images, bad input
(always 4xx with a code and a message, never a 500 or a traceback), purpose and audit."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
import requests
from PIL import Image

from tests.api.conftest import PURPOSE, Api
from tests.helpers import face

pytestmark = pytest.mark.slow

OBAMA = "face_recognition/tests/test_images/obama.jpg"
OBAMA3 = "face_recognition/tests/test_images/obama3.jpg"
TWO = "face_recognition/examples/two_people.jpg"
COL = "http-col"


def b64(rel: str) -> str:
    return base64.b64encode(face(rel).read_bytes()).decode()


def err(r: requests.Response) -> dict[str, str]:
    assert "Traceback" not in r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
    return body["error"]


@pytest.fixture(scope="module")
def collection(api: Api) -> str:
    assert api.post("CreateCollection", {"CollectionId": COL}).status_code == 200
    r = api.post(
        "IndexFaces",
        {"CollectionId": COL, "Image": {"Bytes": b64(OBAMA)}, "ExternalImageId": "obama"},
        role="indexer",
    )
    assert r.status_code == 200, r.text
    return COL


def test_health_needs_no_auth_everything_else_does(api: Api) -> None:
    assert requests.get(f"{api.url}/healthz", timeout=30).json() == {"status": "ok"}
    for path in ("/v1/ListCollections", "/openapi.json"):
        method = requests.post if path.startswith("/v1") else requests.get
        r = method(f"{api.url}{path}", timeout=30)
        assert r.status_code == 401 and err(r)["code"] == "MissingAuthenticationTokenException"
    bad = {"Authorization": f"Bearer {api.keys['viewer'].key_id}:wrong"}
    r = requests.post(f"{api.url}/v1/ListCollections", json={}, headers=bad, timeout=30)
    assert r.status_code == 401 and err(r)["code"] == "UnrecognizedClientException"
    # Auth is checked before the body: an anonymous garbage body is still a 401.
    r = requests.post(f"{api.url}/v1/ListCollections", data=b"{{{", timeout=30)
    assert r.status_code == 401


def test_roles_403_with_clear_message(api: Api, collection: str) -> None:
    r = api.post("CreateCollection", {"CollectionId": "nope"}, role="searcher")
    e = err(r)
    assert r.status_code == 403 and e["code"] == "AccessDeniedException"
    assert "searcher" in e["message"] and "admin" in e["message"]
    r = api.post("IndexFaces", {"CollectionId": collection, "Image": {"Bytes": b64(OBAMA)}}, role="viewer")
    assert r.status_code == 403
    r = api.post("QueryAuditLog", {}, role="searcher")
    assert r.status_code == 403
    assert api.post("DescribeCollection", {"CollectionId": collection}, role="viewer").status_code == 200


def test_search_json_and_multipart_and_audit(api: Api, collection: str) -> None:
    r = api.post(
        "SearchFacesByImage",
        {"CollectionId": collection, "Image": {"Bytes": b64(OBAMA3)}},
        role="searcher",
        purpose=PURPOSE + " json",
    )
    assert r.status_code == 200, r.text
    assert r.json()["FaceMatches"][0]["Face"]["ExternalImageId"] == "obama"
    # The native API names the model beside Rekognition's numeric version (the wire does not).
    assert r.json()["FaceModelVersion"] == "1.0" and r.json()["FacestreamFaceModel"] == "dlib-resnet"

    headers = {**api.keys["searcher"].bearer, "X-Facestream-Purpose": PURPOSE + " multipart"}
    with face(OBAMA3).open("rb") as f:
        r = requests.post(
            f"{api.url}/v1/SearchFacesByImage/upload",
            files={"Image": ("obama3.jpg", f, "image/jpeg")},
            data={"request": f'{{"CollectionId": "{collection}", "MaxFaces": 1}}'},
            headers=headers,
            timeout=300,
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["FaceMatches"]) == 1

    with face(OBAMA).open("rb") as a, face(TWO).open("rb") as b:
        r = requests.post(
            f"{api.url}/v1/CompareFaces/upload",
            files={"SourceImage": ("a.jpg", a, "image/jpeg"), "TargetImage": ("b.jpg", b, "image/jpeg")},
            headers=headers,
            timeout=300,
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["FaceMatches"]) == 1

    entries = api.post("QueryAuditLog", {"Operation": "SearchFacesByImage"}, role="auditor").json()["Entries"]
    mine = [e for e in entries if e["purpose"] == PURPOSE + " multipart"]
    assert mine and mine[-1]["actor"] == {
        "key_id": api.keys["searcher"].key_id,
        "role": "searcher",
        "roles": ["searcher"],
    }
    assert mine[-1]["results"]["matches"]


def _jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (120, 90, 60)).save(buf, "JPEG", quality=10)
    return buf.getvalue()


def _big_noise_png() -> str:
    import numpy as np

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (1400, 1400, 3), dtype=np.uint8)).save(buf, "PNG", compress_level=0)
    data = buf.getvalue()
    assert len(data) > 5 * 1024 * 1024
    return base64.b64encode(data).decode()


BAD: list[tuple[str, str, dict[str, Any], str | None, int, str]] = [
    (
        "not base64",
        "DetectFaces",
        {"Image": {"Bytes": "@@@not-base64@@@"}},
        None,
        400,
        "InvalidParameterException",
    ),
    (
        "text as image",
        "DetectFaces",
        {"Image": {"Bytes": base64.b64encode(b"hello world").decode()}},
        None,
        400,
        "InvalidImageFormatException",
    ),
    (
        "truncated jpeg",
        "DetectFaces",
        {"Image": {"Bytes": base64.b64encode(_jpeg(200, 200)[:300]).decode()}},
        None,
        400,
        "InvalidImageFormatException",
    ),
    ("no image source", "DetectFaces", {"Image": {}}, None, 400, "InvalidParameterException"),
    (
        "unknown root",
        "DetectFaces",
        {"Image": {"S3Object": {"Bucket": "nope", "Name": "a.jpg"}}},
        None,
        400,
        "InvalidS3ObjectException",
    ),
    (
        "bad collection id",
        "SearchFacesByImage",
        {"CollectionId": "a b", "Image": {"Bytes": "aGk="}},
        PURPOSE,
        400,
        "InvalidParameterException",
    ),
    (
        "unknown collection",
        "SearchFacesByImage",
        {"CollectionId": "missing", "Image": {"Bytes": "@obama"}},
        PURPOSE,
        400,
        "ResourceNotFoundException",
    ),
    (
        "no purpose",
        "SearchFacesByImage",
        {"CollectionId": COL, "Image": {"Bytes": "@obama"}},
        None,
        400,
        "PurposeRequiredException",
    ),
    (
        "threshold 101",
        "SearchFacesByImage",
        {"CollectionId": COL, "Image": {"Bytes": "aGk="}, "FaceMatchThreshold": 101},
        PURPOSE,
        400,
        "InvalidParameterException",
    ),
    (
        "max faces 0",
        "SearchFacesByImage",
        {"CollectionId": COL, "Image": {"Bytes": "aGk="}, "MaxFaces": 0},
        PURPOSE,
        400,
        "InvalidParameterException",
    ),
    ("extra field", "ListCollections", {"Bogus": 1}, None, 400, "InvalidParameterException"),
    (
        "no face",
        "SearchFacesByImage",
        {"CollectionId": COL, "Image": {"Bytes": base64.b64encode(_jpeg(300, 300)).decode()}},
        PURPOSE,
        400,
        "InvalidParameterException",
    ),
    (
        "bad token",
        "ListFaces",
        {"CollectionId": COL, "NextToken": "abc.def"},
        None,
        400,
        "InvalidPaginationTokenException",
    ),
    (
        "unknown face",
        "SearchFaces",
        {"CollectionId": COL, "FaceId": "00000000-0000-0000-0000-000000000000"},
        PURPOSE,
        400,
        "ResourceNotFoundException",
    ),
]


@pytest.mark.parametrize(("name", "op", "body", "purpose", "status", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_4xx_with_code(
    api: Api,
    collection: str,
    name: str,
    op: str,
    body: dict[str, Any],
    purpose: str | None,
    status: int,
    code: str,
) -> None:
    role = "searcher" if op not in ("ListCollections", "ListFaces") else "viewer"
    if body.get("Image", {}).get("Bytes") == "@obama":  # real photo, read only when the test runs
        body = {**body, "Image": {"Bytes": b64(OBAMA)}}
    r = api.post(op, body, role=role, purpose=purpose)
    e = err(r)
    assert (r.status_code, e["code"]) == (status, code), e


def test_size_limits(api: Api) -> None:
    r = api.post("DetectFaces", {"Image": {"Bytes": _big_noise_png()}}, role="searcher")
    assert r.status_code == 400 and err(r)["code"] == "ImageTooLargeException"
    r = requests.post(
        f"{api.url}/v1/DetectFaces",
        data=b"x" * (9 * 1024 * 1024),
        headers={**api.keys["searcher"].bearer, "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413 and err(r)["code"] == "RequestEntityTooLargeException"
    r = requests.post(
        f"{api.url}/v1/DetectFaces",
        data=b"{not json",
        headers={**api.keys["searcher"].bearer, "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 400 and err(r)["code"] == "InvalidParameterException"


def test_keys_over_http(api: Api) -> None:
    r = api.post("CreateAccessKey", {"Role": "viewer", "Description": "made over http"})
    assert r.status_code == 200
    new = r.json()
    assert set(new) == {"AccessKeyId", "SecretAccessKey", "Role", "Roles", "Purpose", "ExpiresAtMs"}
    assert new["Role"] == "viewer" and new["Roles"] == ["viewer"]
    h = {"Authorization": f"Bearer {new['AccessKeyId']}:{new['SecretAccessKey']}"}
    assert requests.post(f"{api.url}/v1/ListCollections", json={}, headers=h, timeout=30).status_code == 200
    listed = api.post("ListAccessKeys", {}).json()["AccessKeys"]
    assert all("SecretAccessKey" not in k for k in listed)
    assert api.post("RevokeAccessKey", {"AccessKeyId": new["AccessKeyId"]}).json()["Status"] == "Revoked"
    assert requests.post(f"{api.url}/v1/ListCollections", json={}, headers=h, timeout=30).status_code == 401
    # Secrets are never stored in the clear.
    raw = (api.home / "keys.sqlite").read_bytes()
    assert new["SecretAccessKey"].encode() not in raw
