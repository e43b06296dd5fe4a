"""Fast checks of the stream pieces that need no Ray: config, URLs, sampling, backoff, tracking,
spool and sinks (with a real local HTTP receiver), the processor registry."""

from __future__ import annotations

import http.server
import json
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from facestream.audit import Actor
from facestream.errors import InvalidParameter
from facestream.rekognition import wire_image_id
from facestream.types import FaceBatch, SearchHit
from pipelines.config import (
    DeliveryConfig,
    EventStoreSinkConfig,
    FileSource,
    FleetConfig,
    JsonlSinkConfig,
    ProcessorSettings,
    ReconnectConfig,
    RtspSource,
    TrackerConfig,
    WebhookSinkConfig,
)
from pipelines.events import match_record
from pipelines.manager import ProcessorRegistry, public_settings
from pipelines.sampling import Backoff, FrameSampler
from pipelines.sinks import Deliverer, EventStoreSink, JsonlSink, Spool, WebhookSink
from pipelines.tracker import FaceTracker, FrameInfo, iou_matrix
from pipelines.urls import check_file_allowed, mask_url, scrub, source_from_url, url_secrets

SECRET_URL = "rtsp://admin:hunter2secret@10.0.0.7:554/stream1?token=abcdef123"


# --- config and URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://cam/x", "scheme 'ftp' is not allowed"),
        ("javascript://x", "scheme 'javascript' is not allowed"),
        ("gopher://h/x", "scheme 'gopher' is not allowed"),
        ("concat:a.mp4|b.mp4", "scheme 'concat' is not allowed"),
        ("subfile,,start,0,end,0,,:/etc/passwd", "is not allowed"),
    ],
)
def test_source_scheme_allowlist(url: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        source_from_url(url)


def test_concat_like_paths_are_files_and_must_be_allowed(tmp_path: Path) -> None:
    src = source_from_url("/etc/passwd")
    assert isinstance(src, FileSource)
    with pytest.raises(InvalidParameter, match="outside the allowed media directories"):
        check_file_allowed(src.path, [tmp_path])
    with pytest.raises(InvalidParameter, match="outside"):
        check_file_allowed(tmp_path / ".." / "escape.mp4", [tmp_path])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"analysis_fps": 0}, "analysis_fps"),
        ({"threshold": 101}, "threshold"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"name": "bad name!"}, "name"),
        ({"collection": "a b"}, "collection"),
        ({"purpose": "   "}, "purpose"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_processor_settings_reject_bad_values(kwargs: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {
        "name": "p",
        "source": {"kind": "rtsp", "url": "rtsp://127.0.0.1:8554/cam"},
        "collection": "c",
        "purpose": "case 1",
    }
    with pytest.raises(ValidationError) as exc:
        ProcessorSettings.model_validate({**base, **kwargs})
    assert field in str(exc.value)


def test_fleet_rejects_duplicate_names() -> None:
    p = {
        "name": "p",
        "source": {"kind": "rtsp", "url": "rtsp://127.0.0.1/x"},
        "collection": "c",
        "purpose": "x",
    }
    with pytest.raises(ValidationError, match="unique"):
        FleetConfig.model_validate({"processors": [p, p]})


def test_credentials_are_masked_everywhere() -> None:
    masked = mask_url(SECRET_URL)
    assert "hunter2secret" not in masked and "admin" not in masked and "abcdef123" not in masked
    assert masked.startswith("rtsp://***@10.0.0.7:554/stream1")
    err = f"Connection refused: '{SECRET_URL}' (password hunter2secret)"
    cleaned = scrub(err, url_secrets(SECRET_URL))
    assert "hunter2secret" not in cleaned and "abcdef123" not in cleaned
    settings = ProcessorSettings(
        name="p",
        source=RtspSource(url=SECRET_URL),
        collection="c",
        purpose="x",  # type: ignore[arg-type]
        sinks=(WebhookSinkConfig(url="https://user:pw12345@hooks.example/x", bearer_token="tok-secret"),),  # type: ignore[arg-type]
    )
    shown = json.dumps(public_settings(settings)) + repr(settings) + settings.model_dump_json()
    for secret in ("hunter2secret", "abcdef123", "pw12345", "tok-secret"):
        assert secret not in shown


def test_registry_persists_secrets_privately(tmp_path: Path) -> None:
    reg = ProcessorRegistry(tmp_path / "stream_processors.json")
    settings = ProcessorSettings(
        name="cam1",
        source=RtspSource(url=SECRET_URL),
        collection="c",
        purpose="case 7",  # type: ignore[arg-type]
    )
    reg.put(settings, desired="RUNNING", created_by=Actor("k1", "operator"), replace=False)
    assert (reg.path.stat().st_mode & 0o777) == 0o600
    again = ProcessorRegistry(tmp_path / "stream_processors.json")
    restored = again.settings("cam1")
    assert isinstance(restored.source, RtspSource)
    assert restored.source.url.get_secret_value() == SECRET_URL  # resumable after a restart
    assert again.get("cam1")["desired"] == "RUNNING"


# --- sampling and backoff ---------------------------------------------------------------------


def test_sampler_keeps_5_of_30_fps_by_timestamp() -> None:
    s = FrameSampler(5.0)
    ts = [i / 29.97 + random.Random(i).uniform(-0.003, 0.003) for i in range(300)]  # 10 s, jittered
    kept = [t for t in ts if s.accept(t)]
    assert 49 <= len(kept) <= 51
    gaps = np.diff(kept)
    assert gaps.min() > 0.14 and gaps.max() < 0.27
    # A timestamp going back (new session, looped file) restarts the schedule.
    assert s.accept(0.0)


def test_backoff_is_capped_exponential_with_jitter() -> None:
    cfg = ReconnectConfig(initial_backoff_s=0.5, max_backoff_s=4.0, jitter_ratio=0.2, max_attempts=8)
    b = Backoff(cfg, rng=random.Random(1))
    delays = [b.next_delay_s() for _ in range(8)]
    for n, d in enumerate(delays):
        base = min(4.0, 0.5 * 2**n)
        assert 0.8 * base <= d <= 1.2 * base
    assert b.exhausted()
    b.reset()
    assert not b.exhausted() and b.next_delay_s() <= 0.6


# --- tracking -----------------------------------------------------------------------------------


def _batch(boxes: list[list[float]], embs: list[np.ndarray]) -> FaceBatch:
    n = len(boxes)
    b = np.array(boxes, np.float32).reshape(n, 4)
    lm = np.zeros((n, 5, 2), np.float32)
    return FaceBatch(
        image_width=640,
        image_height=360,
        boxes=b,
        landmarks=lm,
        scores=np.full(n, 0.99, np.float32),
        brightness=np.full(n, 50, np.float32),
        sharpness=np.full(n, 60, np.float32),
        pose=np.zeros((n, 3), np.float32),
        embeddings=np.array(embs, np.float32).reshape(n, -1),
        model="dlib-resnet",
    )


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def _info(t: float) -> FrameInfo:
    return FrameInfo(offset_s=t, producer_ts=1000 + t, server_ts=1000 + t, session=0, monotonic=t)


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 1 / 3, 0.0]], atol=1e-6)


