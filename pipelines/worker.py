"""One stream processor at work: decode -> Serve (batched faces) -> tracker -> store -> sinks.

Runs inside one Ray actor per stream (see :func:`spawn`) with three threads:

- **decode**: :class:`pipelines.source.FrameSource` yields sampled RGB frames; each goes to
  the shared face deployment through its DeploymentHandle *without waiting for the answer*.
  At most ``max_in_flight`` frames are out per stream; a frame beyond that is dropped (the
  newest: the ones in flight are already paid for) and counted under ``inference_busy``.
  A file replayed losslessly waits for a free slot instead.
- **results**: takes answers in frame order, feeds the tracker, sends the tracker's searches
  to the store actor, audits each match and spools its record.
- **delivery**: moves spooled records to the sinks (see :mod:`pipelines.sinks`).

Shutdown goes from the source down: the decoder stops and closes its container, the
results thread finishes the frames in flight, the deliverer drains for a bounded time.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facestream.audit import Actor, AuditLog
from facestream.errors import FacestreamError, ModelMismatch
from facestream.types import FaceBatch
from pipelines.config import ProcessorSettings
from pipelines.events import match_record
from pipelines.sampling import Counters
from pipelines.sinks import Deliverer, Spool, make_sink
from pipelines.source import FrameSource, SampledFrame, StreamStatus
from pipelines.store_actor import call
from pipelines.telemetry import gauge, inc, observe
from pipelines.tracker import FaceTracker, FrameInfo
from pipelines.urls import describe_source

log = logging.getLogger(__name__)

_HISTORY = 200
_LATENCIES = 20_000


@dataclass(frozen=True)
class WorkerContext:
    """What a worker needs besides its settings (paths are on the node the actor runs on)."""

    home: Path
    audit_path: Path
    media_dirs: tuple[Path, ...]
    actor_key_id: str = "local:operator"
    actor_role: str = "admin"


@dataclass
class _Pending:
    frame: FrameInfo
    response: Any


@dataclass
class _Stats:
    counters: Counters = field(default_factory=Counters)
    frame_latency_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_LATENCIES)
    )
    event_latency_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_LATENCIES)
    )
    faces: int = 0
    searches: int = 0
    events: int = 0


class StreamWorker:
    """The body of a stream processor's actor. ``start`` returns at once; poll ``status``."""

    def __init__(
        self, settings: ProcessorSettings, face_handle: Any, store: Any, context: WorkerContext
    ) -> None:
        self.settings = settings
        self.face = face_handle
        self.store = store
        self.ctx = context
        self.extra = {"stream_id": settings.name}
        self.audit = AuditLog(context.audit_path)
        self.actor = Actor(key_id=context.actor_key_id, role=context.actor_role)
        self.stats_ = _Stats()
        self._status = StreamStatus.STOPPED
        self._message = "created"
        self._history: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=_HISTORY)
        self._status_lock = threading.Lock()
        self._stop_source = threading.Event()
        self._stop_delivery = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._slots = threading.BoundedSemaphore(settings.max_in_flight)
        self._pending: collections.deque[_Pending] = collections.deque()
        self._pending_cv = threading.Condition()
        self._source_ended = threading.Event()
        self._threads: list[threading.Thread] = []
        self._model = ""
        self._end_message = ""
        self._flushed: dict[str, int] = {}
        self._deliverer: Deliverer | None = None
        self._spool: Spool | None = None
        self.tracker = FaceTracker(settings.tracking, settings.threshold)

    # --- status -----------------------------------------------------------------------------

    def _set_status(self, status: StreamStatus, message: str) -> None:
        with self._status_lock:
            if self._status in (StreamStatus.STOPPING,) and status == StreamStatus.RECONNECTING:
                return
            self._status, self._message = status, message
            self._history.append((time.time(), status.value, message))
        for st in StreamStatus:
            gauge("facestream_stream_status", float(st == status), stream=self.settings.name, status=st.value)
        level = (
            logging.WARNING if status in (StreamStatus.FAILED, StreamStatus.RECONNECTING) else logging.INFO
        )
        log.log(level, "stream %s: %s (%s)", self.settings.name, status.value, message, extra=self.extra)

    def status(self) -> dict[str, Any]:
        with self._status_lock:
            history = list(self._history)
            status, message = self._status.value, self._message
        d = self._deliverer
        return {
            "Name": self.settings.name,
            "Status": status,
            "StatusMessage": message,
            "Source": describe_source(self.settings.source),
            "History": [{"ts": t, "Status": s, "Message": m} for t, s, m in history],
            "Counters": self.stats_.counters.as_dict(),
            "Faces": self.stats_.faces,
            "Searches": self.stats_.searches,
            "Events": self.stats_.events,
            "TracksStarted": self.tracker.tracks_started,
            "InFlight": len(self._pending),
            "Spooled": self._spool.count() if self._spool is not None else 0,
            "Delivered": dict(d.delivered) if d else {},
            "SinkErrors": dict(d.last_error) if d else {},
        }

    def latencies(self) -> dict[str, list[float]]:
        return {"frame": list(self.stats_.frame_latency_s), "event": list(self.stats_.event_latency_s)}

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        if not self._done.is_set():
            return self.status()
        self._done.clear()
        self._stop_source.clear()
        self._stop_delivery.clear()
        self._source_ended.clear()
        self._end_message = ""
        self._set_status(StreamStatus.STARTING, f"opening {describe_source(self.settings.source)}")
        main = threading.Thread(target=self._main, name=f"stream-{self.settings.name}", daemon=True)
        self._threads = [main]
        main.start()
        return self.status()

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        if not self._done.is_set():
            self._set_status(StreamStatus.STOPPING, "stop requested")
            self._stop_source.set()
            self._done.wait(timeout_s)
        return self.status()

    def wait(self, timeout_s: float) -> bool:
        """True once the processor has finished (stopped, source ended, or failed)."""
        return self._done.wait(timeout_s)

    def _main(self) -> None:
        try:
            self._check_collection()
        except FacestreamError as exc:
            self._set_status(StreamStatus.FAILED, exc.message)
            self._done.set()
            return
        except Exception as exc:  # the deployment or store actor missing: same outcome
            self._set_status(StreamStatus.FAILED, f"cannot reach face service or store: {type(exc).__name__}")
            self._done.set()
            return
        spool_path = self.ctx.home / "spool" / f"{self.settings.name}.sqlite3"
        self._spool = Spool(spool_path)
        sinks = [make_sink(s) for s in self.settings.sinks]
        self._deliverer = Deliverer(self._spool, sinks, self.settings.delivery, self.settings.name)
        delivery = threading.Thread(
            target=self._deliverer.run,
            args=(self._stop_delivery,),
            name=f"deliver-{self.settings.name}",
            daemon=True,
        )
        results = threading.Thread(
            target=self._results_loop, name=f"results-{self.settings.name}", daemon=True
        )
        delivery.start()
        results.start()
        try:
            self._decode_loop()
        except Exception as exc:
            log.exception("decode loop of %s crashed", self.settings.name, extra=self.extra)
            self._set_status(StreamStatus.FAILED, f"decoder crashed: {type(exc).__name__}")
        finally:
            self._source_ended.set()
            with self._pending_cv:
                self._pending_cv.notify_all()
            results.join(timeout=self.settings.inference_timeout_s + 5)
            self._flush_metrics()
            self._stop_delivery.set()
            self._deliverer.notify()
            delivery.join(timeout=self.settings.delivery.drain_timeout_s + 10)
            self._deliverer.close()
            self._spool.close()
            with self._status_lock:
                final = self._status
            if final != StreamStatus.FAILED:
                self._set_status(StreamStatus.STOPPED, self._end_message or "stopped")
            self._done.set()

    def _check_collection(self) -> None:
        self._model = str(self.face.model_name.remote().result(timeout_s=60))
        info = call(self.store.describe_collection.remote(self.settings.collection), 60)
        if info.model != self._model:
            raise ModelMismatch(
                f"collection {self.settings.collection!r} holds {info.model} faces; the face service makes "
                f"{self._model}"
            )

    # --- decode -----------------------------------------------------------------------------

    def _on_source_status(self, status: StreamStatus, message: str) -> None:
        if status == StreamStatus.STOPPED:
            # The source ended; frames in flight and spooled records still have to finish.
            self._end_message = message
            status = StreamStatus.STOPPING
        self._set_status(status, message)

    def _decode_loop(self) -> None:
        s = self.settings
        source = FrameSource(
            s.source,
            fps=s.analysis_fps,
            keyframes_only=s.keyframes_only,
            reconnect=s.reconnect,
            media_dirs=list(self.ctx.media_dirs),
            stop=self._stop_source,
            on_status=self._on_source_status,
            counters=self.stats_.counters,
            stream_id=s.name,
        )
        frames = source.frames()
        # CPU time of this thread between two sampled frames: demux + decode + RGB conversion,
        # without the waits of a live or paced source.
        cpu0 = time.thread_time()
        try:
            for frame in frames:
                observe("facestream_stream_decode_seconds", time.thread_time() - cpu0, stream=s.name)
                self._submit(frame, block=not source.realtime)
                cpu0 = time.thread_time()
        finally:
            frames.close()  # closes the container inside the generator

    def _submit(self, frame: SampledFrame, *, block: bool) -> None:
        counters = self.stats_.counters
        if not self._acquire_slot(block=block):
            counters.drops["inference_busy"] += 1
            return
        try:
            response = self.face.analyze.remote(frame.rgb)
        except Exception as exc:
            self._slots.release()
            counters.drops["inference_error"] += 1
            log.warning("submit failed: %s", type(exc).__name__, extra=self.extra)
            return
        counters.submitted += 1
        with self._pending_cv:
            self._pending.append(_Pending(_info(frame), response))
            self._pending_cv.notify()

    def _acquire_slot(self, *, block: bool) -> bool:
        if not block:
            return self._slots.acquire(blocking=False)
        while not self._stop_source.is_set():
            if self._slots.acquire(timeout=0.2):
                return True
        return False

    # --- results ----------------------------------------------------------------------------

    def _results_loop(self) -> None:
        counters = self.stats_.counters
        while True:
            with self._pending_cv:
                if not self._pending and not self._source_ended.is_set():
                    self._pending_cv.wait(0.5)
                if not self._pending:
                    if self._source_ended.is_set():
                        return
                    item = None
                else:
                    item = self._pending.popleft()
            if item is None:
                # Idle (reconnecting, stalled, paced): counters still reach Prometheus.
                self._flush_metrics()
                continue
            try:
                batch: FaceBatch = item.response.result(timeout_s=self.settings.inference_timeout_s)
            except TimeoutError:
                counters.drops["inference_timeout"] += 1
                continue
            except Exception as exc:
                counters.drops["inference_error"] += 1
                log.warning("analysis failed: %s: %s", type(exc).__name__, exc, extra=self.extra)
                continue
            finally:
                self._slots.release()
            counters.analysed += 1
            self.stats_.faces += len(batch)
            try:
                self._track(item.frame, batch)
            except Exception:
                log.exception("tracking/search failed for a frame", extra=self.extra)
                counters.drops["search_error"] += 1
            self.stats_.frame_latency_s.append(time.monotonic() - item.frame.monotonic)
            gauge(
                "facestream_stream_lag_seconds",
                time.time() - item.frame.producer_ts,
                stream=self.settings.name,
            )
            self._flush_metrics()

    def _flush_metrics(self) -> None:
        """Counters since the last flush, as metric increments."""
        c, name = self.stats_.counters, self.settings.name
        now = {
            "decoded": c.decoded,
            "analysed": c.analysed,
            "reconnects": c.reconnects,
            "tracks": self.tracker.tracks_started,
        }
        now.update({f"drop:{k}": v for k, v in c.drops.items()})
        delta = {k: v - self._flushed.get(k, 0) for k, v in now.items()}
        self._flushed = now
        inc("facestream_stream_frames_decoded_total", delta["decoded"], stream=name)
        inc("facestream_stream_frames_analyzed_total", delta["analysed"], stream=name)
        inc("facestream_stream_reconnects_total", delta["reconnects"], stream=name)
        inc("facestream_tracks_opened_total", delta["tracks"], stream=name)
        for k, v in delta.items():
            if k.startswith("drop:"):
                inc("facestream_stream_frames_dropped_total", v, stream=name, reason=k[5:])

    def _track(self, info: FrameInfo, batch: FaceBatch) -> None:
        s = self.settings
        requests = self.tracker.observe(info, batch)
        if not requests:
            return
        queries = np.stack([r.embedding for r in requests]).astype(np.float32)
        t0 = time.perf_counter()
        hits = call(
            self.store.search.remote(
                s.collection,
                queries,
                model=self._model,
                max_faces=s.max_matches,
                min_similarity=self.tracker.search_floor,
            ),
            30.0,
        )
        self.stats_.searches += len(requests)
        observe("facestream_search_seconds", time.perf_counter() - t0, collection=s.collection)
        inc("facestream_searches_total", len(requests), collection=s.collection)
        for req, found in zip(requests, hits, strict=True):
            for update in self.tracker.apply(req.track_id, found):
                record = match_record(s.name, StreamStatus.RUNNING.value, update)
                # Audited before the record can leave: who, why, what was found; no image.
                self.audit.append(
                    actor=self.actor,
                    operation="StreamFaceMatch",
                    purpose=s.purpose,
                    inputs={
                        "stream_processor": s.name,
                        "collection": s.collection,
                        "track_id": update.track_id,
                        "frame_offset_s": round(update.frame.offset_s, 3),
                    },
                    results={
                        "event_id": record["EventId"],
                        "revision": update.revision,
                        "matches": [[update.identity.face_id, round(update.similarity, 3)]],
                    },
                )
                assert self._spool is not None and self._deliverer is not None
                self._spool.put(self._deliverer.names, record)
                self._deliverer.notify()
                self.stats_.events += 1
                self.stats_.event_latency_s.append(time.monotonic() - info.monotonic)
                inc("facestream_matches_total", collection=s.collection)
                observe("facestream_capture_to_event_seconds", time.time() - info.producer_ts, stream=s.name)
                log.info(
                    "match %s %s %.1f track %s",
                    s.name,
                    update.identity.external_image_id,
                    update.similarity,
                    update.track_id,
                    extra=self.extra,
                )


def _info(frame: SampledFrame) -> FrameInfo:
    return FrameInfo(
        offset_s=frame.offset_s,
        producer_ts=frame.producer_ts,
        server_ts=frame.server_ts,
        session=frame.session,
        monotonic=frame.monotonic,
    )


def spawn(settings: ProcessorSettings, face_handle: Any, store: Any, context: WorkerContext) -> Any:
    """A Ray actor running :class:`StreamWorker` (not started: call ``start.remote()``)."""
    import ray

    actor_cls = ray.remote(StreamWorker)
    return actor_cls.options(
        num_cpus=settings.actor_num_cpus,
        max_concurrency=4,  # status/stop must be answerable while start's threads run
        name=f"facestream-stream-{settings.name}",
        max_restarts=0,
    ).remote(settings, face_handle, store, context)
