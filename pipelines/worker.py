"""One stream processor at work: decode -> Serve (batched faces) -> tracker -> store -> sinks.

Runs inside one Ray actor per stream (see :func:`spawn`) with three threads, each part of it
in a module of its own:

- **decode** (:mod:`pipelines.worker_decode`): sampled frames go to the shared face deployment
  without waiting for the answer, at most ``max_in_flight`` per stream (the newest beyond that
  dropped and counted; a file replayed losslessly waits instead).
- **results** (here): takes answers in frame order and hands each frame to the match
  decisions (:mod:`pipelines.worker_matches`: tracker, store search, audit, review, spool),
  the unknown-face keeper (:mod:`pipelines.worker_unknown`) and the preview writer.
- **delivery** (:mod:`pipelines.worker_outputs`): moves spooled events to the sinks.

Shutdown goes from the source down: the decoder stops and closes its container, the
results thread finishes the frames in flight, the deliverer drains for a bounded time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facestream.audit import Actor, AuditLog
from facestream.errors import FacestreamError, ModelMismatch
from facestream.store.records import CollectionInfo
from facestream.types import FaceBatch
from pipelines.config import ProcessorSettings
from pipelines.evidence import SmallFaceFinder
from pipelines.metrics_export import ExportCheck, ExportState
from pipelines.source import StreamStatus
from pipelines.store_actor import call
from pipelines.telemetry import gauge
from pipelines.tracker import FaceTracker
from pipelines.urls import describe_source
from pipelines.worker_decode import Decoder, Ended, InferenceQueue
from pipelines.worker_matches import MatchDecider
from pipelines.worker_outputs import Outputs, preview_path
from pipelines.worker_stats import MetricsFlusher, WorkerStats
from pipelines.worker_status import StatusBoard, watch_metrics_export
from pipelines.worker_unknown import UnknownFaceKeeper

__all__ = ["StreamWorker", "WorkerContext", "preview_path", "spawn"]

log = logging.getLogger(__name__)


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
        audit = AuditLog(context.audit_path)
        actor = Actor(key_id=context.actor_key_id, role=context.actor_role)
        self.stats_ = WorkerStats()
        self.board = StatusBoard(settings.name)
        self._stop_source = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._queue = InferenceQueue(settings.max_in_flight)
        self._model = ""
        self._end_message = ""
        self._outputs: Outputs | None = None
        # Frames that leave the system (previews, evidence) blur faces below the searchable
        # minimum too: found on this actor's CPU, only for those frames.
        self._small_faces = SmallFaceFinder()
        self.tracker = FaceTracker(settings.tracking, settings.threshold)
        self._metrics = MetricsFlusher(settings.name, self.stats_)
        self._matches = MatchDecider(settings, store, self.tracker, self.stats_, audit, actor)
        self._unknown = UnknownFaceKeeper(settings, store, self.tracker, self.stats_, audit, actor)
        self._export: ExportCheck | None = None
        self._restarted = _reconstructed()
        if self._restarted:
            # Ray brought the actor back in a new process (its metrics did not reach Prometheus,
            # or the process died): the processor was running, so it runs again.
            self.board.note("STARTING", "restarted by Ray in a new process")
            self.start()

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        status, message, history = self.board.snapshot()
        out = self._outputs
        d = out.deliverer if out is not None else None
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
            "RequiredConfirmations": self._matches.required,
            "MetricsExport": self._export.state.value if self._export else ExportState.PENDING.value,
            "ProcessRestarts": int(self._restarted),
            "TracksStarted": self.tracker.tracks_started,
            "InFlight": len(self._queue),
            "Spooled": out.spool.count() if out is not None else 0,
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
        self._queue.reopen()
        self._end_message = ""
        self.board.set(StreamStatus.STARTING, f"opening {describe_source(self.settings.source)}")
        threading.Thread(target=self._main, name=f"stream-{self.settings.name}", daemon=True).start()
        grace_s = self.settings.metrics_export_grace_s
        if grace_s is not None and self._export is None:
            threading.Thread(
                target=watch_metrics_export,
                args=(self.settings.name, grace_s),
                kwargs={"done": self._done, "restarted": self._restarted, "on_check": self._on_export_check},
                name=f"metrics-check-{self.settings.name}",
                daemon=True,
            ).start()
        return self.status()

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        if not self._done.is_set():
            self.board.set(StreamStatus.STOPPING, "stop requested")
            self._stop_source.set()
            self._done.wait(timeout_s)
        return self.status()

    def wait(self, timeout_s: float) -> bool:
        """True once the processor has finished (stopped, source ended, or failed)."""
        return self._done.wait(timeout_s)

    def _on_export_check(self, check: ExportCheck) -> None:
        self._export = check

    def _main(self) -> None:
        try:
            info = self._check_collection()
        except FacestreamError as exc:
            self.board.set(StreamStatus.FAILED, exc.message)
            self._done.set()
            return
        except Exception as exc:  # the deployment or store actor missing: same outcome
            self.board.set(StreamStatus.FAILED, f"cannot reach face service or store: {type(exc).__name__}")
            self._done.set()
            return
        outputs = self._outputs = Outputs(self.settings, self.ctx.home, self._small_faces)
        self._unknown.open(self._model, int(info.dim))
        self._matches.open(self._model, bool(info.require_confirmation), outputs)
        outputs.start_delivery()
        results = threading.Thread(
            target=self._results_loop, args=(outputs,), name=f"results-{self.settings.name}", daemon=True
        )
        results.start()
        decoder = Decoder(
            self.settings,
            self.face,
            self._queue,
            self.stats_.counters,
            media_dirs=self.ctx.media_dirs,
            stop=self._stop_source,
            on_status=self._on_source_status,
        )
        try:
            decoder.run()
        except Exception as exc:
            log.exception("decode loop of %s crashed", self.settings.name, extra=self.extra)
            self.board.set(StreamStatus.FAILED, f"decoder crashed: {type(exc).__name__}")
        finally:
            self._queue.end()
            results.join(timeout=self.settings.inference_timeout_s + 5)
            self._metrics.flush(self.tracker.tracks_started)
            outputs.close()
            if self.board.current != StreamStatus.FAILED:
                self.board.set(StreamStatus.STOPPED, self._end_message or "stopped")
            self._done.set()

    def _check_collection(self) -> CollectionInfo:
        """The collection exists and holds the face service's embeddings; its description."""
        self._model = str(self.face.model_name.remote().result(timeout_s=60))
        info: CollectionInfo = call(self.store.describe_collection.remote(self.settings.collection), 60)
        if info.model != self._model:
            raise ModelMismatch(
                f"collection {self.settings.collection!r} holds {info.model} faces; the face service makes "
                f"{self._model}"
            )
        return info

    def _on_source_status(self, status: StreamStatus, message: str) -> None:
        if status == StreamStatus.STOPPED:
            # The source ended; frames in flight and spooled records still have to finish.
            self._end_message = message
            status = StreamStatus.STOPPING
        self.board.set(status, message)

    # --- results ----------------------------------------------------------------------------

    def _results_loop(self, outputs: Outputs) -> None:
        counters = self.stats_.counters
        while True:
            item = self._queue.take()
            if isinstance(item, Ended):
                self.tracker.end_all()
                self._unknown.keep()
                return
            if item is None:
                # Idle (reconnecting, stalled, paced): counters still reach Prometheus.
                self._metrics.flush(self.tracker.tracks_started)
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
                self._queue.release()
            counters.analysed += 1
            self.stats_.faces += len(batch)
            try:
                self._matches.on_frame(item.frame, batch, item.rgb)
                self._unknown.keep()
                outputs.write_preview(item.rgb, batch)
            except Exception:
                log.exception("tracking/search failed for a frame", extra=self.extra)
                counters.drops["search_error"] += 1
            self.stats_.frame_latency_s.append(time.monotonic() - item.frame.monotonic)
            gauge(
                "facestream_stream_lag_seconds",
                time.time() - item.frame.producer_ts,
                stream=self.settings.name,
            )
            self._metrics.flush(self.tracker.tracks_started)


def spawn(settings: ProcessorSettings, face_handle: Any, store: Any, context: WorkerContext) -> Any:
    """A Ray actor running :class:`StreamWorker` (not started: call ``start.remote()``)."""
    import ray

    actor_cls = ray.remote(StreamWorker)
    return actor_cls.options(
        num_cpus=settings.actor_num_cpus,
        max_concurrency=4,  # status/stop must be answerable while start's threads run
        name=f"facestream-stream-{settings.name}",
        # Once: a process whose metrics never reach Prometheus replaces itself (see
        # pipelines.worker_status.watch_metrics_export); a process that dies is brought back
        # the same way.
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
