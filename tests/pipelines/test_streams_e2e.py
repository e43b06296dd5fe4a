"""Live streams end to end on real components: gst-rtsp-server, ffmpeg (HLS over a local HTTP
server, MPEG-TS over TCP), PyAV decode actors on a local Ray, the batched Serve deployment,
Milvus Lite behind the store actor, the audit log, JSONL and event-store sinks.

The clip: Lin-Manuel Miranda is on screen about 0.8-1.4 s and 3.7-7.9 s into it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facestream.audit import Actor, AuditLog
from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig
from facestream.imageio import load_image_file
from pipelines.config import (
    EventStoreSinkConfig,
    FileSource,
    HlsSource,
    JsonlSinkConfig,
    KinesisVideoSource,
    MpegTsSource,
    ProcessorSettings,
    ReconnectConfig,
    RtspSource,
    RuntimeConfig,
)
from pipelines.manager import StreamProcessorManager
from pipelines.sinks import EventStore
from tests.helpers import face, scaled, wait_for
from tests.support.media import HlsServer, MpegTsTcpServer, RtspServer

pytestmark = pytest.mark.slow

APP = "pipelines-e2e"
LIN = "lin-manuel-miranda"
#: on-screen windows (clip seconds), widened by one analysed frame at either end
LIN_WINDOWS = [(0.8 - 0.25, 1.4 + 0.25), (3.7 - 0.25, 7.9 + 0.25)]
OPERATOR = Actor("test:operator", "operator")


def stream_runtime(home: Path, app: str, media_dir: Path) -> RuntimeConfig:
    """Stream processors' runtime for tests: CPU analysis, small fast batches."""
    return RuntimeConfig(
        home=home,
        app_name=app,
        media_dirs=(media_dir,),
        embedding=EmbeddingServiceConfig(
            analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu")),
            max_batch_size=8,
            batch_wait_timeout_s=0.05,
        ),
    )


@pytest.fixture(scope="module")
def clip() -> Path:
    return face("face_recognition/examples/short_hamilton_clip.mp4")


@pytest.fixture(scope="module")
def env(
    serve_http_port: int, tmp_path_factory: pytest.TempPathFactory, clip: Path
) -> Iterator[dict[str, Any]]:
    from pipelines.gallery import enrol, ensure_collection
    from pipelines.runtime import delete_face_service, ensure_face_service
    from pipelines.store_actor import store_actor

    home = tmp_path_factory.mktemp("streams-home")
    runtime = stream_runtime(home, APP, clip.parent)
    face_handle = ensure_face_service(runtime.embedding, APP)
    store = store_actor(runtime.resolved_store_uri)
    audit = AuditLog(runtime.resolved_audit_path)
    ex = clip.parent
    ensure_collection(store, "hamilton", "dlib-resnet", fresh=True)
    ensure_collection(store, "others", "dlib-resnet", fresh=True)
    counts = enrol(
        face_handle,
        store,
        "hamilton",
        [(p, load_image_file(ex / f"{p}.png")) for p in (LIN, "alex-lacamoire")],
        audit=audit,
        actor=OPERATOR,
    )
    assert counts == {LIN: 1, "alex-lacamoire": 1}
    others = [("barack-obama", ex / "obama.jpg"), ("joe-biden", ex / "biden.jpg")]
    assert enrol(
        face_handle,
        store,
        "others",
        [(n, load_image_file(p)) for n, p in others],
        audit=audit,
        actor=OPERATOR,
    ) == {"barack-obama": 1, "joe-biden": 1}
    manager = StreamProcessorManager(runtime, face_handle, store)
    try:
        yield {"runtime": runtime, "face": face_handle, "store": store, "manager": manager, "home": home}
    finally:
        manager.shutdown(OPERATOR)
        import ray

        ray.kill(store)
        delete_face_service(APP)


