"""Human confirmation over HTTP: policy, candidate queue, two distinct reviewer keys, release.

The candidate is filed the way a stream worker files it (into the review store of the API's
home); the reviewers then act only through the running API."""

from __future__ import annotations

import time
from typing import Any

import pytest

from facestream.audit import AuditLog
from pipelines.review import ReviewStore, review_path
from pipelines.sinks import Spool
from serve.keys import Role
from tests.api.conftest import Api, Key
from tests.api.test_http import b64, err

pytestmark = pytest.mark.slow

COL = "review-col"
OBAMA = "face_recognition/tests/test_images/obama.jpg"
SINKS = ["jsonl:/tmp/unused.jsonl"]


def _record(eid: str, track: str, face_id: str) -> dict[str, Any]:
    return {
        "EventId": eid,
        "Revision": 1,
        "TrackId": track,
        "InputInformation": {
            "Stream": {"Name": "cam-review", "FrameOffsetInSeconds": 2.0, "ServerTimestamp": time.time()}
        },
        "FaceSearchResponse": [
            {"MatchedFaces": [{"Similarity": 97.5, "Face": {"FaceId": face_id, "ExternalImageId": "obama"}}]}
        ],
    }


def _as(api: Api, key: Key, op: str, body: dict[str, Any]) -> Any:
    import requests

    return requests.post(f"{api.url}/v1/{op}", json=body, headers=key.bearer, timeout=60)


def test_review_queue_two_reviewers_release_and_reject(api: Api) -> None:
    assert api.post("CreateCollection", {"CollectionId": COL}).status_code == 200
    r = api.post(
        "IndexFaces",
        {"CollectionId": COL, "Image": {"Bytes": b64(OBAMA)}, "ExternalImageId": "obama"},
        role="indexer",
    )
    assert r.status_code == 200, r.text
    face_id = r.json()["FaceRecords"][0]["Face"]["FaceId"]

    # Policy: admin sets it, everyone reads it; bounds are checked.
    r = api.post("PutReviewPolicy", {"CollectionId": COL, "RequiredConfirmations": 2})
    assert r.status_code == 200 and r.json()["RequiredConfirmations"] == 2, r.text
    assert (
        api.post(
            "PutReviewPolicy", {"CollectionId": COL, "RequiredConfirmations": 2}, role="reviewer"
        ).status_code
        == 403
    )
    assert (
        api.post("DescribeReviewPolicy", {"CollectionId": COL}, role="viewer").json()["RequiredConfirmations"]
        == 2
    )
    r = api.post("PutReviewPolicy", {"CollectionId": COL, "RequiredConfirmations": 9})
    assert r.status_code == 400 and err(r)["code"] == "InvalidParameterException"
    r = api.post("DescribeReviewPolicy", {"CollectionId": "no-such-col"})
    assert r.status_code == 400 and err(r)["code"] == "ResourceNotFoundException"

    # Two candidates, as a stream worker files them.
    spool = api.home / "spool" / "cam-review.sqlite3"
    store = ReviewStore(review_path(api.home))
    for eid, track in (("ev-confirm", "t1"), ("ev-reject", "t2")):
        store.submit(
            _record(eid, track, face_id),
            collection=COL,
            required=2,
            sinks=SINKS,
            spool=spool,
            crop_jpeg=b"\xff\xd8jpeg",
        )
    store.close()

    r = api.post("ListMatchCandidates", {"Status": "PENDING"}, role="reviewer")
    assert r.status_code == 200, r.text
    assert {c["EventId"] for c in r.json()["Candidates"]} >= {"ev-confirm", "ev-reject"}
    assert api.post("ListMatchCandidates", {}, role="searcher").status_code == 403
    r = api.post("GetMatchCandidate", {"EventId": "ev-confirm"}, role="reviewer")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["StreamFace"]["Jpeg"] and body["Candidate"]["Status"] == "PENDING"
    assert [f["FaceId"] for f in body["EnrolledFaces"]] == [face_id]
    r = api.post("GetMatchCandidate", {"EventId": "nope"}, role="reviewer")
    assert r.status_code == 400 and err(r)["code"] == "ResourceNotFoundException"
    r = api.post("GetMatchCandidate", {"EventId": "x' or 1=1 --"}, role="reviewer")
    assert r.status_code == 400

    # Two distinct reviewer keys; the same key twice is refused; admins cannot decide.
    second = api.keystore.create(Role.REVIEWER, "second reviewer")
    key_b = Key(second.access_key_id, second.secret_access_key)
    confirm = {"EventId": "ev-confirm", "Decision": "CONFIRM", "Reason": "same person"}
    assert api.post("ReviewMatchCandidate", confirm, role="admin").status_code == 403
    r = api.post("ReviewMatchCandidate", confirm, role="reviewer")
    assert r.status_code == 200 and r.json()["Candidate"]["Confirmations"] == 1, r.text
    assert not r.json()["Candidate"]["Released"]
    r = api.post("ReviewMatchCandidate", confirm, role="reviewer")
    assert r.status_code == 409 and err(r)["code"] == "AlreadyReviewedException"
    r = _as(api, key_b, "ReviewMatchCandidate", confirm)
    assert r.status_code == 200, r.text
    cand = r.json()["Candidate"]
    assert cand["Status"] == "CONFIRMED" and cand["Released"] and cand["Confirmations"] == 2
    r = _as(api, key_b, "ReviewMatchCandidate", {"EventId": "ev-confirm", "Decision": "REJECT"})
    assert r.status_code == 409 and err(r)["code"] == "CandidateDecidedException"

    r = api.post(
        "ReviewMatchCandidate",
        {"EventId": "ev-reject", "Decision": "REJECT", "Reason": "not him"},
        role="reviewer",
    )
    assert r.status_code == 200 and r.json()["Candidate"]["Status"] == "REJECTED"

    # Released exactly the confirmed one, into the processor's spool, with who confirmed.
    sp = Spool(spool)
    try:
        out = sp.pending(SINKS[0], 10)
    finally:
        sp.close()
    assert [(o["EventId"], o["Review"]["ConfirmedBy"]) for o in out] == [
        ("ev-confirm", [api.keys["reviewer"].key_id, key_b.key_id])
    ]
    audit = AuditLog(api.home / "audit.jsonl")
    decisions = [
        e for e in audit.query(operation="ReviewMatchCandidate") if e["inputs"]["event_id"].startswith("ev-")
    ]
    assert [(e["actor"]["key_id"], e["inputs"]["decision"]) for e in decisions] == [
        (api.keys["reviewer"].key_id, "CONFIRM"),
        (key_b.key_id, "CONFIRM"),
        (api.keys["reviewer"].key_id, "REJECT"),
    ]
    assert [e["inputs"]["event_id"] for e in audit.query(operation="ReleaseMatchAlert")] == ["ev-confirm"]

    # Previews: none written for an unknown processor; names are validated.
    r = api.post("GetStreamPreview", {"Name": "cam-review"}, role="viewer")
    assert r.status_code == 200 and r.json()["Jpeg"] is None
    assert api.post("GetStreamPreview", {"Name": "../etc"}, role="viewer").status_code == 400