def test_tracker_searches_per_track_and_aggregates_one_event_per_identity() -> None:
    tr = FaceTracker(TrackerConfig(min_face_px=28, research_quality_gain=1.25), threshold=80.0)
    a, b = _unit(1), _unit(2)
    hit = SearchHit(face_id="f-a", similarity=90.0, external_image_id="alice", image_id="0" * 64)
    # Frame 1: two people, each a new track, each searched once.
    reqs = tr.observe(_info(0.0), _batch([[100, 100, 140, 140], [400, 100, 440, 140]], [a, b]))
    assert len(reqs) == 2 and len(tr.tracks) == 2
    ups = tr.apply(reqs[0].track_id, [hit])
    assert [u.revision for u in ups] == [1] and ups[0].identity.external_image_id == "alice"
    assert tr.apply(reqs[1].track_id, []) == []
    # Frames 2..5: same faces, slightly moved: no new tracks, no new searches at equal quality.
    for k in range(1, 5):
        again = tr.observe(
            _info(0.2 * k), _batch([[100 + 3 * k, 100, 140 + 3 * k, 140], [400, 100, 440, 140]], [a, b])
        )
        assert again == []
    assert len(tr.tracks) == 2 and tr.tracks_started == 2
    # A clearly bigger (better) face of track A: searched again; the aggregate updates the same event.
    bigger = tr.observe(_info(1.0), _batch([[100, 100, 160, 160]], [a]))  # 1.5x wider
    assert len(bigger) == 1 and bigger[0].track_id == reqs[0].track_id
    ups2 = tr.apply(bigger[0].track_id, [SearchHit("f-a", 96.0, "alice", "0" * 64)])
    assert [(u.revision, round(u.similarity, 1)) for u in ups2] == [(2, 93.0)]
    # Gap longer than max_gap_s: the track ends, a new one starts (and is searched).
    late = tr.observe(_info(5.0), _batch([[100, 100, 140, 140]], [a]))
    assert len(late) == 1 and late[0].track_id != reqs[0].track_id


