"""The match-event query on a real SQLite event store: filters, collection runs, signed pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from facestream.errors import InvalidParameter
from pipelines.event_query import EventFilter, EventQuery, close_run, record_run
from pipelines.sinks import EventStore


def _record(n: int, processor: str, ext: str, ts: float, sim: float = 90.0) -> dict[str, Any]:
    return {
        "EventId": f"ev-{n:03d}",
        "Revision": 1,
        "TrackId": f"t{n}",
        "InputInformation": {
            "Stream": {"Name": processor, "FrameOffsetInSeconds": 1.0, "ServerTimestamp": ts}
        },
        "FaceSearchResponse": [
            {"MatchedFaces": [{"Similarity": sim, "Face": {"FaceId": f"f-{ext}", "ExternalImageId": ext}}]}
        ],
    }


@pytest.fixture
def query(tmp_path: Path) -> EventQuery:
    path = tmp_path / "events.sqlite3"
    record_run(path, "cam-a", "watchlist")
    q = EventQuery(path, b"k" * 32)
    # cam-a searched "watchlist" from t=100 to t=200, then "staff" from t=200 on.
    q._db.execute("UPDATE processor_runs SET started_ts = 100")
    q._db.commit()
    close_run(path, "cam-a")
    q._db.execute("UPDATE processor_runs SET stopped_ts = 200")
    q._db.commit()
    q.record_run("cam-a", "staff", now_s=200.5)
    q.record_run("cam-b", "watchlist", now_s=100)
    store = EventStore(path)
    store.upsert(
        [_record(i, "cam-a", "lin" if i % 2 else "alex", 100.0 + 20 * i) for i in range(1, 9)]
        + [_record(50, "cam-b", "lin", 150.0, sim=70.0)]
    )
    store.close()
    return q


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["EventId"] for e in events]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (EventFilter(processor="cam-b"), ["ev-050"]),
        (EventFilter(processor="cam-a", external_image_id="lin"), ["ev-001", "ev-003", "ev-005", "ev-007"]),
        (EventFilter(collection="watchlist"), ["ev-001", "ev-002", "ev-050", "ev-003", "ev-004", "ev-005"]),
        (EventFilter(collection="staff"), ["ev-006", "ev-007", "ev-008"]),
        (EventFilter(start_ts=160, end_ts=200), ["ev-003", "ev-004", "ev-005"]),
        (EventFilter(min_similarity=80, external_image_id="lin", end_ts=150), ["ev-001"]),
        (EventFilter(collection="nobody"), []),
    ],
)
def test_filters(query: EventQuery, flt: EventFilter, expected: list[str]) -> None:
    events, token = query.query(flt, max_results=100)
    assert _ids(events) == expected and token is None


def test_pages_are_complete_and_bound_to_their_filter(query: EventQuery) -> None:
    flt = EventFilter(processor="cam-a")
    seen: list[str] = []
    token = None
    while True:
        page, token = query.query(flt, max_results=3, next_token=token)
        assert len(page) <= 3
        seen += _ids(page)
        if token is None:
            break
    assert seen == [f"ev-{i:03d}" for i in range(1, 9)]
    _, token = query.query(flt, max_results=3)
    assert token is not None
    with pytest.raises(InvalidParameter, match="NextToken"):
        query.query(EventFilter(processor="cam-b"), max_results=3, next_token=token)
    for bad in ("", "x", "e30.AAAA", "ø.ø", token[:-2] + "AA"):
        with pytest.raises(InvalidParameter, match="NextToken"):
            query.query(flt, max_results=3, next_token=bad)
    with pytest.raises(InvalidParameter, match="MaxResults"):
        query.query(flt, max_results=0)
