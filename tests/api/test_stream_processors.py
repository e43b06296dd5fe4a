"""Stream processors and match events over HTTP, on real components: the boto3 Rekognition
client and the native API against the running app, a real video file decoded by a processor
actor the API started, the analysis deployment the API uses, and the one store actor that owns
the Milvus Lite file the API indexed into.

The clip: Lin-Manuel Miranda is on screen about 0.8-1.4 s and 3.7-7.9 s into it."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import PURPOSE, Api
from tests.api.test_boto3 import _send, _signed, client, code, img
from tests.helpers import face, wait_for

pytestmark = pytest.mark.slow

CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
LIN_IMG = "face_recognition/examples/lin-manuel-miranda.png"
LIN = "lin-manuel-miranda"
ROLE_ARN = "arn:aws:iam::123456789012:role/facestream-not-used"


def _wait(pred: Any, timeout_s: float, what: str) -> Any:
    return wait_for(pred, timeout_s, what, interval_s=0.5)


def _collection_with_lin(api: Api, name: str) -> None:
    client(api, "admin").create_collection(CollectionId=name)
    rec = client(api, "indexer").index_faces(CollectionId=name, Image=img(LIN_IMG), ExternalImageId=LIN)
    assert len(rec["FaceRecords"]) == 1


def _matched(ev: dict[str, Any]) -> str:
    return str(ev["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"]["ExternalImageId"])


def test_stream_processor_with_boto3(api: Api) -> None:
    col, name = "sp-boto3-hamilton", f"sp-boto3-{secrets.token_hex(3)}"
    _collection_with_lin(api, col)
    admin = client(api, "admin", purpose=PURPOSE)
    viewer = client(api, "viewer")
    started_at = time.time()

    out = admin.create_stream_processor(
        Input={"KinesisVideoStream": {"Arn": str(face(CLIP))}},
        Output={},
        Name=name,
        Settings={"FaceSearch": {"CollectionId": col, "FaceMatchThreshold": 80.0}},
        RoleArn=ROLE_ARN,
    )
    assert out["StreamProcessorArn"] == f"arn:aws:rekognition:us-east-1:000000000000:streamprocessor/{name}"
    with pytest.raises(ClientError) as e:
        admin.create_stream_processor(
            Input={"KinesisVideoStream": {"Arn": str(face(CLIP))}},
            Output={},
            Name=name,
            Settings={"FaceSearch": {"CollectionId": col}},
            RoleArn=ROLE_ARN,
        )
    assert code(e) == ("ResourceInUseException", 400)
    d = viewer.describe_stream_processor(Name=name)
    assert d["Status"] == "STOPPED" and d["Settings"]["FaceSearch"]["CollectionId"] == col
    assert name in [p["Name"] for p in viewer.list_stream_processors()["StreamProcessors"]]

    # Roles and purpose: viewers cannot start, admins cannot describe, no purpose is a 400.
    with pytest.raises(ClientError) as e:
        client(api, "viewer", purpose=PURPOSE).start_stream_processor(Name=name)
    assert code(e) == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as e:
        admin.describe_stream_processor(Name=name)
    assert code(e) == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as e:
        client(api, "admin").start_stream_processor(Name=name)
    assert code(e) == ("PurposeRequiredException", 400)

    assert admin.start_stream_processor(Name=name)["SessionId"]
    with pytest.raises(ClientError) as e:
        viewer.delete_stream_processor(Name=name)
    assert code(e) == ("AccessDeniedException", 403)
    final = _wait(
        lambda: (d := viewer.describe_stream_processor(Name=name))["Status"] in ("STOPPED", "FAILED") and d,
        180,
        "the processor to finish the clip",
    )
    assert final["Status"] == "STOPPED", final

    # The custom target on the wire protocol, signed like any Rekognition call.
    body = json.dumps({"StreamProcessorName": name, "StartTimestamp": started_at}).encode()
    resp = _send(_signed(api, "auditor", "QueryMatchEvents", body))
    assert resp.status_code == 200, resp.text
    events = resp.json()["Events"]
    assert events and {_matched(ev) for ev in events} == {LIN}
    assert all(ev["InputInformation"]["Stream"]["Name"] == name for ev in events)
    denied = _send(_signed(api, "viewer", "QueryMatchEvents", body))
    assert denied.status_code == 403 and denied.json()["__type"] == "AccessDeniedException"

    admin.stop_stream_processor(Name=name)
    admin.delete_stream_processor(Name=name)
    for call in (viewer.describe_stream_processor, admin.delete_stream_processor):
        with pytest.raises(ClientError) as e:
            call(Name=name)
        assert code(e) == ("ResourceNotFoundException", 400)
    with pytest.raises(ClientError) as e:
        admin.start_stream_processor(Name="sp-no-such-processor")
    assert code(e) == ("ResourceNotFoundException", 400)


def test_stream_processor_native(api: Api) -> None:
    col, name = "sp-native-hamilton", f"sp-native-{secrets.token_hex(3)}"
    _collection_with_lin(api, col)
    create = {
        "Name": name,
        "Input": {"Url": str(face(CLIP))},
        "Settings": {"FaceSearch": {"CollectionId": col}},
        "Output": {"S3Destination": {"Bucket": "matches", "KeyPrefix": "native/"}},
    }
    r = api.post("CreateStreamProcessor", create, role="viewer")
    assert r.status_code == 403 and r.json()["error"]["code"] == "AccessDeniedException"
    r = api.post("CreateStreamProcessor", {**create, "Settings": {"FaceSearch": {"CollectionId": "sp-nope"}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "ResourceNotFoundException"
    outside = {**create, "Input": {"Url": "/etc/hostname"}}
    r = api.post("CreateStreamProcessor", outside)
    assert r.status_code == 400 and "outside the allowed media directories" in r.json()["error"]["message"]
    r = api.post("CreateStreamProcessor", {**create, "Input": {"Url": "ftp://cam.example/x"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameterException"
    r = api.post("CreateStreamProcessor", create)
    assert r.status_code == 200, r.text

    r = api.post(
        "UpdateStreamProcessor",
        {"Name": name, "SettingsForUpdate": {"FaceSearchForUpdate": {"FaceMatchThreshold": 85}}},
    )
    assert r.status_code == 200, r.text
    d = api.post("DescribeStreamProcessor", {"Name": name}, role="auditor").json()
    assert d["Settings"]["FaceSearch"] == {"CollectionId": col, "FaceMatchThreshold": 85.0}

    r = api.post("StartStreamProcessor", {"Name": name})
    assert r.status_code == 400 and r.json()["error"]["code"] == "PurposeRequiredException"
    r = api.post(
        "StartStreamProcessor", {"Name": name, "Purpose": "test: native stream start"}, role="viewer"
    )
    assert r.status_code == 403
    r = api.post("StartStreamProcessor", {"Name": name, "Purpose": "test: native stream start"})
    assert r.status_code == 200, r.text

    def done() -> dict[str, Any] | None:
        out = api.post("DescribeStreamProcessor", {"Name": name}, role="viewer").json()
        return out if out["Status"] in ("STOPPED", "FAILED") else None

    final = _wait(done, 180, "the processor to finish the clip")
    assert final["Status"] == "STOPPED" and final["Facestream"]["Events"] >= 1, final
    assert final["Facestream"]["Purpose"] == "test: native stream start"

    # By collection and external id, one event per page.
    seen: list[dict[str, Any]] = []
    token = None
    while True:
        q: dict[str, Any] = {"CollectionId": col, "ExternalImageId": LIN, "MaxResults": 1}
        if token:
            q["NextToken"] = token
        page = api.post("QueryMatchEvents", q, role="auditor")
        assert page.status_code == 200, page.text
        seen += page.json()["Events"]
        token = page.json().get("NextToken")
        if not token:
            break
    assert seen and all(ev["InputInformation"]["Stream"]["Name"] == name for ev in seen)
    assert all(ev["FaceSearchResponse"][0]["MatchedFaces"][0]["Similarity"] >= 85.0 for ev in seen)
    later = api.post(
        "QueryMatchEvents", {"StreamProcessorName": name, "StartTimestamp": time.time() + 60}, role="auditor"
    )
    assert later.json()["Events"] == []
    other = api.post(
        "QueryMatchEvents", {"CollectionId": "sp-boto3-hamilton", "StreamProcessorName": name}, role="auditor"
    )
    assert other.json()["Events"] == []
    bad = api.post("QueryMatchEvents", {"CollectionId": col, "NextToken": "bm9wZQ.AAAA"}, role="auditor")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidPaginationTokenException"
    jsonl = api.home / "outputs" / "matches" / "native" / f"{name}.jsonl"
    assert {_matched(json.loads(x)) for x in jsonl.read_text().splitlines()} == {LIN}

    names = api.post("ListStreamProcessors", {"MaxResults": 1}, role="viewer").json()
    assert len(names["StreamProcessors"]) == 1
    assert api.post("StopStreamProcessor", {"Name": name}).status_code == 200
    assert api.post("DeleteStreamProcessor", {"Name": name}).status_code == 200
    gone = api.post("DescribeStreamProcessor", {"Name": name}, role="viewer")
    assert gone.status_code == 400 and gone.json()["error"]["code"] == "ResourceNotFoundException"
    # The audit log has the start with its purpose and the matches under it.
    entries = api.post("QueryAuditLog", {"PurposeContains": "native stream start"}, role="auditor").json()
    ops = {e["operation"] for e in entries["Entries"]}
    assert {"StartStreamProcessor", "StreamFaceMatch"} <= ops