def test_tracker_failed_search_is_asked_again_on_the_next_face() -> None:
    tr = FaceTracker(TrackerConfig(min_face_px=28, research_quality_gain=1.25), threshold=80.0)
    a = _unit(5)
    (req,) = tr.observe(_info(0.0), _batch([[100, 100, 140, 140]], [a]))
    # Same face, same quality: normally no second search ...
    assert tr.observe(_info(0.2), _batch([[101, 100, 141, 140]], [a])) == []
    # ... but when the first never reached the store, the next face of the track asks again.
    tr.search_failed([req.track_id, "no-such-track"])
    (again,) = tr.observe(_info(0.4), _batch([[102, 100, 142, 140]], [a]))
    assert again.track_id == req.track_id
    (up,) = tr.apply(again.track_id, [SearchHit("f-a", 92.0, "alice", "0" * 64)])
    assert up.revision == 1 and up.track_searches == 1


def test_tracker_weak_evidence_alone_makes_no_event() -> None:
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    reqs = tr.observe(_info(0.0), _batch([[100, 100, 160, 160]], [_unit(3)]))
    assert tr.apply(reqs[0].track_id, [SearchHit("f-x", 70.0, "x", "0" * 64)]) == []


def test_match_record_shape() -> None:
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    reqs = tr.observe(_info(1.5), _batch([[100, 100, 160, 160]], [_unit(4)]))
    (up,) = tr.apply(reqs[0].track_id, [SearchHit("f-1", 91.0, "bob", "a" * 64)])
    rec = match_record("cam-1", "RUNNING", up)
    assert set(rec["InputInformation"]["Stream"]) == {
        "Name",
        "FrameOffsetInSeconds",
        "ProducerTimestamp",
        "ServerTimestamp",
    }
    assert rec["StreamProcessorInformation"] == {"Status": "RUNNING"}
    (resp,) = rec["FaceSearchResponse"]
    assert set(resp["DetectedFace"]) >= {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    assert resp["MatchedFaces"] == [
        {
            "Similarity": 91.0,
            "Face": {"FaceId": "f-1", "ImageId": wire_image_id("a" * 64), "ExternalImageId": "bob"},
        }
    ]
    # Rekognition's ImageId shape (a UUID), not the stored sha256
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        resp["MatchedFaces"][0]["Face"]["ImageId"],
    )
    assert rec["TrackId"] == reqs[0].track_id and rec["Revision"] == 1
    assert rec["EventId"] == match_record("cam-1", "RUNNING", up)["EventId"]  # stable


# --- spool and sinks ------------------------------------------------------------------------------


def _rec(eid: str, rev: int, name: str = "alice") -> dict[str, Any]:
    return {
        "EventId": eid,
        "Revision": rev,
        "TrackId": "t1",
        "InputInformation": {
            "Stream": {
                "Name": "cam",
                "FrameOffsetInSeconds": 1.0,
                "ProducerTimestamp": 1.0,
                "ServerTimestamp": 100.0 + rev,
            }
        },
        "StreamProcessorInformation": {"Status": "RUNNING"},
        "FaceSearchResponse": [
            {
                "DetectedFace": {},
                "MatchedFaces": [
                    {"Similarity": 90.0 + rev, "Face": {"FaceId": f"f-{name}", "ExternalImageId": name}}
                ],
            }
        ],
    }


def test_spool_coalesces_revisions_and_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3")
    spool.put(["a", "b"], _rec("e1", 1))
    spool.put(["a", "b"], _rec("e1", 2))
    spool.put(["a", "b"], _rec("e2", 1))
    assert [(r["EventId"], r["Revision"]) for r in spool.pending("a", 10)] == [("e1", 2), ("e2", 1)]
    spool.ack("a", spool.pending("a", 10))
    spool.close()
    again = Spool(tmp_path / "s.sqlite3")
    assert again.count("a") == 0 and again.count("b") == 2
    again.close()


