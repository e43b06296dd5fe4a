"""Human confirmation: candidates, distinct reviewers, release into the spool, suppression."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from facestream.errors import InvalidParameter, ResourceNotFound
from pipelines.review import (
    AlreadyReviewed,
    CandidateDecided,
    Decision,
    Filing,
    ReviewStore,
    Status,
    effective_required,
)
from pipelines.sinks import Spool

SINKS = ["jsonl:/x", "event-store:/y"]


def record(
    eid: str = "ev1", rev: int = 1, track: str = "t1", face: str = "f1", ext: str = "alice"
) -> dict[str, Any]:
    return {
        "EventId": eid,
        "Revision": rev,
        "TrackId": track,
        "InputInformation": {
            "Stream": {"Name": "cam1", "FrameOffsetInSeconds": 1.5, "ServerTimestamp": 1000.0 + rev}
        },
        "FaceSearchResponse": [
            {"MatchedFaces": [{"Similarity": 90.0 + rev, "Face": {"FaceId": face, "ExternalImageId": ext}}]}
        ],
    }


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    s = ReviewStore(tmp_path / "review.sqlite3")
    yield s
    s.close()


def submit(store: ReviewStore, tmp_path: Path, rec: dict[str, Any], required: int = 2) -> Filing:
    return store.submit(
        rec,
        collection="watch",
        required=required,
        sinks=SINKS,
        spool=tmp_path / "spool.sqlite3",
        crop_jpeg=b"J",
    )


def spooled(tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    sp = Spool(tmp_path / "spool.sqlite3")
    try:
        return {s: sp.pending(s, 100) for s in SINKS}
    finally:
        sp.close()


def test_policy_set_read_and_bounds(store: ReviewStore) -> None:
    assert store.policy("watch") is None
    assert effective_required(None, False) == 0 and effective_required(None, True) == 2
    store.set_policy("watch", 3, by="k1")
    assert store.policy("watch") == 3 and effective_required(3, False) == 3
    store.set_policy("watch", 0, by="k1")
    assert effective_required(store.policy("watch"), True) == 0  # the explicit policy wins
    with pytest.raises(InvalidParameter):
        store.set_policy("watch", 6, by="k1")


def test_two_distinct_reviewers_release_once(store: ReviewStore, tmp_path: Path) -> None:
    assert submit(store, tmp_path, record()) is Filing.CANDIDATE
    assert spooled(tmp_path) == {s: [] for s in SINKS}  # nothing leaves before review
    cand, released = store.decide("ev1", reviewer="rev-a", role="reviewer", decision=Decision.CONFIRM)
    assert cand.status is Status.PENDING and not released and cand.confirmations == ["rev-a"]
    with pytest.raises(AlreadyReviewed):
        store.decide("ev1", reviewer="rev-a", role="reviewer", decision=Decision.CONFIRM)
    cand, released = store.decide(
        "ev1", reviewer="rev-b", role="reviewer", decision=Decision.CONFIRM, reason="ok"
    )
    assert released and cand.status is Status.CONFIRMED and cand.released
    out = spooled(tmp_path)
    for s in SINKS:
        assert [(r["EventId"], r["Review"]["ConfirmedBy"]) for r in out[s]] == [("ev1", ["rev-a", "rev-b"])]
    with pytest.raises(CandidateDecided):
        store.decide("ev1", reviewer="rev-c", role="reviewer", decision=Decision.REJECT)
    assert store.release_pending() == 0  # released exactly once
    # A later, better revision of a confirmed event goes straight out (the caller spools it).
    assert submit(store, tmp_path, record(rev=2)) is Filing.RELEASE
    assert store.get("ev1").revision == 2


def test_rejection_suppresses_the_whole_track(store: ReviewStore, tmp_path: Path) -> None:
    submit(store, tmp_path, record())
    submit(store, tmp_path, record(rev=2))  # a newer look replaces the pending one
    cand = store.get("ev1")
    assert cand.revision == 2 and cand.status is Status.PENDING
    cand, released = store.decide(
        "ev1", reviewer="rev-a", role="reviewer", decision=Decision.REJECT, reason="no"
    )
    assert cand.status is Status.REJECTED and not released
    assert store.track_suppressed("cam1", "t1")
    # Same track, another identity or revision: suppressed; another track is not.
    assert submit(store, tmp_path, record(eid="ev2", face="f2", ext="bob")) is Filing.SUPPRESSED
    assert submit(store, tmp_path, record(rev=3)) is Filing.SUPPRESSED
    assert submit(store, tmp_path, record(eid="ev3", track="t2")) is Filing.CANDIDATE
    assert spooled(tmp_path) == {s: [] for s in SINKS}
    assert [d.decision for d in store.get("ev1").decisions] == [Decision.REJECT]


def test_single_reviewer_policy_and_listing(store: ReviewStore, tmp_path: Path) -> None:
    submit(store, tmp_path, record(), required=1)
    submit(store, tmp_path, record(eid="ev2", track="t2"), required=1)
    assert [c.event_id for c in store.candidates(status=Status.PENDING)] == ["ev1", "ev2"]
    _, released = store.decide("ev2", reviewer="r", role="reviewer", decision=Decision.CONFIRM)
    assert released
    assert [c.event_id for c in store.candidates(status=Status.CONFIRMED)] == ["ev2"]
    assert store.counts() == {"PENDING": 1, "CONFIRMED": 1}
    assert store.crop("ev1") == b"J"
    with pytest.raises(ResourceNotFound):
        store.get("nope")
    with pytest.raises(InvalidParameter):
        store.decide("ev1", reviewer="", role="reviewer", decision=Decision.CONFIRM)


def test_release_retries_when_the_spool_was_unwritable(store: ReviewStore, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the spool directory should be")
    store.submit(
        record(), collection="watch", required=1, sinks=SINKS, spool=blocked / "s.sqlite3", crop_jpeg=None
    )
    cand, released = store.decide("ev1", reviewer="r", role="reviewer", decision=Decision.CONFIRM)
    assert cand.status is Status.CONFIRMED and not released and not cand.released
    blocked.unlink()
    assert store.release_pending("cam1") == 1
    assert store.get("ev1").released


def test_erasure_and_retention(tmp_path: Path) -> None:
    now = [5000.0]
    store = ReviewStore(tmp_path / "r.sqlite3", clock=lambda: now[0])
    try:
        submit(store, tmp_path, record())
        store.decide("ev1", reviewer="r", role="reviewer", decision=Decision.CONFIRM)
        submit(store, tmp_path, record(eid="ev2", track="t2", face="f2", ext="bob"))
        now[0] = 9000.0
        submit(store, tmp_path, record(eid="ev3", track="t3", face="f3", ext="carol"))
        assert store.erase(external_image_id="alice") == 1
        assert store.erase(face_ids=["f2"]) == 1
        assert [c.event_id for c in store.candidates()] == ["ev3"]
        assert store.delete_older_than(9500.0) == 1
        assert store.candidates() == []
        # The decisions went with the candidates.
        assert store._db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
    finally:
        store.close()
