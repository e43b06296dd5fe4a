"""The real boto3 Rekognition client against the running API: every supported operation, then
the ways a request must be refused (wrong secret, unknown or revoked key, stale or replayed
signature, wrong role, no purpose)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import botocore.auth
import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from serve.client import add_facestream_headers
from tests.api.conftest import PURPOSE, Api
from tests.helpers import face

pytestmark = pytest.mark.slow

OBAMA = "face_recognition/tests/test_images/obama.jpg"
OBAMA2 = "face_recognition/tests/test_images/obama2.jpg"
OBAMA3 = "face_recognition/tests/test_images/obama3.jpg"
BIDEN = "face_recognition/tests/test_images/biden.jpg"
TWO = "face_recognition/examples/two_people.jpg"


def client(
    api: Api, role: str, *, purpose: str | None = None, secret: str | None = None, nonce: bool = True
) -> Any:
    key = api.keys[role]
    c = boto3.client(
        "rekognition",
        endpoint_url=api.url,
        region_name="us-east-1",
        aws_access_key_id=key.key_id,
        aws_secret_access_key=secret or key.secret,
        config=Config(retries={"max_attempts": 1}, read_timeout=300, connect_timeout=10),
    )
    return add_facestream_headers(c, purpose, nonce=nonce)


def img(rel: str) -> dict[str, bytes]:
    return {"Bytes": face(rel).read_bytes()}


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_every_operation_with_boto3(api: Api) -> None:
    admin = client(api, "admin")
    indexer = client(api, "indexer")
    searcher = client(api, "searcher", purpose=PURPOSE)
    viewer = client(api, "viewer")
    col = "boto3-col"
    # An unmodified client (no facestream headers at all) works too.
    plain = boto3.client(
        "rekognition",
        endpoint_url=api.url,
        region_name="eu-west-1",
        aws_access_key_id=api.keys["viewer"].key_id,
        aws_secret_access_key=api.keys["viewer"].secret,
    )
    assert "CollectionIds" in plain.list_collections()

    out = admin.create_collection(CollectionId=col)
    assert out["StatusCode"] == 200 and out["FaceModelVersion"] == "1.0"
    with pytest.raises(ClientError) as e:
        admin.create_collection(CollectionId=col)
    assert code(e) == ("ResourceAlreadyExistsException", 400)
    assert col in viewer.list_collections()["CollectionIds"]

    # IndexFaces with ExternalImageId, MaxFaces, QualityFilter, DetectionAttributes
    o1 = indexer.index_faces(
        CollectionId=col,
        Image=img(OBAMA),
        ExternalImageId="obama-1",
        DetectionAttributes=["DEFAULT"],
        QualityFilter="AUTO",
    )
    assert len(o1["FaceRecords"]) == 1
    rec = o1["FaceRecords"][0]
    assert rec["Face"]["ExternalImageId"] == "obama-1"
    box = rec["Face"]["BoundingBox"]
    assert all(0.0 <= box[k] <= 1.0 for k in ("Width", "Height", "Left", "Top"))
    obama1 = rec["Face"]["FaceId"]
    obama2 = indexer.index_faces(CollectionId=col, Image=img(OBAMA2), ExternalImageId="obama-2")[
        "FaceRecords"
    ][0]["Face"]["FaceId"]
    two = indexer.index_faces(
        CollectionId=col, Image=img(TWO), ExternalImageId="two", MaxFaces=1, QualityFilter="NONE"
    )
    assert len(two["FaceRecords"]) == 1
    assert [u["Reasons"] for u in two["UnindexedFaces"]] == [["EXCEEDS_MAX_FACES"]]
    biden = indexer.index_faces(CollectionId=col, Image=img(BIDEN), ExternalImageId="biden")["FaceRecords"][
        0
    ]["Face"]["FaceId"]

    desc = viewer.describe_collection(CollectionId=col)
    assert desc["FaceCount"] == 4 and desc["UserCount"] == 0
    assert isinstance(desc["CreationTimestamp"], dt.datetime)

    # ListFaces with pagination tokens
    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = viewer.list_faces(CollectionId=col, MaxResults=3, **kw)
        seen += [f["FaceId"] for f in page["Faces"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(seen) == 4 == len(set(seen)) and obama1 in seen
    with pytest.raises(ClientError) as e:
        viewer.list_faces(CollectionId=col, NextToken="bm90LWEtdG9rZW4.AAAA")
    assert code(e) == ("InvalidPaginationTokenException", 400)

    # SearchFacesByImage: largest face, threshold 80 by default
    res = searcher.search_faces_by_image(CollectionId=col, Image=img(OBAMA3), MaxFaces=5)
    ext = [m["Face"]["ExternalImageId"] for m in res["FaceMatches"]]
    assert ext[:2] and set(ext[:2]) == {"obama-1", "obama-2"} and "biden" not in ext
    assert all(80.0 <= m["Similarity"] <= 100.0 for m in res["FaceMatches"])
    # SearchFaces by FaceId: never returns the face itself
    res = searcher.search_faces(CollectionId=col, FaceId=obama1, FaceMatchThreshold=80)
    assert res["SearchedFaceId"] == obama1
    assert [m["Face"]["FaceId"] for m in res["FaceMatches"]][:1] == [obama2]
    # CompareFaces and DetectFaces
    cmp = searcher.compare_faces(SourceImage=img(OBAMA), TargetImage=img(TWO), SimilarityThreshold=80)
    assert len(cmp["FaceMatches"]) == 1 and len(cmp["UnmatchedFaces"]) == 1
    det = searcher.detect_faces(Image=img(TWO), Attributes=["DEFAULT"])
    assert len(det["FaceDetails"]) == 2
    assert {lm["Type"] for lm in det["FaceDetails"][0]["Landmarks"]} >= {"eyeLeft", "nose"}

    # Users: one identity made of several faces
    assert set(indexer.create_user(CollectionId=col, UserId="barack")) == {"ResponseMetadata"}
    with pytest.raises(ClientError) as e:
        indexer.create_user(CollectionId=col, UserId="barack", ClientRequestToken="again-1")
    assert code(e) == ("ConflictException", 400)
    assoc = indexer.associate_faces(CollectionId=col, UserId="barack", FaceIds=[obama1, obama2, biden])
    assert {f["FaceId"] for f in assoc["AssociatedFaces"]} == {obama1, obama2}
    assert [(f["FaceId"], f["Reasons"]) for f in assoc["UnsuccessfulFaceAssociations"]] == [
        (biden, ["LOW_MATCH_CONFIDENCE"])
    ]
    assert assoc["UserStatus"] == "ACTIVE"
    indexer.create_user(CollectionId=col, UserId="joe")
    indexer.associate_faces(CollectionId=col, UserId="joe", FaceIds=[biden])
    users = viewer.list_users(CollectionId=col, MaxResults=1)
    assert [u["UserId"] for u in users["Users"]] == ["barack"] and users["NextToken"]
    users2 = viewer.list_users(CollectionId=col, NextToken=users["NextToken"])
    assert [u["UserId"] for u in users2["Users"]] == ["joe"]
    byimg = searcher.search_users_by_image(CollectionId=col, Image=img(OBAMA3))
    assert [m["User"]["UserId"] for m in byimg["UserMatches"]] == ["barack"]
    assert byimg["SearchedFace"]["FaceDetail"]["BoundingBox"]
    byface = searcher.search_users(CollectionId=col, FaceId=obama1, UserMatchThreshold=50)
    assert byface["SearchedFace"] == {"FaceId": obama1}
    assert "barack" in [m["User"]["UserId"] for m in byface["UserMatches"]]
    byuser = searcher.search_users(CollectionId=col, UserId="joe", UserMatchThreshold=0)
    assert byuser["SearchedUser"] == {"UserId": "joe"}
    assert [m["User"]["UserId"] for m in byuser["UserMatches"]] == ["barack"]  # never itself

    # DeleteFaces refuses faces of a user until they are disassociated
    d = indexer.delete_faces(CollectionId=col, FaceIds=[obama2])
    assert d["DeletedFaces"] == [] and d["UnsuccessfulFaceDeletions"][0]["Reasons"] == [
        "ASSOCIATED_TO_AN_EXISTING_USER"
    ]
    dis = indexer.disassociate_faces(CollectionId=col, UserId="barack", FaceIds=[obama2])
    assert dis["DisassociatedFaces"] == [{"FaceId": obama2}] and dis["UserStatus"] == "ACTIVE"
    assert indexer.delete_faces(CollectionId=col, FaceIds=[obama2])["DeletedFaces"] == [obama2]
    indexer.delete_user(CollectionId=col, UserId="barack")
    faces = viewer.list_faces(CollectionId=col)["Faces"]
    assert all("UserId" not in f for f in faces if f["FaceId"] == obama1)
    assert viewer.describe_collection(CollectionId=col)["UserCount"] == 1

    assert admin.delete_collection(CollectionId=col)["StatusCode"] == 200
    with pytest.raises(ClientError) as e:
        viewer.describe_collection(CollectionId=col)
    assert code(e) == ("ResourceNotFoundException", 400)


def test_refusals(api: Api) -> None:
    admin = client(api, "admin")
    admin.create_collection(CollectionId="boto3-refusals")

    with pytest.raises(ClientError) as e:
        client(api, "viewer", secret="x" * 40).list_collections()
    assert code(e) == ("InvalidSignatureException", 401)

    bogus = boto3.client(
        "rekognition",
        endpoint_url=api.url,
        region_name="us-east-1",
        aws_access_key_id="FSKNOSUCHKEY00000000",
        aws_secret_access_key="y" * 40,
    )
    with pytest.raises(ClientError) as e:
        bogus.list_collections()
    assert code(e) == ("UnrecognizedClientException", 401)

    # 403: a known key whose role may not search; the message names the allowed roles
    with pytest.raises(ClientError) as e:
        client(api, "viewer", purpose=PURPOSE).search_faces_by_image(
            CollectionId="boto3-refusals", Image=img(OBAMA)
        )
    assert code(e) == ("AccessDeniedException", 403)
    assert "searcher" in e.value.response["Error"]["Message"]

    # a search without a purpose
    with pytest.raises(ClientError) as e:
        client(api, "searcher").search_faces_by_image(CollectionId="boto3-refusals", Image=img(OBAMA))
    assert code(e) == ("PurposeRequiredException", 400)

    # bad input: 4xx with a code and a message, never a 500
    with pytest.raises(ClientError) as e:
        client(api, "searcher").detect_faces(Image={"Bytes": b"not an image at all"})
    assert code(e) == ("InvalidImageFormatException", 400)
    with pytest.raises(ClientError) as e:
        client(api, "searcher").detect_faces(
            Image={"S3Object": {"Bucket": "test-faces", "Name": "../../etc/passwd"}}
        )
    assert code(e) == ("InvalidS3ObjectException", 400)
    # an S3Object inside a configured image root is read from disk
    det = client(api, "searcher").detect_faces(Image={"S3Object": {"Bucket": "test-faces", "Name": TWO}})
    assert len(det["FaceDetails"]) == 2


def _signed(api: Api, role: str, target: str, body: bytes, when: dt.datetime | None = None) -> AWSRequest:
    key = api.keys[role]
    req = AWSRequest(
        method="POST",
        url=api.url + "/",
        data=body,
        headers={
            "X-Amz-Target": f"RekognitionService.{target}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    signer = botocore.auth.SigV4Auth(Credentials(key.key_id, key.secret), "rekognition", "us-east-1")
    if when is None:
        signer.add_auth(req)
    else:
        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: when  # type: ignore[assignment]
        try:
            signer.add_auth(req)
        finally:
            botocore.auth.get_current_datetime = original
    return req


def _send(req: AWSRequest) -> requests.Response:
    return requests.post(req.url, data=req.body, headers=dict(req.headers.items()), timeout=60)


def test_replayed_and_stale_signatures_are_refused(api: Api) -> None:
    req = _signed(api, "admin", "CreateCollection", b'{"CollectionId": "boto3-replayed"}')
    first = _send(req)
    assert first.status_code == 200, first.text
    again = _send(req)
    assert again.status_code == 401
    assert again.json()["__type"] == "InvalidSignatureException" and "already used" in again.json()["message"]
    # An idempotent, unaudited read may come twice (an SDK's retry, or the same call twice in
    # one second signs byte-identically): serve.service.REPEATABLE_READS.
    read = _signed(api, "viewer", "ListCollections", b"{}")
    assert _send(read).status_code == 200 and _send(read).status_code == 200

    stale = _signed(
        api,
        "viewer",
        "ListCollections",
        b"{}",
        when=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10),
    )
    r = _send(stale)
    assert r.status_code == 401 and "expired" in r.json()["message"]

    # a body changed after signing
    tampered = _signed(api, "viewer", "ListCollections", b"{}")
    r = requests.post(
        tampered.url, data=b'{"MaxResults": 1}', headers=dict(tampered.headers.items()), timeout=60
    )
    assert r.status_code == 401 and r.json()["__type"] == "InvalidSignatureException"

    # unknown operation, no signature at all
    r = requests.post(
        api.url + "/", data=b"{}", headers={"X-Amz-Target": "RekognitionService.DetectLabels"}, timeout=60
    )
    assert r.status_code == 400 and r.json()["__type"] == "UnknownOperationException"
    r = requests.post(
        api.url + "/", data=b"{}", headers={"X-Amz-Target": "RekognitionService.ListCollections"}, timeout=60
    )
    assert r.status_code == 401 and r.json()["__type"] == "MissingAuthenticationTokenException"


def test_revoked_key_is_refused_at_once(api: Api) -> None:
    new = api.keystore.create("viewer", "to be revoked")
    c = boto3.client(
        "rekognition",
        endpoint_url=api.url,
        region_name="us-east-1",
        aws_access_key_id=new.access_key_id,
        aws_secret_access_key=new.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )
    add_facestream_headers(c)
    c.list_collections()
    api.keystore.revoke(new.access_key_id)
    with pytest.raises(ClientError) as e:
        c.list_collections()
    assert code(e) == ("UnrecognizedClientException", 401)
