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
import hashlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from facestream.audit import Actor, AuditLog
from facestream.errors import FacestreamError, ModelMismatch
from facestream.store.records import FaceRecord
from facestream.types import FaceBatch
from pipelines.config import ProcessorSettings
from pipelines.events import match_record
from pipelines.evidence import (
    EvidenceStore,
    SmallFaceFinder,
    encode_jpeg,
    evidence_root,
    redacted_preview,
    with_small_faces,
)
from pipelines.metrics_export import ExportCheck, ExportState, node_metrics_url
from pipelines.review import Filing, ReviewStore, effective_required, review_path
from pipelines.sampling import Counters
from pipelines.sinks import Deliverer, Spool, make_sink
from pipelines.source import FrameSource, SampledFrame, StreamStatus
from pipelines.store_actor import call
from pipelines.telemetry import gauge, inc, observe
from pipelines.tracker import FaceTracker, FrameInfo, Track
from pipelines.urls import describe_source

log = logging.getLogger(__name__)

_HISTORY = 200
_LATENCIES = 20_000
_POLICY_REFRESH_S = 5.0
_CROP_SIDE_PX = 160
_EXPORT_POLL_S = 5.0
_EXIT_RESTART = 75  # EX_TEMPFAIL: "try again", for Ray's actor restart
_PREVIEW_SIDE_PX = 320


@dataclass(frozen=True)
class WorkerContext:
    """What a worker needs besides its settings (paths are on the node the actor runs on)."""

    home: Path
    audit_path: Path
    media_dirs: tuple[Path, ...]
    actor_key_id: str = "local:operator"
    actor_role: str = "admin"
    #: extra environment of the actor's process (RuntimeConfig.actor_env_vars)
    actor_env: tuple[tuple[str, str], ...] = ()