def test_jsonl_sink_skips_pairs_already_written(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    JsonlSink(JsonlSinkConfig(path=path)).deliver([_rec("e1", 1), _rec("e1", 2)])
    # A crash after the write and before the spool ack: the same records come again.
    JsonlSink(JsonlSinkConfig(path=path)).deliver([_rec("e1", 2), _rec("e2", 1)])
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["EventId"], r["Revision"]) for r in lines] == [("e1", 1), ("e1", 2), ("e2", 1)]


def test_event_store_keeps_latest_revision_and_queries(tmp_path: Path) -> None:
    sink = EventStoreSink(EventStoreSinkConfig(path=tmp_path / "events.sqlite3"))
    sink.deliver([_rec("e1", 2), _rec("e1", 1), _rec("e2", 1, "bob")])
    store = sink.store
    assert [(r["EventId"], r["Revision"]) for r in store.query(processor="cam")] == [("e2", 1), ("e1", 2)]
    assert [r["EventId"] for r in store.query(external_image_id="bob")] == ["e2"]
    assert store.query(external_image_id="x' OR '1'='1") == []  # bound parameter, not SQL
    assert [r["EventId"] for r in store.query(min_similarity=92.0)] == ["e1"]
    sink.close()


class _Receiver:
    """A real HTTP endpoint on 127.0.0.1 that is 'down' (503 / closed) until told otherwise."""

    def __init__(self) -> None:
        self.up = False
        self.received: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not outer.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append((self.headers["Idempotency-Key"], json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


def test_webhook_down_loses_nothing_and_sends_no_duplicates(tmp_path: Path, receiver: _Receiver) -> None:
    cfg = DeliveryConfig(initial_backoff_s=0.05, max_backoff_s=0.2)
    hook = WebhookSink(WebhookSinkConfig(url=receiver.url, timeout_s=2))  # type: ignore[arg-type]
    spool = Spool(tmp_path / "spool.sqlite3")
    d = Deliverer(spool, [hook], cfg, "cam")
    spool.put(d.names, _rec("e1", 1))
    spool.put(d.names, _rec("e2", 1))
    assert d.step() == 2 and receiver.received == []  # down: kept
    assert "HTTP 503" in d.last_error[hook.name]
    # The processor restarts while the sink is still down: the spool is on disk.
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite3")
    d = Deliverer(spool, [hook], cfg, "cam")
    spool.put(d.names, _rec("e1", 2))  # an update supersedes the undelivered revision
    receiver.up = True
    stop = threading.Event()
    t = threading.Thread(target=d.run, args=(stop,))
    t.start()
    try:
        for _ in range(100):
            if spool.count() == 0:
                break
            threading.Event().wait(0.05)
    finally:
        stop.set()
        t.join(timeout=10)
    keys = [k for k, _ in receiver.received]
    assert sorted(keys) == ["e1:2", "e2:1"], keys
    assert len(set(keys)) == len(keys)
    spool.close()
    hook.close()


def test_fleet_config_file_yaml_and_errors(tmp_path: Path) -> None:
    from pipelines.stream import load_fleet_config

    good = tmp_path / "fleet.yaml"
    good.write_text(
        "runtime:\n  home: /tmp/fs-home\n  media_dirs: [/data/video]\n"
        "processors:\n"
        "  - name: door\n    collection: staff\n    purpose: building access case 12\n"
        "    source: {kind: rtsp, url: 'rtsp://u:p4ss@127.0.0.1:8554/door', transport: udp}\n"
        "    sinks: [{kind: jsonl, path: /tmp/door.jsonl}, {kind: event-store, path: /tmp/ev.sqlite3}]\n"
        "  - name: lobby\n    collection: staff\n    purpose: x\n    analysis_fps: 2\n"
        "    source: {kind: kinesis-video, stream_name: lobby-cam, region: eu-west-1}\n"
    )
    fleet = load_fleet_config(good)
    assert [p.name for p in fleet.processors] == ["door", "lobby"]
    assert fleet.processors[0].source.kind == "rtsp"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "processors:\n  - name: x\n    collection: c\n    purpose: p\n    source: {kind: rtsp, url: 'ftp://host.example/x'}\n"
    )
    with pytest.raises(InvalidParameter, match="scheme 'ftp' is not allowed"):
        load_fleet_config(bad)
    with pytest.raises(InvalidParameter, match="cannot read"):
        load_fleet_config(tmp_path / "missing.yaml")
