"""A stream actor whose metrics never reach Prometheus is noticed, not trusted.

The failure of issue 20: processors ran (frames decoded, events written) while none of their
metrics reached Prometheus, because the Ray worker process they ran in had given up on the
node's metrics agent. Here the loss is real, made with Ray's own switch: the processor's actor
process runs with ``RAY_enable_metrics_collection=false`` (through the runtime's
``actor_env_vars``), so what it records never leaves the process, exactly as then.

The processor must (1) say so (``MetricsExport: FAILING``, an error in its log), (2) restart
once in a new process (Ray's actor restart) and keep working there, and (3) not restart again
when the new process is no better. The healthy case, processors whose series do arrive and
read ``OK``, is part of the dashboard test (tests/observability).
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import FileSource
from pipelines.metrics_export import series_present
from tests.pipelines.test_streams_e2e import LIN, OPERATOR, _events, _matched, _settings, _wait_for

pytestmark = pytest.mark.slow

GRACE_S = 12.0


def _exported(name: str) -> bool:
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return series_present(text, "ray_facestream_stream_status", {"stream": name})


def test_processor_whose_metrics_are_lost_reports_it_and_restarts_once(
    fault_env: dict[str, Any], clip: Path
) -> None:
    runtime = fault_env["runtime"].model_copy(
        update={"actor_env_vars": {"RAY_enable_metrics_collection": "false"}}
    )
    manager = fault_env["manager"].__class__(runtime, fault_env["face"], fault_env["store"])
    home = fault_env["home"]
    p = _settings(
        "metrics-lost",
        FileSource(path=clip, loop=True, realtime=True),
        home,
        metrics_export_grace_s=GRACE_S,
    )
    manager.create(p, OPERATOR, replace=True)
    manager.start(p.name, OPERATOR)
    try:

        def restarted_and_failing() -> bool:
            d = manager.describe(p.name)
            return d.get("ProcessRestarts") == 1 and d.get("MetricsExport") == "FAILING"

        # grace, a restart in a new process, grace again
        _wait_for(restarted_and_failing, 3 * GRACE_S + 60, "a restart, then FAILING again")
        d = manager.describe(p.name)
        assert d["Status"] in ("STARTING", "RUNNING"), d
        assert any("restarted by Ray in a new process" in h["Message"] for h in d["History"]), d["History"]
        # The restarted processor works: it finds Lin-Manuel on the looping clip.
        t_restart = time.time()
        _wait_for(
            lambda: any(
                e["InputInformation"]["Stream"]["ServerTimestamp"] >= t_restart and _matched(e) == LIN
                for e in _events(home, p.name)
            ),
            60,
            "a match from the restarted processor",
        )
        # No second exit: a new process that is no better is reported and left running
        # (a second os._exit would have ended the actor for good: Ray restarts it once).
        d = manager.describe(p.name)
        assert d["ProcessRestarts"] == 1 and d["Status"] == "RUNNING", d
        assert not _exported(p.name)  # the loss was real all along
    finally:
        status = manager.stop(p.name, OPERATOR)
        manager.delete(p.name, OPERATOR)
    assert status["Status"] == "STOPPED", status
