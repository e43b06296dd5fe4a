"""Hostile input through the real HTTP API (and the CLI): a clear 4xx, and no state change.

"No state change" is checked after every case: the collections, the face count of the
collection under attack, the stream processors and the audit log are exactly as before
(refusals of bad input are not audited; only 403s are, and none happen here).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.conftest import PURPOSE, Api
from tests.helpers import face, faces_dir, run_cli
from tests.security.conftest import ALLOWED_WEBHOOK_HOST
from tests.security.hostile import cases

pytestmark = pytest.mark.slow

COL = "hostile"
OBAMA = "face_recognition/examples/obama.jpg"
LIN_PNG = "face_recognition/examples/lin-manuel-miranda.png"
CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
IMAGE_ERRORS = {"InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"}


def _post(api: Api, op: str, body: Any, role: str, **kw: Any) -> requests.Response:
    headers = {**api.keys[role].bearer, "X-Facestream-Purpose": PURPOSE + " hostile"}
    if isinstance(body, bytes | str):
        headers["Content-Type"] = "application/json"
        return requests.post(f"{api.url}/v1/{op}", data=body, headers=headers, timeout=120, **kw)
    return requests.post(f"{api.url}/v1/{op}", json=body, headers=headers, timeout=120, **kw)


def _state(api: Api) -> dict[str, Any]:
    cols = _post(api, "ListCollections", {}, "viewer").json()["CollectionIds"]
    desc = _post(api, "DescribeCollection", {"CollectionId": COL}, "viewer").json()
    procs = _post(api, "ListStreamProcessors", {}, "viewer").json()["StreamProcessors"]
    audit = (api.home / "audit.jsonl").read_text().count("\n")
    return {"collections": sorted(cols), "faces": desc["FaceCount"], "processors": procs, "audit": audit}


@pytest.fixture(scope="module")
def target(sapi: Api) -> Api:
    """The collection under attack, with one face in it."""
    r = _post(sapi, "CreateCollection", {"CollectionId": COL}, "admin")
    assert r.status_code == 200, r.text
    img = base64.b64encode(face(OBAMA).read_bytes()).decode()
    r = _post(sapi, "IndexFaces", {"CollectionId": COL, "Image": {"Bytes": img}}, "indexer")
    assert r.status_code == 200 and len(r.json()["FaceRecords"]) == 1, r.text
    return sapi


def _refused(resp: requests.Response, codes: set[str] | str, status: int = 400) -> None:
    assert "Traceback" not in resp.text
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    code = resp.json()["error"]["code"]
    assert code in ({codes} if isinstance(codes, str) else codes), resp.text[:300]


def test_hostile_images_json_and_multipart(target: Api) -> None:
    api = target
    before = _state(api)
    bad = cases(face(OBAMA), face(LIN_PNG))
    for name, data in bad.items():
        b64 = base64.b64encode(data).decode()
        for op, role in (("IndexFaces", "indexer"), ("SearchFacesByImage", "searcher")):
            body = {"CollectionId": COL, "Image": {"Bytes": b64}}
            if op == "IndexFaces":
                body["ExternalImageId"] = name
            _refused(_post(api, op, body, role), IMAGE_ERRORS)
        # The same bytes as a multipart upload named like a photo.
        resp = requests.post(
            f"{api.url}/v1/IndexFaces/upload",
            files={"Image": (f"{name}.jpg", data, "image/jpeg")},
            data={"request": json.dumps({"CollectionId": COL})},
            headers=api.keys["indexer"].bearer,
            timeout=120,
        )
        _refused(resp, IMAGE_ERRORS)
    assert _state(api) == before


def test_hostile_bodies(target: Api) -> None:
    api = target
    before = _state(api)
    index = {"CollectionId": COL}
    cases_: list[tuple[str, Any, set[str] | str, int]] = [
        ("empty body", b"", "InvalidParameterException", 400),
        ("empty JSON object", {}, "InvalidParameterException", 400),
        ("JSON array", [], "InvalidParameterException", 400),
        ("not JSON", b"{'CollectionId': 'hostile'", "InvalidParameterException", 400),
        ("empty Bytes", {**index, "Image": {"Bytes": ""}}, IMAGE_ERRORS, 400),
        (
            "wrong base64",
            {**index, "Image": {"Bytes": "****not base64****"}},
            "InvalidParameterException",
            400,
        ),
        ("base64 of nothing useful", {**index, "Image": {"Bytes": "AAAA"}}, IMAGE_ERRORS, 400),
        (
            "unknown field",
            {**index, "Image": {"Bytes": "AAAA"}, "Extra": 1},
            "InvalidParameterException",
            400,
        ),
        (
            "oversized JSON",
            b'{"CollectionId":"' + b"a" * (9 * 1024 * 1024) + b'"}',
            "RequestEntityTooLargeException",
            413,
        ),
        (
            "deeply nested JSON",
            b'{"CollectionId":"hostile","Image":' + b"[" * 200_000 + b"]" * 200_000 + b"}",
            {"InvalidParameterException", "SerializationException"},
            400,
        ),
        (
            "deeply nested objects",
            b'{"CollectionId":"hostile","Image":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
            {"InvalidParameterException", "SerializationException"},
            400,
        ),
    ]
    for what, body, codes, status in cases_:
        resp = _post(api, "IndexFaces", body, "indexer")
        assert resp.status_code == status and "Traceback" not in resp.text, (
            what,
            resp.status_code,
            resp.text[:300],
        )
        assert resp.json()["error"]["code"] in ({codes} if isinstance(codes, str) else codes), (
            what,
            resp.text,
        )
    # Multipart: a nested 'request' part and an empty file.
    for files, request_part in (
        ({"Image": ("x.jpg", b"\xff\xd8\xff", "image/jpeg")}, "[" * 100_000 + "]" * 100_000),
        ({"Image": ("empty.jpg", b"", "image/jpeg")}, json.dumps(index)),
    ):
        resp = requests.post(
            f"{api.url}/v1/IndexFaces/upload",
            files=files,
            data={"request": request_part},
            headers=api.keys["indexer"].bearer,
            timeout=120,
        )
        _refused(resp, {"SerializationException", "InvalidParameterException", *IMAGE_ERRORS})
    # The Rekognition face: the same nested body is a 400 SerializationException too.
    nested = b'{"CollectionId":"hostile","Image":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    resp = requests.post(
        f"{api.url}/",
        data=nested,
        headers={
            "X-Amz-Target": "RekognitionService.IndexFaces",
            "Content-Type": "application/x-amz-json-1.1",
        },
        timeout=120,
    )
    assert resp.status_code in (400, 401) and "Traceback" not in resp.text, resp.text[:300]
    assert _state(api) == before


NAMES = [
    'x" or 1==1 or "',
    "x' or 1==1 or '",
    "x\\",
    '\\" || id != "',
    "hostile\n",
    "host\x00ile",
    "host\tile",
    "\u202ehostile",
    "höstile",
    "名前",
    "../hostile",
    " ",
    "a" * 256,
]


def test_names_and_ids_that_try_to_break_filters(target: Api) -> None:
    api = target
    before = _state(api)
    img = base64.b64encode(face(OBAMA).read_bytes()).decode()
    face_id = _post(api, "ListFaces", {"CollectionId": COL}, "viewer").json()["Faces"][0]["FaceId"]
    for name in NAMES:
        attempts = [
            ("CreateCollection", {"CollectionId": name}, "admin"),
            ("DescribeCollection", {"CollectionId": name}, "viewer"),
            ("DeleteCollection", {"CollectionId": name}, "admin"),
            (
                "IndexFaces",
                {"CollectionId": COL, "Image": {"Bytes": img}, "ExternalImageId": name},
                "indexer",
            ),
            ("ListFaces", {"CollectionId": COL, "FaceIds": [name]}, "viewer"),
            ("ListFaces", {"CollectionId": COL, "UserId": name}, "viewer"),
            ("DeleteFaces", {"CollectionId": COL, "FaceIds": [name, face_id]}, "indexer"),
            ("SearchFaces", {"CollectionId": COL, "FaceId": name}, "searcher"),
            ("CreateUser", {"CollectionId": COL, "UserId": name}, "indexer"),
            ("DeleteUser", {"CollectionId": COL, "UserId": name}, "indexer"),
            ("QueryMatchEvents", {"ExternalImageId": name}, "auditor"),
        ]
        for op, body, role in attempts:
            resp = _post(api, op, body, role)
            if op == "QueryMatchEvents" and resp.status_code == 200:
                # Bound as an SQL parameter: a harmless query that finds nothing.
                assert resp.json()["Events"] == []
                continue
            _refused(resp, {"InvalidParameterException"})
    after = _state(api)
    # QueryMatchEvents is audited whether or not it found anything (an auditor's query).
    queries = after.pop("audit") - before.pop("audit")
    assert after == before
    assert 0 <= queries <= len(NAMES)


SOURCES = [
    "file:///etc/passwd",
    "/etc/passwd",
    "file:/etc/hostname",
    "javascript:alert(1)",
    "gopher://127.0.0.1:70/_GET",
    "concat:/etc/passwd|/etc/hosts",
    "subfile,,start,0,end,100,,:/etc/passwd",
    "ftp://127.0.0.1/clip.mp4",
    "data:video/mp4;base64,AAAA",
    "http:///no-host.m3u8",
    "rtsp://cam\n.local/stream",
]
WEBHOOKS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://evil.example.com/hook",
    "http://127.0.0.1.evil.example.com/hook",
    f"http://{ALLOWED_WEBHOOK_HOST}.evil.example.com/hook",
    "http://[fd00::1]/hook",
    "file:///tmp/hook",
    "gopher://127.0.0.1:70/hook",
]


def _processor(name: str, url: str, webhook: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": name,
        "Input": {"Url": url},
        "Settings": {"FaceSearch": {"CollectionId": COL}},
    }
    if webhook is not None:
        body["Output"] = {"Webhook": {"Url": webhook}}
    return body


def test_source_urls_and_webhook_hosts(target: Api) -> None:
    api = target
    before = _state(api)
    for i, url in enumerate(SOURCES):
        resp = _post(api, "CreateStreamProcessor", _processor(f"bad-src-{i}", url), "admin")
        _refused(resp, {"InvalidParameterException"})
        assert "passwd" not in resp.json()["error"]["message"] or url.startswith(("/", "file"))
    clip = str(face(CLIP))
    for i, hook in enumerate(WEBHOOKS_REFUSED):
        resp = _post(api, "CreateStreamProcessor", _processor(f"bad-hook-{i}", clip, hook), "admin")
        _refused(resp, {"InvalidParameterException"})
    assert _state(api) == before
    # Allowed: loopback and the configured host. Created (not started), then deleted.
    for i, hook in enumerate(
        ["http://127.0.0.1:9/hook", f"https://{ALLOWED_WEBHOOK_HOST}/x", "http://[::1]:9/"]
    ):
        name = f"ok-hook-{i}"
        resp = _post(api, "CreateStreamProcessor", _processor(name, clip, hook), "admin")
        assert resp.status_code == 200, resp.text
        assert _post(api, "DeleteStreamProcessor", {"Name": name}, "admin").status_code == 200


def test_cli_hostile_files_exit_2_and_change_nothing(tmp_path: Path) -> None:
    """The CLI reads the same bytes from disk: exit status 2, a message, no faces added."""
    home = tmp_path / "home"
    home.mkdir()
    bad = cases(face(OBAMA), face(LIN_PNG))
    files = []
    for name in ("truncated-jpeg", "corrupt-png", "truncated-webp", "bomb-png-real", "text-named-jpg"):
        p = tmp_path / f"{name}.jpg"
        p.write_bytes(bad[name])
        files.append(str(p))
    code, _, err = run_cli(["collections", "create", COL, "--json"], home)
    assert code == 0, err
    code, lines, err = run_cli(["index", COL, *files, "--json"], home)
    assert code == 2, (code, lines, err)
    # --json: one error object per refused file, each with a code and a message.
    errors = [x["error"] for x in lines if "error" in x]
    assert len(errors) == len(files), (lines, err)
    assert all(e["code"] and e["message"] for e in errors), errors
    # The CLI's store (Milvus Lite under its home), read in-process: still no face in it.
    from facestream.store import MilvusFaceStore, StoreConfig

    store = MilvusFaceStore(StoreConfig(uri=str(home / "milvus.db")))
    try:
        assert store.describe_collection(COL).face_count == 0
    finally:
        store.close()
    assert faces_dir()  # data present (CI fails rather than skips without it)
