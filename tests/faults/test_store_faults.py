"""Store fault: the Milvus server (embedded standalone) goes away during a stream, then returns.

Two faults, each on a live stream that searches the server:

- ``restart``: the server process is stopped (SIGTERM, by its PID) and, after ``DOWN_S``
  seconds, started again on the same data; clients keep their address (the embedded server's
  relay ports stay open, so connections are refused while it is down, as with a real restart);
- ``freeze``: the process is frozen (SIGSTOP: connections stay open, nothing answers, like a
  hung server) for ``DOWN_S`` and resumed.

Checked, by counting: the processor never fails; no search succeeds while the server is away
(the fault is real); searches and matches resume after; every match event is in the JSON lines
sink and the event store exactly once per (EventId, Revision) and audited once; the durable
spool is empty at the end.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from facestream.audit import AuditLog
from facestream.imageio import load_image_file
from facestream.store.embedded_server import EmbeddedMilvusServer
from pipelines.config import EventStoreSinkConfig, FileSource, JsonlSinkConfig
from tests.pipelines.test_streams_e2e import LIN, OPERATOR, _settings, _wait_for

pytestmark = pytest.mark.slow

DOWN_S = float(os.environ.get("FACESTREAM_FAULT_STORE_DOWN_S", "15"))


@pytest.mark.parametrize("fault", ["restart", "freeze"])
def test_milvus_server_unavailable_mid_stream(
    fault: str, fault_env: dict[str, Any], clip: Path, milvus_server: EmbeddedMilvusServer, tmp_path: Path
) -> None:
    import ray

    from pipelines.gallery import enrol, ensure_collection
    from pipelines.manager import StreamProcessorManager
    from pipelines.store_actor import store_actor

    runtime = fault_env["runtime"].model_copy(update={"home": tmp_path, "store_uri": milvus_server.uri})
    store = store_actor(milvus_server.uri)
    audit = AuditLog(runtime.resolved_audit_path)
    collection = f"store-fault-{fault}"
    ensure_collection(store, collection, "dlib-resnet", fresh=True)
    enrol(
        fault_env["face"],
        store,
        collection,
        [(LIN, load_image_file(clip.parent / f"{LIN}.png"))],
        audit=audit,
        actor=OPERATOR,
    )
    manager = StreamProcessorManager(runtime, fault_env["face"], store)
    name = f"milvus-{fault}"
    p = _settings(name, FileSource(path=clip, loop=True, realtime=True), tmp_path, collection=collection)
    p = p.model_copy(
        update={
            "sinks": (
                JsonlSinkConfig(path=tmp_path / f"{name}.jsonl"),
                EventStoreSinkConfig(path=tmp_path / "events.sqlite3"),
            )
        }
    )
    pid = milvus_server.pid
    assert pid is not None
    manager.create(p, OPERATOR, replace=True)
    manager.start(name, OPERATOR)
    frozen = False
    try:
        _wait_for(lambda: _jsonl(tmp_path, name), 60, "a first match")
        before = manager.describe(name)
        t_down = time.time()
        if fault == "freeze":
            os.kill(pid, signal.SIGSTOP)
            frozen = True
            time.sleep(2.0)  # searches already answered are counted before the window opens
            gone = manager.describe(name)
            time.sleep(max(0.0, DOWN_S - 2.0))
            during = manager.describe(name)  # status answers while the store is down
            os.kill(pid, signal.SIGCONT)
            frozen = False
        else:
            # Stopped in a thread so the stream's state can be read while the server is away;
            # restart() sleeps DOWN_S between the stop and the start.
            restarter = threading.Thread(target=milvus_server.restart, kwargs={"down_s": DOWN_S})
            restarter.start()
            _wait_for(lambda: milvus_server.pid is None, 30, "the server process to stop")
            gone = manager.describe(name)
            time.sleep(max(0.0, DOWN_S - 3.0))
            during = manager.describe(name)
            restarter.join(timeout=300)
            assert not restarter.is_alive(), "the server did not come back within 300 s"
        t_back = time.time()
        _wait_for(
            lambda: any(
                e["InputInformation"]["Stream"]["ServerTimestamp"] >= t_back + 1
                for e in _jsonl(tmp_path, name)
            ),
            180,
            "matches after the store came back",
        )
        status = manager.stop(name, OPERATOR)
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        manager.shutdown(OPERATOR)
        ray.kill(store)

    assert during["Status"] in ("RUNNING", "RECONNECTING"), during
    assert during["Searches"] == gone["Searches"], "a search succeeded while the server was away"
    assert status["Searches"] > during["Searches"]  # the store answers again
    assert "FAILED" not in [h["Status"] for h in status["History"]]
    drops = status["Counters"]["drops"]
    errors_in_outage = drops.get("search_error", 0) - before["Counters"]["drops"].get("search_error", 0)
    records = _jsonl(tmp_path, name)
    keys = Counter((r["EventId"], r["Revision"]) for r in records)
    assert not [k for k, n in keys.items() if n > 1], "duplicate records in the JSON lines sink"
    db = sqlite3.connect(tmp_path / "events.sqlite3")
    try:
        rows = db.execute("SELECT event_id, revision FROM events WHERE processor = ?", (name,)).fetchall()
    finally:
        db.close()
    newest: dict[str, int] = {}
    for eid, rev in keys:
        newest[eid] = max(newest.get(eid, 0), rev)
    assert dict(rows) == newest  # the event store holds the newest revision of every event, once
    audited = [
        e
        for e in AuditLog(runtime.resolved_audit_path).query(operation="StreamFaceMatch")
        if e["inputs"]["stream_processor"] == name
    ]
    assert len(audited) == len(records)  # every record audited once, none lost on the way out
    assert status["Spooled"] == 0
    assert {r["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"]["ExternalImageId"] for r in records} == {
        LIN
    }
    print(
        f"milvus {fault} {DOWN_S:.0f}s at {t_down:.0f}: {len(records)} records, {len(newest)} events, "
        f"search errors during outage {errors_in_outage}, drops {drops}"
    )


def _jsonl(home: Path, name: str) -> list[dict[str, Any]]:
    path = home / f"{name}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
