"""Every metric facestream emits: one table of names, types, units and label keys.

Inside Ray (stream actors, Serve replicas, the API deployment) metrics go through Ray's
metrics API (``ray.util.metrics``) and are exported by each node's metrics agent on Ray's
metrics export port, which Prometheus discovers from the file Ray writes
(``/tmp/ray/prom_metrics_service_discovery.json``; see cluster/prometheus/prometheus.yml).
Outside Ray (the CLI) they are recorded in prometheus-client's default registry.

Ray prefixes exported names with ``ray_``, so ``facestream_stream_frames_decoded_total``
appears in Prometheus as ``ray_facestream_stream_frames_decoded_total``. Label values are
bounded: stream processor names, collection names, drop reasons, statuses, operations —
never face ids, external ids or URLs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

Kind = Literal["counter", "gauge", "histogram"]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# Ray refuses a boundary of 0; the first bucket (<= 0.5) counts the frames with no face.
FACE_BUCKETS = (0.5, 1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: Kind
    description: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


DEFINITIONS: tuple[MetricDef, ...] = (
    # streams
    MetricDef(
        "facestream_stream_frames_decoded_total", "counter", "frames decoded from the source", ("stream",)
    ),
    MetricDef(
        "facestream_stream_frames_analyzed_total", "counter", "frames sent for face analysis", ("stream",)
    ),
    MetricDef(
        "facestream_stream_frames_dropped_total", "counter", "frames dropped, by reason", ("stream", "reason")
    ),
    MetricDef(
        "facestream_stream_status",
        "gauge",
        "1 for the stream's current status, 0 otherwise",
        ("stream", "status"),
    ),
    MetricDef(
        "facestream_stream_reconnects_total", "counter", "reconnect attempts to the source", ("stream",)
    ),
    MetricDef(
        "facestream_stream_decode_seconds",
        "histogram",
        "CPU time of the decode thread per sampled frame (demux, decode, RGB)",
        ("stream",),
        LATENCY_BUCKETS_S,
    ),
    MetricDef(
        "facestream_stream_lag_seconds",
        "gauge",
        "wall clock minus the newest frame's capture time",
        ("stream",),
    ),
    # the batched face deployment
    MetricDef(
        "facestream_serve_batch_size", "histogram", "frames per batched call", ("method",), BATCH_BUCKETS
    ),
    MetricDef("facestream_serve_queue_depth", "gauge", "frames waiting in this replica", ("method",)),
    MetricDef("facestream_detect_seconds", "histogram", "detection time per batch", (), LATENCY_BUCKETS_S),
    MetricDef(
        "facestream_embed_seconds", "histogram", "alignment+embedding time per batch", (), LATENCY_BUCKETS_S
    ),
    MetricDef("facestream_faces_per_frame", "histogram", "faces found per frame", (), FACE_BUCKETS),
    # matching
    MetricDef("facestream_tracks_opened_total", "counter", "face tracks started", ("stream",)),
    MetricDef("facestream_searches_total", "counter", "vector searches", ("collection",)),
    MetricDef("facestream_matches_total", "counter", "match events emitted", ("collection",)),
    MetricDef(
        "facestream_match_candidates_total",
        "counter",
        "matches held for human confirmation",
        ("collection",),
    ),
    MetricDef(
        "facestream_search_seconds", "histogram", "vector search latency", ("collection",), LATENCY_BUCKETS_S
    ),
    MetricDef(
        "facestream_capture_to_event_seconds",
        "histogram",
        "frame capture to match event",
        ("stream",),
        LATENCY_BUCKETS_S,
    ),
    # store
    MetricDef("facestream_store_errors_total", "counter", "Milvus operations that failed", ("operation",)),
    MetricDef("facestream_store_upserts_total", "counter", "face rows upserted", ("collection",)),
    # sinks
    MetricDef("facestream_sink_spool_depth", "gauge", "events waiting in the durable spool", ("sink",)),
    MetricDef("facestream_sink_deliveries_total", "counter", "events delivered", ("sink",)),
    MetricDef("facestream_sink_failures_total", "counter", "delivery attempts that failed", ("sink",)),
    # audit and API
    MetricDef("facestream_audit_entries_total", "counter", "audit log entries written", ("operation",)),
    MetricDef("facestream_http_requests_total", "counter", "API requests", ("operation", "code")),
    MetricDef(
        "facestream_http_request_seconds",
        "histogram",
        "API request latency",
        ("operation",),
        LATENCY_BUCKETS_S,
    ),
)

_BY_NAME = {d.name: d for d in DEFINITIONS}
_lock = threading.Lock()
_instances: dict[tuple[str, str], Any] = {}


def _backend() -> str:
    try:
        import ray

        return "ray" if ray.is_initialized() else "prometheus"
    except ImportError:  # pragma: no cover - ray is a dependency
        return "prometheus"


def _make(d: MetricDef, backend: str) -> Any:
    if backend == "ray":
        from ray.util import metrics as rm

        # Ray appends _total-less names as given; keep our names verbatim.
        if d.kind == "counter":
            return rm.Counter(d.name, description=d.description, tag_keys=d.labels)
        if d.kind == "gauge":
            return rm.Gauge(d.name, description=d.description, tag_keys=d.labels)
        return rm.Histogram(d.name, description=d.description, boundaries=list(d.buckets), tag_keys=d.labels)
    import prometheus_client as pc

    name = d.name.removesuffix("_total") if d.kind == "counter" else d.name
    if d.kind == "counter":
        return pc.Counter(name, d.description, d.labels)
    if d.kind == "gauge":
        return pc.Gauge(name, d.description, d.labels)
    return pc.Histogram(name, d.description, d.labels, buckets=d.buckets)


def _get(name: str) -> tuple[MetricDef, Any, str]:
    d = _BY_NAME[name]
    backend = _backend()
    key = (name, backend)
    with _lock:
        if key not in _instances:
            _instances[key] = _make(d, backend)
        return d, _instances[key], backend


def _check_labels(d: MetricDef, labels: dict[str, str]) -> None:
    if set(labels) != set(d.labels):
        raise ValueError(f"metric {d.name}: labels {sorted(labels)} != declared {sorted(d.labels)}")


def inc(name: str, value: float = 1.0, **labels: str) -> None:
    d, m, backend = _get(name)
    _check_labels(d, labels)
    if backend == "ray":
        m.inc(value, tags=labels or None)
    else:
        (m.labels(**labels) if labels else m).inc(value)


def set_gauge(name: str, value: float, **labels: str) -> None:
    d, m, backend = _get(name)
    _check_labels(d, labels)
    if backend == "ray":
        m.set(value, tags=labels or None)
    else:
        (m.labels(**labels) if labels else m).set(value)


def observe(name: str, value: float, **labels: str) -> None:
    d, m, backend = _get(name)
    _check_labels(d, labels)
    if backend == "ray":
        m.observe(value, tags=labels or None)
    else:
        (m.labels(**labels) if labels else m).observe(value)
