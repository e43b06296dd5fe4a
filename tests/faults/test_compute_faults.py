"""Compute fault: the face-analysis replica is killed (``ray.kill``) under load.

Load: a live stream processor plus client threads calling the deployment through its
handle, retrying a failed call after a short wait (what the API's 503 "retry later" asks of
its clients). The replica dies mid-load; Serve's controller starts a new one. Checked: every
client request succeeded in the end (some after retries), the stream processor never
failed and produced matches after the new replica came up, and Serve reports the app
healthy again with a different replica.

The other compute fault, a restarted stream job resuming its processors from the saved
registry, is tests/pipelines/test_streams_e2e.py::test_a_restarted_job_resumes_its_processors.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facestream.imageio import load_image_file
from pipelines.config import FileSource
from tests.faults.conftest import APP
from tests.pipelines.test_streams_e2e import OPERATOR, _events, _settings, _wait_for

pytestmark = pytest.mark.slow


def _replicas() -> dict[str, Any]:
    from ray._private import state

    return {
        aid: a
        for aid, a in state.actors(actor_state_name="ALIVE").items()
        if a["ActorClassName"].startswith(f"ServeReplica:{APP}:")
    }


def test_replica_killed_under_load(fault_env: dict[str, Any], clip: Path) -> None:
    import ray
    from ray import serve

    home, manager, face = fault_env["home"], fault_env["manager"], fault_env["face"]
    frame = load_image_file(clip.parent / "lin-manuel-miranda.png").rgb
    before = _replicas()
    assert len(before) == 1, before
    (old_id,) = before

    p = _settings("kill-load", FileSource(path=clip, loop=True, realtime=True), home)
    manager.create(p, OPERATOR, replace=True)
    manager.start(p.name, OPERATOR)

    stop = threading.Event()
    stats = {"ok": 0, "failed_attempts": 0, "gave_up": 0, "max_attempts": 0}
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            for attempt in range(1, 200):
                try:
                    out = face.analyze.remote(np.ascontiguousarray(frame)).result(timeout_s=60)
                    assert len(out) >= 1
                    with lock:
                        stats["ok"] += 1
                        stats["max_attempts"] = max(stats["max_attempts"], attempt)
                    break
                except Exception:  # replica dead / unavailable / timed out: wait, retry
                    with lock:
                        stats["failed_attempts"] += 1
                    time.sleep(0.5)
            else:
                with lock:
                    stats["gave_up"] += 1
            time.sleep(0.2)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    try:
        _wait_for(lambda: _events(home, p.name), 60, "a first match before the kill")
        for t in threads:
            t.start()
        _wait_for(lambda: stats["ok"] >= 4, 60, "client load running")
        ray.kill(ray.get_actor(before[old_id]["Name"], namespace="serve"), no_restart=True)
        t_kill = time.time()
        _wait_for(lambda: bool(set(_replicas()) - {old_id}), 180, "Serve to start a new replica")
        _wait_for(
            lambda: serve.status().applications[APP].status == "RUNNING", 180, "the app to be RUNNING again"
        )
        t_back = time.time()
        ok_at_back = stats["ok"]
        _wait_for(lambda: stats["ok"] >= ok_at_back + 4, 120, "client requests succeeding again")
        _wait_for(
            lambda: any(
                e["InputInformation"]["Stream"]["ServerTimestamp"] >= t_back for e in _events(home, p.name)
            ),
            120,
            "matches after the new replica came up",
        )
        d = manager.describe(p.name)
        assert d["Status"] == "RUNNING", d
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(90)
        status = manager.stop(p.name, OPERATOR)
    assert stats["gave_up"] == 0, stats
    assert "FAILED" not in [h["Status"] for h in status["History"]]
    assert set(_replicas()) - {old_id}, "a new replica"
    print(f"replica kill: recovered in {t_back - t_kill:.1f}s; clients {stats}; drops {status['Counters']}")