def _settings(
    name: str, source: Any, home: Path, collection: str = "hamilton", **kw: Any
) -> ProcessorSettings:
    return ProcessorSettings(
        name=name,
        source=source,
        collection=collection,
        purpose="test: live stream search",
        sinks=(
            JsonlSinkConfig(path=home / f"{name}.jsonl"),
            EventStoreSinkConfig(path=home / "events.sqlite3"),
        ),
        reconnect=ReconnectConfig(
            initial_backoff_s=0.3, max_backoff_s=2.0, stall_timeout_s=3.0, open_timeout_s=5.0
        ),
        **kw,
    )


def _events(home: Path, name: str) -> list[dict[str, Any]]:
    path = home / f"{name}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _matched(rec: dict[str, Any]) -> str:
    return str(rec["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"]["ExternalImageId"])


def _in_lin_window(offset: float, shift: float = 0.0) -> bool:
    return any(a + shift <= offset <= b + shift for a, b in LIN_WINDOWS)


def _wait_for(pred: Any, timeout_s: float, what: str) -> Any:
    return wait_for(pred, timeout_s, what, interval_s=0.2)


def _run_to_end(
    manager: StreamProcessorManager, names: list[str], timeout_s: float
) -> dict[str, dict[str, Any]]:
    finished = manager.wait(names, scaled(timeout_s))
    status = {n: manager.describe(n) for n in names}
    for n in names:
        manager.stop(n, OPERATOR)
    assert sorted(finished) == sorted(names), {
        n: (s["Status"], s["StatusMessage"]) for n, s in status.items()
    }
    return status


def test_rtsp_streams_share_the_deployment_and_find_lin_manuel(env: dict[str, Any], clip: Path) -> None:
    """Three RTSP clients at once (TCP and UDP transport), one Serve deployment: Lin-Manuel is
    reported on the Hamilton gallery, nobody on a gallery of other people."""
    home, manager = env["home"], env["manager"]
    stop_eos = {"end_of_stream": "stop"}
    before = env["face"].stats.remote().result(timeout_s=30)
    with RtspServer(clip) as server:
        procs = [
            _settings("rtsp-tcp", RtspSource(url=server.url, transport="tcp", **stop_eos), home),  # type: ignore[arg-type]
            _settings("rtsp-udp", RtspSource(url=server.url, transport="udp", **stop_eos), home),  # type: ignore[arg-type]
            _settings("rtsp-others", RtspSource(url=server.url, **stop_eos), home, collection="others"),  # type: ignore[arg-type]
        ]
        for p in procs:
            manager.create(p, OPERATOR, replace=True)
        for p in procs:
            manager.start(p.name, OPERATOR)
        status = _run_to_end(manager, [p.name for p in procs], 60)
    after = env["face"].stats.remote().result(timeout_s=30)

    for name in ("rtsp-tcp", "rtsp-udp"):
        all_events = _events(home, name)
        assert {_matched(e) for e in all_events} <= {LIN, "alex-lacamoire"}, all_events
        events = [e for e in all_events if _matched(e) == LIN]
        assert events, (name, status[name]["Counters"])
        first_seen = sorted({e["Track"]["FirstSeenOffsetInSeconds"] for e in events})
        assert all(_in_lin_window(t) for t in first_seen), first_seen
        assert all(_in_lin_window(e["InputInformation"]["Stream"]["FrameOffsetInSeconds"]) for e in events)
        # One event per track and identity: revisions of the same EventId, not one per frame.
        assert len({e["EventId"] for e in events}) <= 4
        assert status[name]["Counters"]["analysed"] >= 10
    assert _events(home, "rtsp-others") == []
    assert status["rtsp-others"]["Faces"] > 0  # faces were seen, and matched nobody
    new_sizes = {int(k): v - before["batch_sizes"].get(k, 0) for k, v in after["batch_sizes"].items()}
    assert max(k for k, v in new_sizes.items() if v > 0) > 1, new_sizes  # streams shared batches

    # The event store answers queries; the audit log holds the start and every match, no images.
    store = EventStore(home / "events.sqlite3")
    assert {_matched(r) for r in store.query(processor="rtsp-tcp")} == {LIN}
    assert store.query(processor="rtsp-others") == []
    store.close()
    audit = AuditLog(env["runtime"].resolved_audit_path)
    starts = [e for e in audit.query(operation="StartStreamProcessor") if e["inputs"]["name"] == "rtsp-tcp"]
    assert starts and starts[-1]["purpose"] == "test: live stream search"
    matches = [
        e for e in audit.query(operation="StreamFaceMatch") if e["inputs"]["stream_processor"] == "rtsp-tcp"
    ]
    assert len(matches) == len(_events(home, "rtsp-tcp"))
    assert audit.verify().ok


