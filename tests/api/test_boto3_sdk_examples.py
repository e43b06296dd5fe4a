"""boto3 as AWS's public SDK examples use it, against ``facestream serve``, with one key.

The calls follow the Rekognition API reference's face-collection walk-through (create, describe
and list collections; IndexFaces with ExternalImageId; ListFaces page by page; SearchFaces by
face id and SearchFacesByImage; DetectFaces with ALL; CompareFaces; DeleteFaces; delete the
collection), made by an unmodified client: ``boto3.client("rekognition", endpoint_url=...)``
and one purpose-bound key holding admin, indexer and searcher (general profile). The client
sends no extra header and no hook changes a request.

Every answer's raw JSON is checked against botocore's own output shape for its operation
(tests/api/botocore_shapes.py): no member the model does not know, types, required members,
string patterns and lengths. A read-only ``after-call`` observer keeps the raw body for that
check (boto3's parser would silently drop unknown members); it changes nothing on the wire.
A second test walks every operation the Rekognition protocol serves.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from facestream.audit import AuditLog
from serve.keys import Role
from tests.api.botocore_shapes import problems, service_model
from tests.api.conftest import Api
from tests.helpers import face

pytestmark = pytest.mark.slow

OBAMA = "face_recognition/tests/test_images/obama.jpg"
OBAMA2 = "face_recognition/tests/test_images/obama2.jpg"
OBAMA3 = "face_recognition/tests/test_images/obama3.jpg"
BIDEN = "face_recognition/tests/test_images/biden.jpg"
TWO = "face_recognition/examples/two_people.jpg"
CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ARN_RE = re.compile(r"^arn:[a-z][a-z0-9-]*:rekognition:[a-z0-9-]+:\d{12}:collection/[a-zA-Z0-9_.\-]+$")
#: a facestream extension served on the wire protocol that botocore's model cannot describe
WIRE_EXTENSIONS = {"QueryMatchEvents"}


class Recorder:
    """Keeps (operation, status, headers, raw JSON body) of every answer a client gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, dict[str, str], Any]] = []

    def __call__(self, http_response: Any, model: Any, **_: Any) -> None:
        body = json.loads(http_response.content) if http_response.content else {}
        headers = {k.lower(): v for k, v in http_response.headers.items()}
        self.calls.append((model.name, http_response.status_code, headers, body))

    def problems(self) -> list[str]:
        out: list[str] = []
        for op, status, headers, body in self.calls:
            if not headers.get("x-amzn-requestid"):
                out.append(f"{op}: no x-amzn-RequestId header")
            if status == 200:
                out += problems(op, body)
        return out


def sdk_client(api: Api, key_id: str, secret: str, recorder: Recorder | None = None) -> Any:
    """What the SDK examples make: a plain client (here pointed at facestream)."""
    c = boto3.client(
        "rekognition",
        endpoint_url=api.url,
        region_name="us-west-2",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, read_timeout=300, connect_timeout=10),
    )
    if recorder is not None:
        c.meta.events.register("after-call.rekognition", recorder)  # observes only
    return c


def image(rel: str) -> dict[str, bytes]:
    return {"Bytes": face(rel).read_bytes()}