@dataclass
class _Pending:
    frame: FrameInfo
    response: Any
    rgb: np.ndarray


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
    candidates: int = 0
    suppressed: int = 0
    unknown_kept: int = 0


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
        self._review: ReviewStore | None = None
        self._required = 0
        self._required_at = 0.0
        self._collection_requires = False
        self._preview_at = 0.0
        self._evidence: Any = None
        # Frames that leave the system (previews, evidence) blur faces below the searchable
        # minimum too: found here, on this actor's CPU, only for those frames.
        self._small_faces = SmallFaceFinder()
        # Unmatched tracks waiting to be kept (only while keeping unknown faces is on): held
        # across store outages and retried each tick; their face ids are stable, so a retry
        # upserts rather than duplicates.
        self._unknown_backlog: collections.deque[tuple[str, FaceRecord]] = collections.deque(
            maxlen=_UNKNOWN_BACKLOG
        )
        self.tracker = FaceTracker(settings.tracking, settings.threshold)
        self._export: ExportCheck | None = None
        self._restarted = _reconstructed()
        if self._restarted:
            # Ray brought the actor back in a new process (its metrics did not reach Prometheus,
            # or the process died): the processor was running, so it runs again.
            self._history.append((time.time(), "STARTING", "restarted by Ray in a new process"))
            self.start()

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
            "Candidates": self.stats_.candidates,
            "Suppressed": self.stats_.suppressed,
            "UnknownFacesKept": self.stats_.unknown_kept,
            "RequiredConfirmations": self._required,
            "MetricsExport": self._export.state.value if self._export else ExportState.PENDING.value,
            "ProcessRestarts": int(self._restarted),
            "TracksStarted": self.tracker.tracks_started,
            "InFlight": len(self._pending),
            "Spooled": self._spool.count() if self._spool is not None else 0,
            "Delivered": dict(d.delivered) if d else {},
            "SinkErrors": dict(d.last_error) if d else {},
        }

    def track_log(self) -> list[tuple[float, list[list[Any]]]]:
        """Recent analysed frames: (offset_s, [[track_id, [x1, y1, x2, y2]], ...]); ids and boxes only."""
        return list(self.tracker.assignments)

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
        if self.settings.metrics_export_grace_s is not None and self._export is None:
            threading.Thread(
                target=self._watch_metrics_export, name=f"metrics-check-{self.settings.name}", daemon=True
            ).start()
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

    def _watch_metrics_export(self) -> None:
        """Check that this process's metrics reach the node's Prometheus endpoint (see
        :mod:`pipelines.metrics_export`); if they do not, restart once in a fresh process."""
        grace_s = self.settings.metrics_export_grace_s
        if grace_s is None:
            return
        check = ExportCheck(
            metric="facestream_stream_status",
            labels={"stream": self.settings.name},
            grace_s=grace_s,
            url=node_metrics_url(),
        )
        self._export = check
        while check.poll() is ExportState.PENDING:
            if self._done.wait(_EXPORT_POLL_S):
                return
        if check.state is not ExportState.FAILING:
            log.info("stream %s: metrics export %s", self.settings.name, check.state.value, extra=self.extra)
            return
        log.error(
            "stream %s: its metrics do not reach Prometheus (%s) %.0f s after start; %s",
            self.settings.name,
            check.last_error,
            grace_s,
            "already restarted once: left running without metrics"
            if self._restarted
            else "restarting the processor in a new process",
            extra=self.extra,
        )
        if self._restarted or self._done.is_set():
            return
        # Matches already found are safe in the durable spool, which the new process drains;
        # frames in flight are lost, and a person on screen becomes a new track there.
        # Ray restarts the actor (max_restarts=1 in spawn) in a new worker process, whose
        # exporter connects afresh; __init__ sees the reconstruction and starts again.
        os._exit(_EXIT_RESTART)

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
        self._review = ReviewStore(review_path(self.ctx.home))
        self._open_extras()
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
            self._review.close()
            if self._evidence is not None:
                self._evidence.close()
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
        self._collection_requires = bool(info.require_confirmation)
        self._dim = int(info.dim)

    def _open_extras(self) -> None:
        """Evidence frames, and keeping unknown faces: both only when the settings ask for them."""
        s = self.settings
        if s.evidence_frames or s.preview_interval_s is not None:
            self._evidence = EvidenceStore(evidence_root(self.ctx.home))
            self._small_faces.warm()
        unknown = s.unknown_faces
        if not unknown.active():
            return
        target = self._unknown_collection
        if target not in call(self.store.list_collections.remote(), 60):
            call(
                self.store.create_collection.remote(
                    target, model=self._model, dim=self._dim, retention_days=unknown.retention_days
                ),
                60,
            )
        self.tracker.collect_unmatched = True
        # Keeping faces of people nobody is looking for is the exception: on the record, every start.
        self.audit.append(
            actor=self.actor,
            operation="KeepUnknownFaces",
            purpose=s.purpose,
            inputs={
                "stream_processor": s.name,
                "collection": target,
                "until": unknown.until.isoformat() if unknown.until else None,
                "retention_days": unknown.retention_days,
            },
        )
        log.warning(
            "stream %s keeps unmatched faces in %s until %s", s.name, target, unknown.until, extra=self.extra
        )

    @property
    def _unknown_collection(self) -> str:
        s = self.settings
        return s.unknown_faces.collection or f"{s.collection}-unknown"[:255]

    def _required_confirmations(self) -> int:
        """Reviewers a match must pass (the review policy, else 2 if the collection asks), cached."""
        now = time.monotonic()
        if self._review is not None and now - self._required_at > _POLICY_REFRESH_S:
            policy = self._review.policy(self.settings.collection)
            self._required = effective_required(policy, self._collection_requires)
            self._required_at = now
        return self._required

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
            # The stream key lets the replica carry this stream's faces between full detections
            # (motion gate, detect every k frames, refine): see models/fastdetect.py.
            response = self.face.analyze.remote(frame.rgb, stream_key=self.settings.name)
        except Exception as exc:
            self._slots.release()
            counters.drops["inference_error"] += 1
            log.warning("submit failed: %s", type(exc).__name__, extra=self.extra)
            return
        counters.submitted += 1
        with self._pending_cv:
            self._pending.append(_Pending(_info(frame), response, frame.rgb))
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
                        self.tracker.end_all()
                        self._keep_unknown()
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
                self._track(item.frame, batch, item.rgb)
                self._keep_unknown()
                self._write_preview(item.rgb, batch)
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

    def _track(self, info: FrameInfo, batch: FaceBatch, rgb: np.ndarray) -> None:
        s = self.settings
        requests = self.tracker.observe(info, batch)
        if not requests:
            return
        queries = np.stack([r.embedding for r in requests]).astype(np.float32)
        t0 = time.perf_counter()
        try:
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
        except Exception:
            self.tracker.search_failed([r.track_id for r in requests])
            raise
        self.stats_.searches += len(requests)
        observe("facestream_search_seconds", time.perf_counter() - t0, collection=s.collection)
        inc("facestream_searches_total", len(requests), collection=s.collection)
        for req, found in zip(requests, hits, strict=True):
            for update in self.tracker.apply(req.track_id, found):
                record = match_record(s.name, StreamStatus.RUNNING.value, update)
                keep = self._face_index(batch, req.track_id)
                disposition = self._dispose(record, rgb, batch, keep)
                # Audited before the record can leave: who, why, what was found, what became of it;
                # no image.
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
                        "disposition": disposition,
                    },
                )
                if disposition == Filing.SUPPRESSED:
                    self.stats_.suppressed += 1
                    continue
                if disposition == Filing.CANDIDATE:
                    self.stats_.candidates += 1
                    inc("facestream_match_candidates_total", collection=s.collection)
                else:
                    assert self._spool is not None and self._deliverer is not None
                    self._spool.put(self._deliverer.names, record)
                    self._deliverer.notify()
                    self.stats_.events += 1
                    self.stats_.event_latency_s.append(time.monotonic() - info.monotonic)
                    inc("facestream_matches_total", collection=s.collection)
                    observe(
                        "facestream_capture_to_event_seconds", time.time() - info.producer_ts, stream=s.name
                    )
                if self._evidence is not None and s.evidence_frames and keep is not None:
                    self._evidence.save_frame(
                        record["EventId"],
                        rgb,
                        with_small_faces(batch.boxes, self._small_faces.boxes(rgb)),
                        keep,
                        face_id=update.identity.face_id,
                        external_image_id=update.identity.external_image_id,
                    )
                log.info(
                    "match %s %s %.1f track %s (%s)",
                    s.name,
                    update.identity.external_image_id,
                    update.similarity,
                    update.track_id,
                    disposition,
                    extra=self.extra,
                )

    def _dispose(self, record: dict[str, Any], rgb: np.ndarray, batch: FaceBatch, keep: int | None) -> str:
        """Send out at once ("release"), hold for reviewers ("candidate") or drop ("suppressed")."""
        required = self._required_confirmations()
        if required == 0:
            return Filing.RELEASE.value
        assert self._review is not None and self._spool is not None and self._deliverer is not None
        crop = None
        if keep is not None:
            crop = encode_jpeg(_crop(rgb, batch.boxes[keep]), max_side_px=_CROP_SIDE_PX, quality=85)
        return self._review.submit(
            record,
            collection=self.settings.collection,
            required=required,
            sinks=self._deliverer.names,
            spool=self._spool.path,
            crop_jpeg=crop,
        ).value

    def _face_index(self, batch: FaceBatch, track_id: str) -> int | None:
        """Which face of this frame the tracker gave to the track: its own assignment of the
        frame just observed (FaceTracker.assignments), not a recomputation by box overlap, which
        misses a track whose box was set from an earlier frame (a split of held faces)."""
        if not self.tracker.assignments:
            return None
        _offset_s, faces = self.tracker.assignments[-1]
        for i, (tid, _box) in enumerate(faces):
            if tid == track_id and i < len(batch):
                return i
        return None

    def _keep_unknown(self) -> None:
        """Upsert the tracks that ended unmatched, while keeping unknown faces is on (audited).

        A store outage does not lose them: they wait in a bounded backlog and go with the next
        tick that reaches the store (a full backlog drops the oldest, counted).
        """
        ended = self.tracker.drain_unmatched()
        s = self.settings
        if not s.unknown_faces.active():
            self._unknown_backlog.clear()  # the keeping window closed: nothing more is kept
            return
        for t in ended:
            if len(self._unknown_backlog) == self._unknown_backlog.maxlen:
                self.stats_.counters.drops["unknown_backlog_full"] += 1
            self._unknown_backlog.append((t.track_id, _unknown_record(s.name, t)))
        if not self._unknown_backlog:
            return
        batch = list(self._unknown_backlog)
        try:
            ids = call(
                self.store.add_faces.remote(
                    self._unknown_collection, [r for _, r in batch], model=self._model
                ),
                60.0,
            )
        except Exception as exc:
            log.warning(
                "keeping %d unknown faces failed (%s); retried next tick",
                len(batch),
                type(exc).__name__,
                extra=self.extra,
            )
            return
        for _ in batch:
            self._unknown_backlog.popleft()
        self.stats_.unknown_kept += len(ids)
        self.audit.append(
            actor=self.actor,
            operation="KeepUnknownFace",
            purpose=s.purpose,
            inputs={"stream_processor": s.name, "collection": self._unknown_collection},
            results={"face_ids": ids, "track_ids": [tid for tid, _ in batch]},
        )

    def _write_preview(self, rgb: np.ndarray, batch: FaceBatch) -> None:
        """A small frame with every face blurred, for the console's stream card (when allowed)."""
        interval = self.settings.preview_interval_s
        now = time.monotonic()
        if interval is None or self._evidence is None or now - self._preview_at < interval:
            return
        self._preview_at = now
        jpeg = redacted_preview(rgb, batch.boxes, self._small_faces, max_side_px=_PREVIEW_SIDE_PX)
        path = preview_path(self.ctx.home, self.settings.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, path)