def test_hls_via_kinesis_session_url_and_mpegts_over_tcp(
    env: dict[str, Any], clip: Path, tmp_path: Path
) -> None:
    home, manager = env["home"], env["manager"]
    with HlsServer(clip, tmp_path / "hls") as hls, MpegTsTcpServer(clip) as ts:
        procs = [
            # The path after boto3's get_hls_streaming_session_url: the URL it returns (with a token).
            _settings(
                "kvs-hls",
                KinesisVideoSource(
                    stream_name="front-door",
                    hls_session_url=f"{hls.url}?SessionToken=secret-session-token-123",  # type: ignore[arg-type]
                    realtime=True,
                    end_of_stream="stop",
                ),
                home,
            ),
            _settings("plain-hls", HlsSource(url=hls.url, realtime=True, end_of_stream="stop"), home),  # type: ignore[arg-type]
            _settings("ts-tcp", MpegTsSource(url=ts.url, end_of_stream="stop"), home),  # type: ignore[arg-type]
        ]
        for p in procs:
            manager.create(p, OPERATOR, replace=True)
            manager.start(p.name, OPERATOR)
        status = _run_to_end(manager, [p.name for p in procs], 60)
    for p in procs:
        found = {_matched(e) for e in _events(home, p.name)}
        # Alex Lacamoire is in the gallery and may be seen too (a close-up, near the threshold,
        # depending on which frames a run samples); Lin-Manuel must be.
        assert LIN in found and found <= {LIN, "alex-lacamoire"}, (p.name, found, status[p.name]["Counters"])
    shown = json.dumps(manager.describe("kvs-hls")) + json.dumps(_events(home, "kvs-hls"))
    assert "secret-session-token-123" not in shown


def test_reconnect_after_the_rtsp_server_restarts(env: dict[str, Any], clip: Path) -> None:
    home, manager = env["home"], env["manager"]
    server = RtspServer(clip)
    server.start()
    try:
        p = _settings("rtsp-reconnect", RtspSource(url=server.url), home)  # type: ignore[arg-type]
        manager.create(p, OPERATOR, replace=True)
        manager.start(p.name, OPERATOR)
        _wait_for(lambda: _events(home, p.name), 30, "a first match event")
        first_events = len(_events(home, p.name))
        server.stop()  # mid-stream
        _wait_for(lambda: manager.describe(p.name)["Status"] == "RECONNECTING", 20, "RECONNECTING")
        t_restart = time.time()
        server = RtspServer(clip, port=server.port)
        server.start()
        _wait_for(lambda: manager.describe(p.name)["Status"] == "RUNNING", 30, "RUNNING again")
        _wait_for(lambda: len(_events(home, p.name)) > first_events, 30, "events after the reconnect")
        status = manager.stop(p.name, OPERATOR)
    finally:
        server.stop()
    later = [
        e for e in _events(home, p.name) if e["InputInformation"]["Stream"]["ServerTimestamp"] >= t_restart
    ]
    assert LIN in {_matched(e) for e in later}
    seq = [h["Status"] for h in status["History"]]
    i = seq.index("RECONNECTING")
    assert "RUNNING" in seq[:i] and "RUNNING" in seq[i:], seq
    assert status["Counters"]["reconnects"] >= 1
    assert status["Status"] == "STOPPED"