def test_sdk_walkthrough_with_one_purpose_bound_key(api: Api) -> None:
    purpose = f"sdk example {secrets.token_hex(3)}"
    key = api.keystore.create(
        [Role.ADMIN, Role.INDEXER, Role.SEARCHER], "tests/api sdk example", purpose=purpose
    )
    rec = Recorder()
    rek = sdk_client(api, key.access_key_id, key.secret_access_key, rec)
    col = f"sdk-example-{secrets.token_hex(3)}"

    created = rek.create_collection(CollectionId=col)
    assert created["StatusCode"] == 200 and ARN_RE.match(created["CollectionArn"])
    assert created["CollectionArn"].endswith(f":collection/{col}")
    assert re.fullmatch(r"[0-9.]+", created["FaceModelVersion"])
    desc = rek.describe_collection(CollectionId=col)
    assert desc["FaceCount"] == 0 and desc["CollectionARN"] == created["CollectionArn"]
    assert col in rek.list_collections(MaxResults=1000)["CollectionIds"]

    indexed: dict[str, list[str]] = {}
    for ext, rel in (("obama-1", OBAMA), ("obama-2", OBAMA2), ("biden", BIDEN), ("two-people", TWO)):
        out = rek.index_faces(
            CollectionId=col,
            Image=image(rel),
            ExternalImageId=ext,
            MaxFaces=2,
            QualityFilter="AUTO",
            DetectionAttributes=["ALL"],
        )
        indexed[ext] = [r["Face"]["FaceId"] for r in out["FaceRecords"]]
        for r in out["FaceRecords"]:
            assert UUID_RE.match(r["Face"]["ImageId"]) and r["Face"]["ExternalImageId"] == ext
            assert "EyesOpen" in r["FaceDetail"] and len(r["FaceDetail"]["Landmarks"]) == 30
    assert len(indexed["obama-1"]) == 1 and len(indexed["two-people"]) == 2
    again = rek.index_faces(CollectionId=col, Image=image(OBAMA), ExternalImageId="obama-1b")
    image_id = again["FaceRecords"][0]["Face"]["ImageId"]
    assert image_id == rek.list_faces(CollectionId=col, FaceIds=indexed["obama-1"])["Faces"][0]["ImageId"]

    # ListFaces, two at a time, as the examples page through a collection
    seen: list[str] = []
    kwargs: dict[str, Any] = {"CollectionId": col, "MaxResults": 2}
    pages = 0
    while True:
        page = rek.list_faces(**kwargs)
        pages += 1
        seen += [f["FaceId"] for f in page["Faces"]]
        assert all(f["IndexFacesModelVersion"] == created["FaceModelVersion"] for f in page["Faces"])
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert len(seen) == len(set(seen)) == 6 and pages == 3

    by_id = rek.search_faces(
        CollectionId=col, FaceId=indexed["obama-1"][0], FaceMatchThreshold=80, MaxFaces=5
    )
    assert by_id["SearchedFaceId"] == indexed["obama-1"][0]
    assert {m["Face"]["ExternalImageId"] for m in by_id["FaceMatches"]} >= {"obama-2", "obama-1b"}
    for m in by_id["FaceMatches"]:
        assert m["Face"]["BoundingBox"]["Width"] > 0 and 0 < m["Face"]["Confidence"] <= 100
        assert m["Face"]["IndexFacesModelVersion"] == created["FaceModelVersion"]
    by_image = rek.search_faces_by_image(
        CollectionId=col, Image=image(OBAMA3), FaceMatchThreshold=80, MaxFaces=5
    )
    assert "obama-1" in {m["Face"]["ExternalImageId"] for m in by_image["FaceMatches"]}
    assert "biden" not in {m["Face"]["ExternalImageId"] for m in by_image["FaceMatches"]}

    detected = rek.detect_faces(Image=image(TWO), Attributes=["ALL"])
    assert len(detected["FaceDetails"]) == 2
    for d in detected["FaceDetails"]:
        assert {"EyesOpen", "MouthOpen", "Pose", "Quality", "Landmarks"} <= set(d)
        assert not {"AgeRange", "Gender", "Emotions"} & set(d)  # never inferred (docs/api.md)
        assert 50 <= d["EyesOpen"]["Confidence"] <= 100

    compared = rek.compare_faces(SourceImage=image(OBAMA), TargetImage=image(TWO), SimilarityThreshold=80)
    assert len(compared["FaceMatches"]) == 1 and len(compared["UnmatchedFaces"]) == 1

    deleted = rek.delete_faces(CollectionId=col, FaceIds=indexed["biden"])
    assert deleted["DeletedFaces"] == indexed["biden"]
    assert rek.describe_collection(CollectionId=col)["FaceCount"] == 5
    assert rek.delete_collection(CollectionId=col)["StatusCode"] == 200
    assert col not in rek.list_collections()["CollectionIds"]
    with pytest.raises(ClientError) as e:  # byte-identical to a read made a moment ago: fine
        rek.describe_collection(CollectionId=col)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["RequestId"]

    ops = [c[0] for c in rec.calls]
    found = rec.problems()
    assert not found, "\n".join(found)
    assert len(ops) == 21 and len(set(ops)) == 11, ops
    # Accountability intact: every entry names the key, its three roles and the bound purpose;
    # no ExternalImageId is written in clear.
    log = AuditLog(api.home / "audit.jsonl")
    mine = log.query(key_id=key.access_key_id)
    assert {e["operation"] for e in mine} >= {
        "IndexFaces",
        "SearchFaces",
        "SearchFacesByImage",
        "CompareFaces",
    }
    assert all(e["purpose"] == purpose for e in mine)
    assert all(e["actor"]["roles"] == ["admin", "indexer", "searcher"] for e in mine)
    text = json.dumps(mine)
    assert "obama-1" not in text and "two-people" not in text
    psn = next(e for e in mine if e["operation"] == "IndexFaces")["inputs"]["external_image_id"]
    assert log.subjects.resolve(psn) is not None  # an auditor with the secrets can resolve it


