"""Every query of every Grafana dashboard returns data from a real Prometheus scraping a real run.

A local Ray (node IP 127.0.0.1) runs the batched face deployment and two stream processors:
one replays the Hamilton clip as a live camera (matches against a gallery of Lin-Manuel
Miranda; more frames than inference keeps up with, so frames are dropped; a webhook sink that
refuses connections, so deliveries fail and spool) and one points at a dead MPEG-TS source (so it
reconnects). A store actor on a Milvus server that is not there records store errors. Prometheus
2.x runs on 127.0.0.1 with the repository's config, where Ray's service-discovery file (which may
list a non-loopback address) is replaced by one listing only this node's metrics export port.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from facestream.audit import Actor, AuditLog
from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig
from facestream.imageio import load_image_file
from pipelines.config import (
    FileSource,
    JsonlSinkConfig,
    MpegTsSource,
    ProcessorSettings,
    ReconnectConfig,
    RuntimeConfig,
    WebhookSinkConfig,
)
from tests.helpers import face, scaled
from tests.ray_fixtures import free_port

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "cluster" / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS_YML = ROOT / "cluster" / "prometheus" / "prometheus.yml"
APP = "obs-dashboards"
OPERATOR = Actor("test:operator", "operator")
#: what Grafana would put in for its built-in and template variables
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__range": "10m",
    "$__interval": "5s",
    "$stream": ".*",
    "$collection": ".*",
    "$application": ".*",
}
DATA_TIMEOUT_S = 100.0


def _substitute(expr: str) -> str:
    for var, value in sorted(SUBSTITUTIONS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + var[1:] + "}", value).replace(var, value)
    assert "$" not in expr, f"unsubstituted Grafana variable in {expr!r}"
    return expr


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, PromQL) for every target and every template variable."""
    out: list[tuple[str, str, str]] = []
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        for p in d["panels"]:
            for t in p["targets"]:
                out.append((d["title"], p["title"], _substitute(t["expr"])))
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", v["definition"])
                assert m, (d["title"], v["definition"])
                out.append((d["title"], f"variable ${v['name']}", f"count by ({m[2]}) ({m[1]})"))
    return out


def test_dashboards_are_well_formed() -> None:
    assert len(DASHBOARDS) >= 5
    uids = set()
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        uids.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), path
        for p in d["panels"]:
            assert p["targets"], (path.name, p["title"])
            for t in p["targets"]:
                assert "ray_facestream_" in t["expr"] or "ray_serve_" in t["expr"], t["expr"]
    assert len(uids) == len(DASHBOARDS)
    assert len(dashboard_queries()) > 40


# --- Prometheus --------------------------------------------------------------------------------


def derived_prometheus_config(sd_file: Path) -> dict[str, Any]:
    """cluster/prometheus/prometheus.yml with Ray's SD file replaced by ``sd_file``, scraping fast.

    Any job with static targets is left out: nothing of this test listens there, and another
    process on this machine might.
    """
    cfg = yaml.safe_load(PROMETHEUS_YML.read_text())
    cfg["global"]["scrape_interval"] = "1s"
    cfg["global"]["evaluation_interval"] = "1s"
    jobs = []
    for job in cfg["scrape_configs"]:
        if job["job_name"] == "ray":
            assert job["file_sd_configs"][0]["files"] == ["/tmp/ray/prom_metrics_service_discovery.json"]
            job["file_sd_configs"] = [{"files": [str(sd_file)], "refresh_interval": "1s"}]
            jobs.append(job)
    assert [j["job_name"] for j in jobs] == ["ray"]
    cfg["scrape_configs"] = jobs
    return cfg


class Prometheus:
    """A Prometheus on 127.0.0.1:<free port>, stopped by its PID."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=(self.workdir / "prometheus.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + scaled(timeout_s)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited: {(self.workdir / 'prometheus.out').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"prometheus not ready after {timeout_s}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=expr)["result"])


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one series with a finite value (NaN is what a quantile of no samples gives)."""
    return any(math.isfinite(float(r["value"][1])) for r in result)


# --- the run -----------------------------------------------------------------------------------


def _dead_store_actor(uri: str) -> Any:
    """An actor holding a MilvusFaceStore on a Milvus server that is not running (store errors).

    Defined here, not at module level: Ray pickles a local class by value, and this test module
    is not importable in Ray's workers.
    """
    import ray

    class DeadStore:
        def __init__(self, uri: str) -> None:
            from facestream.store import MilvusFaceStore, StoreConfig

            self.store = MilvusFaceStore(StoreConfig(uri=uri, timeout_s=3.0))

        def try_list(self) -> str:
            try:
                self.store.list_collections()
            except Exception as exc:  # StoreUnavailable is the point
                return type(exc).__name__
            return "ok"

    return ray.remote(DeadStore).options(num_cpus=0).remote(uri)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, ray_local: None) -> Iterator[Prometheus]:
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    workdir = tmp_path_factory.mktemp("prometheus")
    sd = workdir / "ray_sd.json"
    sd.write_text(json.dumps([{"labels": {"job": "ray"}, "targets": [f"127.0.0.1:{port}"]}]))
    prom = Prometheus(workdir, derived_prometheus_config(sd))
    try:
        prom.start()
        yield prom
    finally:
        prom.stop()