def test_a_restarted_job_resumes_its_processors(env: dict[str, Any], clip: Path) -> None:
    runtime, home = env["runtime"], env["home"]
    first = StreamProcessorManager(runtime, env["face"], env["store"])
    src = FileSource(path=clip, loop=True, realtime=True)
    first.create(_settings("looped-file", src, home), OPERATOR, replace=True)
    first.start("looped-file", OPERATOR)
    assert first.describe("looped-file")["Desired"] == "RUNNING"
    first.shutdown(OPERATOR)  # the job dies; its processors' actors with it
    second = StreamProcessorManager(runtime, env["face"], env["store"])  # a new job on the same home
    assert second.resume(OPERATOR) == ["looped-file"]
    try:
        _wait_for(lambda: second.describe("looped-file")["Status"] == "RUNNING", 30, "resumed processor")
        assert [p["Name"] for p in second.list_all()].count("looped-file") == 1
    finally:
        second.stop("looped-file", OPERATOR)
    second.delete("looped-file", OPERATOR)
    with pytest.raises(Exception, match="does not exist"):
        second.describe("looped-file")


def test_a_processor_the_cluster_cannot_place_fails_clearly(env: dict[str, Any], clip: Path) -> None:
    from facestream.errors import StreamUnavailable

    runtime, home = env["runtime"], env["home"]
    manager = StreamProcessorManager(runtime, env["face"], env["store"])
    manager.start_timeout_s = 5.0
    src = FileSource(path=clip, loop=True, realtime=True)
    # 16 CPUs for one decode actor: this 2-CPU local cluster can never place it.
    manager.create(_settings("too-big", src, home, actor_num_cpus=16.0), OPERATOR, replace=True)
    with pytest.raises(StreamUnavailable, match="no room for its decode actor"):
        manager.start("too-big", OPERATOR)
    assert manager.running() == []  # the unplaceable actor was killed, not left pending
    assert manager.describe("too-big")["Desired"] != "RUNNING"
    manager.delete("too-big", OPERATOR)


def test_human_confirmation_holds_alerts_until_two_reviewers(env: dict[str, Any], clip: Path) -> None:
    """A collection that requires confirmation: matches wait as candidates (with the stream crop, a
    redacted evidence frame, and a blurred preview); nothing reaches a sink until two distinct
    reviewers confirm; then the running processor delivers the released alert."""
    from pipelines.evidence import EvidenceStore
    from pipelines.gallery import enrol, ensure_collection
    from pipelines.review import AlreadyReviewed, Decision, ReviewStore, Status, review_path
    from pipelines.worker import preview_path

    home, manager, store = env["home"], env["manager"], env["store"]
    ensure_collection(store, "reviewed", "dlib-resnet", fresh=True)
    ex = clip.parent
    audit = AuditLog(env["runtime"].resolved_audit_path)
    enrol(
        env["face"],
        store,
        "reviewed",
        [(LIN, load_image_file(ex / f"{LIN}.png"))],
        audit=audit,
        actor=OPERATOR,
    )
    review = ReviewStore(review_path(home))
    review.set_policy("reviewed", 2, by="test:admin")
    name = "reviewed-file"
    src = FileSource(path=clip, loop=True, realtime=True)
    p = _settings(name, src, home, collection="reviewed", evidence_frames=True, preview_interval_s=1.0)
    manager.create(p, OPERATOR, replace=True)
    manager.start(name, OPERATOR)
    try:
        _wait_for(lambda: review.candidates(processor=name, status=Status.PENDING), 40, "a candidate")
        cand = review.candidates(processor=name, status=Status.PENDING)[0]
        assert cand.external_image_id == LIN and cand.required == 2
        crop = review.crop(cand.event_id)
        assert crop is not None and crop[:2] == b"\xff\xd8"  # a JPEG face crop for the reviewer
        time.sleep(1.0)
        assert _events(home, name) == []  # held: no alert has left
        review.decide(cand.event_id, reviewer="key-a", role="reviewer", decision=Decision.CONFIRM)
        with pytest.raises(AlreadyReviewed):
            review.decide(cand.event_id, reviewer="key-a", role="reviewer", decision=Decision.CONFIRM)
        assert _events(home, name) == []
        _, released = review.decide(
            cand.event_id, reviewer="key-b", role="reviewer", decision=Decision.CONFIRM
        )
        assert released
        _wait_for(lambda: any(e["EventId"] == cand.event_id for e in _events(home, name)), 20, "release")
        out = [e for e in _events(home, name) if e["EventId"] == cand.event_id]
        assert out[0]["Review"]["ConfirmedBy"] == ["key-a", "key-b"]
        # The frame is written right after the candidate is filed (redaction runs first).
        _wait_for(lambda: EvidenceStore(home / "evidence").get(cand.event_id), 20, "the evidence frame")
        assert preview_path(home, name).is_file()
        # The next loop of the clip is a new track: a new candidate; a rejection suppresses it.
        _wait_for(
            lambda: [c for c in review.candidates(processor=name) if c.event_id != cand.event_id],
            40,
            "a candidate from a second track",
        )
        other = next(c for c in review.candidates(processor=name) if c.event_id != cand.event_id)
        if other.status is Status.PENDING:
            review.decide(other.event_id, reviewer="key-a", role="reviewer", decision=Decision.REJECT)
        assert review.track_suppressed(name, other.track_id) or other.status is Status.CONFIRMED
    finally:
        status = manager.stop(name, OPERATOR)
        review.close()
    assert not any(e["EventId"] == other.event_id for e in _events(home, name))
    assert status["Candidates"] >= 2
    dispositions = [
        e["results"]["disposition"]
        for e in audit.query(operation="StreamFaceMatch")
        if e["inputs"]["stream_processor"] == name
    ]
    assert "candidate" in dispositions and "release" not in dispositions[:1]