def _served_wire_operations() -> set[str]:
    from serve.service import OPERATIONS
    from serve.streams import stream_operations

    return {op.name for op in [*OPERATIONS, *stream_operations()] if op.rekognition}


def test_every_served_operation_answers_in_botocores_shape(api: Api) -> None:
    """Every operation of the wire protocol, called by boto3, answers in botocore's shape."""
    rec = Recorder()

    def as_role(*roles: Role, purpose: str | None = None) -> Any:
        k = api.keystore.create(list(roles), "tests/api shapes", purpose=purpose)
        return sdk_client(api, k.access_key_id, k.secret_access_key, rec)

    key = as_role(Role.ADMIN, Role.INDEXER, Role.SEARCHER, purpose="shape walk")
    viewer = as_role(Role.VIEWER)
    col, name = f"shapes-{secrets.token_hex(3)}", f"shapes-{secrets.token_hex(3)}"
    key.create_collection(CollectionId=col)
    key.describe_collection(CollectionId=col)
    key.list_collections()
    ids = [r["Face"]["FaceId"] for r in key.index_faces(CollectionId=col, Image=image(OBAMA))["FaceRecords"]]
    ids += [
        r["Face"]["FaceId"] for r in key.index_faces(CollectionId=col, Image=image(OBAMA2))["FaceRecords"]
    ]
    key.list_faces(CollectionId=col)
    key.search_faces(CollectionId=col, FaceId=ids[0])
    key.search_faces_by_image(CollectionId=col, Image=image(OBAMA3))
    key.compare_faces(SourceImage=image(OBAMA), TargetImage=image(TWO))
    key.detect_faces(Image=image(TWO), Attributes=["ALL"])
    key.detect_faces(Image=image(OBAMA))
    key.create_user(CollectionId=col, UserId="barack")
    key.associate_faces(CollectionId=col, UserId="barack", FaceIds=ids)
    key.list_users(CollectionId=col)
    key.search_users(CollectionId=col, UserId="barack")
    key.search_users(CollectionId=col, FaceId=ids[0])
    key.search_users_by_image(CollectionId=col, Image=image(OBAMA3))
    key.disassociate_faces(CollectionId=col, UserId="barack", FaceIds=ids[:1])
    key.delete_user(CollectionId=col, UserId="barack")
    key.delete_faces(CollectionId=col, FaceIds=ids[:1])

    key.create_stream_processor(
        Input={"KinesisVideoStream": {"Arn": str(face(CLIP))}},
        Output={},
        Name=name,
        Settings={"FaceSearch": {"CollectionId": col, "FaceMatchThreshold": 95.0}},
        RoleArn="arn:aws:iam::123456789012:role/facestream-not-used",
    )
    viewer.describe_stream_processor(Name=name)
    viewer.list_stream_processors()
    # Rekognition updates only ConnectedHome settings, which facestream does not have; a valid
    # boto3 update that changes nothing facestream keeps:
    key.update_stream_processor(Name=name, DataSharingPreferenceForUpdate={"OptIn": False})
    key.start_stream_processor(Name=name)
    key.stop_stream_processor(Name=name)
    viewer.describe_stream_processor(Name=name)
    key.delete_stream_processor(Name=name)
    key.delete_collection(CollectionId=col)

    found = rec.problems()
    assert not found, "\n".join(found)
    walked = {c[0] for c in rec.calls if c[1] == 200}
    assert walked == _served_wire_operations() - WIRE_EXTENSIONS
    assert _served_wire_operations() >= WIRE_EXTENSIONS
    assert walked <= set(service_model().operation_names)