def _settings(name: str, source: Any, home: Path, **kw: Any) -> ProcessorSettings:
    return ProcessorSettings(
        name=name,
        source=source,
        collection="watch",
        purpose="test: dashboards",
        reconnect=ReconnectConfig(initial_backoff_s=0.3, max_backoff_s=1.0, open_timeout_s=3.0),
        **kw,
    )


def test_every_dashboard_query_returns_data(prometheus: Prometheus, tmp_path: Path, ray_local: None) -> None:
    import ray

    from pipelines.gallery import enrol, ensure_collection
    from pipelines.manager import StreamProcessorManager
    from pipelines.runtime import delete_face_service, ensure_face_service
    from pipelines.store_actor import store_actor

    clip = face("face_recognition/examples/short_hamilton_clip.mp4")
    runtime = RuntimeConfig(
        home=tmp_path / "home",
        app_name=APP,
        media_dirs=(clip.parent,),
        embedding=EmbeddingServiceConfig(
            analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu")),
            max_batch_size=4,
            batch_wait_timeout_s=0.05,
            # Autoscaling on (so Serve exports its autoscaler's gauges) with a target that this
            # load never reaches: one replica on a small machine.
            min_replicas=1,
            max_replicas=2,
            target_ongoing_requests=100,
        ),
    )
    face_handle = ensure_face_service(runtime.embedding, APP)
    store = store_actor(runtime.resolved_store_uri)
    dead_store = _dead_store_actor(f"http://127.0.0.1:{free_port()}")
    manager: StreamProcessorManager | None = None
    try:
        ensure_collection(store, "watch", "dlib-resnet", fresh=True)
        lin = load_image_file(clip.parent / "lin-manuel-miranda.png")
        audit = AuditLog(runtime.resolved_audit_path)
        assert enrol(
            face_handle, store, "watch", [("lin-manuel-miranda", lin)], audit=audit, actor=OPERATOR
        ) == {"lin-manuel-miranda": 1}
        assert ray.get(dead_store.try_list.remote(), timeout=60) == "StoreUnavailable"

        manager = StreamProcessorManager(runtime, face_handle, store)
        home = runtime.home
        live = _settings(
            "obs-live",
            FileSource(path=clip, loop=True, realtime=True),
            home,
            analysis_fps=8.0,
            max_in_flight=1,
            sinks=(
                JsonlSinkConfig(path=home / "obs-live.jsonl"),
                # Nothing listens there: every delivery fails and the spool grows.
                WebhookSinkConfig(url=f"http://127.0.0.1:{free_port()}/hook", timeout_s=1.0),
            ),
        )
        dead = _settings("obs-dead", MpegTsSource(url=f"tcp://127.0.0.1:{free_port()}"), home)
        for p in (live, dead):
            manager.create(p, OPERATOR, replace=True)
            manager.start(p.name, OPERATOR)

        queries = dashboard_queries()
        missing = queries
        deadline = time.monotonic() + scaled(DATA_TIMEOUT_S)
        while True:
            missing = [(d, p, e) for d, p, e in missing if not has_data(prometheus.query(e))]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(2.0)
        status = {n: manager.describe(n) for n in ("obs-live", "obs-dead")}
        log.info("processors: %s", {n: (s["Status"], s["Counters"]) for n, s in status.items()})
        assert not missing, (
            "dashboard panels without data:\n"
            + "\n".join(f"  {d} / {p}: {e}" for d, p, e in missing)
            + f"\nprocessors: { {n: (s['Status'], s['Counters'], s['Events']) for n, s in status.items()} }"
        )
        # The run really did what the panels show.
        assert status["obs-live"]["Events"] > 0
        assert status["obs-dead"]["Counters"]["reconnects"] > 0
        # Each processor checked for itself that its series reached the node's endpoint (what
        # this Prometheus scrapes): the check that turns a silent loss into FAILING (see
        # tests/faults/test_metrics_export_fault.py) reads OK here, without a restart.
        deadline = time.monotonic() + scaled(60)
        while time.monotonic() < deadline and any(
            manager.describe(n)["MetricsExport"] != "OK" for n in status
        ):
            time.sleep(1.0)
        final = {n: manager.describe(n) for n in status}
        assert all(d["MetricsExport"] == "OK" and d["ProcessRestarts"] == 0 for d in final.values()), {
            n: (d["MetricsExport"], d["ProcessRestarts"]) for n, d in final.items()
        }
    finally:
        if manager is not None:
            manager.shutdown(OPERATOR)
        ray.kill(dead_store)
        ray.kill(store)
        delete_face_service(APP)