def test_unknown_faces_are_kept_only_when_switched_on(env: dict[str, Any], clip: Path) -> None:
    """Watchlist-only by default: on the 'others' gallery Lin-Manuel matches nobody and nothing is
    kept; with keep-unknown on (time-limited, audited) his tracks land in 'others-unknown'."""
    from datetime import UTC, datetime, timedelta

    from pipelines.config import UnknownFacesConfig

    home, manager, store = env["home"], env["manager"], env["store"]
    import ray

    def unknown_count() -> int:
        names = ray.get(store.list_collections.remote())
        if "others-unknown" not in names:
            return 0
        return int(ray.get(store.describe_collection.remote("others-unknown")).face_count)

    before = unknown_count()
    off = _settings("unknown-off", FileSource(path=clip), home, collection="others")
    manager.create(off, OPERATOR, replace=True)
    manager.start(off.name, OPERATOR)
    _run_to_end(manager, [off.name], 60)
    assert unknown_count() == before == 0
    keep = UnknownFacesConfig(keep=True, until=datetime.now(UTC) + timedelta(hours=1), retention_days=1)
    on = _settings("unknown-on", FileSource(path=clip), home, collection="others", unknown_faces=keep)
    manager.create(on, OPERATOR, replace=True)
    manager.start(on.name, OPERATOR)
    status = _run_to_end(manager, [on.name], 60)
    assert status[on.name]["UnknownFacesKept"] >= 1
    assert unknown_count() == status[on.name]["UnknownFacesKept"]
    info = ray.get(store.describe_collection.remote("others-unknown"))
    assert info.retention_days == 1
    audit = AuditLog(env["runtime"].resolved_audit_path)
    started = [
        e for e in audit.query(operation="KeepUnknownFaces") if e["inputs"]["stream_processor"] == on.name
    ]
    assert started and started[-1]["inputs"]["until"] == keep.until.isoformat()  # type: ignore[union-attr]
    kept = [e for e in audit.query(operation="KeepUnknownFace") if e["inputs"]["stream_processor"] == on.name]
    assert sum(len(e["results"]["face_ids"]) for e in kept) == status[on.name]["UnknownFacesKept"]
    assert not [
        e for e in audit.query(operation="KeepUnknownFace") if e["inputs"]["stream_processor"] == off.name
    ]