_UNKNOWN_BACKLOG = 10_000


def preview_path(home: Path, processor: str) -> Path:
    return home / "previews" / f"{processor}.jpg"


def _crop(rgb: np.ndarray, box: np.ndarray, pad: float = 0.25) -> np.ndarray:
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    px, py = (x2 - x1) * pad, (y2 - y1) * pad
    left, top = max(0, int(x1 - px)), max(0, int(y1 - py))
    right, bottom = min(w, int(x2 + px) + 1), min(h, int(y2 + py) + 1)
    return rgb[top:bottom, left:right]


def _unknown_record(processor: str, track: Track) -> FaceRecord:
    """An unmatched track as a face: a stable id (re-kept after a restart upserts, not duplicates)."""
    emb = track.embedding.astype(np.float32)
    return FaceRecord(
        face_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"facestream:unknown:{processor}:{track.track_id}")),
        external_image_id=f"unknown.{processor}.{track.track_id}"[:255],
        image_id=hashlib.sha256(emb.tobytes()).hexdigest(),
        bounding_box=(0.0, 0.0, 0.0, 0.0),
        confidence=0.0,
        quality={},
        created_at_ms=int(datetime.now(UTC).timestamp() * 1000),
        embedding=emb,
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
        # Once: a process whose metrics never reach Prometheus replaces itself (see
        # _watch_metrics_export); a process that dies is brought back the same way.
        max_restarts=1,
        # An environment of its own: the actor gets a process started for it, never an idle
        # worker pre-started (e.g. at ray.init, before the node's metrics agent was up) whose
        # metrics exporter may have given up.
        runtime_env={"env_vars": {"FACESTREAM_PROCESSOR": settings.name, **dict(context.actor_env)}},
    ).remote(settings, face_handle, store, context)


def _reconstructed() -> bool:
    """True in an actor that Ray restarted after its process ended."""
    try:
        import ray

        return bool(ray.is_initialized() and ray.get_runtime_context().was_current_actor_reconstructed)
    except (ImportError, RuntimeError, AttributeError):
        return False
