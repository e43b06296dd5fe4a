"""One segment of a recorded video -> faces and tracks (decode, detect + embed, track).

:func:`analyse_segment` is the whole per-segment work; the Ray Data job runs it in an actor
pool (:class:`SegmentAnalyzer`), the command line in its own process. The result is a plain
JSON-able dict (it crosses Ray Data as one string column):

- ``faces``: ``[[t_ms, track_id, FaceDetail], ...]`` every face of every analysed frame;
- ``tracks``: ``{track_id: {"first": end, "last": end, "queries": [[d floats], ...], "faces": n}}``
  where an ``end`` is ``{"t_s", "box" (x1, y1, x2, y2 px), "emb" (d floats)}``: what
  stitching at the cuts needs; ``queries`` are the faces the tracker chose to search with
  (its first usable face, then clearly better ones), so a track is searched, not each frame;
- ``frames`` analysed, ``width``/``height`` of the frames, ``model``, ``error`` ("" if none).

Decoding runs in a thread beside the analysis (PyAV releases the GIL), at most two chunks ahead.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from facestream.config import AnalyzerConfig
from facestream.errors import FacestreamError
from facestream.rekognition import face_detail
from facestream.similarity import DEFAULT_MATCH_THRESHOLD
from pipelines.config import TrackerConfig
from pipelines.tracker import FaceTracker, FrameInfo
from pipelines.video_segments import DecodedFrame, Segment, decode_segment

log = logging.getLogger(__name__)


class VideoAnalysisConfig(BaseModel):
    """How segments are decoded, analysed and tracked (shared by the job and the CLI)."""

    model_config = ConfigDict(extra="forbid")

    fps: float = Field(5.0, gt=0.0, le=120.0, description="analysed frames per second of video")
    segment_s: float = Field(
        30.0, gt=0.0, le=3600.0, description="target segment length, seconds (cuts at key frames)"
    )
    batch_frames: int = Field(8, ge=1, le=256, description="frames per analyser call")
    skip_nonref: bool = Field(True, description="skip non-reference frames the sampler cannot keep")
    detector_mode: str = Field(
        "fast",
        pattern="^(fast|mtcnn)$",
        description="fast: the stream detector per segment (stream key); mtcnn: full MTCNN per frame",
    )
    tracking: TrackerConfig = Field(default_factory=TrackerConfig)


@dataclass
class _TrackEnds:
    first: dict[str, Any]
    last: dict[str, Any]
    queries: list[list[float]] = field(default_factory=list)
    faces: int = 0


def _end(t_s: float, box: np.ndarray, emb: np.ndarray) -> dict[str, Any]:
    return {
        "t_s": t_s,
        "box": [round(float(v), 2) for v in box],
        "emb": [float(x) for x in np.asarray(emb, np.float32)],
    }


def _chunks(
    segment: Segment, cfg: VideoAnalysisConfig, stop: threading.Event
) -> Iterator[list[DecodedFrame]]:
    """Chunks of decoded frames, decoded in a thread at most two chunks ahead."""
    q: queue.Queue[list[DecodedFrame] | BaseException | None] = queue.Queue(maxsize=2)

    def put(item: list[DecodedFrame] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            chunk: list[DecodedFrame] = []
            for f in decode_segment(segment, cfg.fps, skip_nonref=cfg.skip_nonref):
                chunk.append(f)
                if len(chunk) >= cfg.batch_frames:
                    if not put(chunk):
                        return
                    chunk = []
            if chunk and not put(chunk):
                return
            put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=run, name=f"decode-{segment.index}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = q.get(timeout=1.0)
            except queue.Empty:
                if not thread.is_alive() and q.empty():
                    return
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def analyse_segment(segment: Segment, analyzer: Any, cfg: VideoAnalysisConfig) -> dict[str, Any]:
    """Decode, analyse and track one segment; see the module docstring for the result."""
    t0 = time.monotonic()
    tracker = FaceTracker(cfg.tracking, threshold=DEFAULT_MATCH_THRESHOLD)
    faces: list[tuple[float, list[Any], dict[str, Any]]] = []  # (t_ms, tracker slot, detail)
    ends: dict[str, _TrackEnds] = {}
    slots_emb: list[tuple[list[Any], float, np.ndarray, np.ndarray]] = []
    frames = 0
    width = height = 0
    model = ""
    stop = threading.Event()
    error = ""
    try:
        for chunk in _chunks(segment, cfg, stop):
            images = [f.rgb for f in chunk]
            # The stream key selects the video path: the fast detector (state per segment) or,
            # with detector.stream.mode "mtcnn", single-pass MTCNN per frame (no still tiles).
            batches = analyzer.analyze(images, [segment.key] * len(images))
            for f, batch in zip(chunk, batches, strict=True):
                frames += 1
                height, width = f.rgb.shape[:2]
                if batch.model:
                    model = batch.model
                info = FrameInfo(offset_s=f.t_s, producer_ts=f.t_s, server_ts=0.0, session=0, monotonic=0.0)
                requests = tracker.observe(info, batch)
                if len(batch):
                    _, logged = tracker.assignments[-1]
                    for i, slot in enumerate(logged):
                        faces.append((round(f.t_s * 1000.0, 1), slot, face_detail(batch, i)))
                        assert batch.embeddings is not None
                        slots_emb.append((slot, f.t_s, batch.boxes[i], batch.embeddings[i]))
                for req in requests:
                    ends.setdefault(req.track_id, _TrackEnds({}, {})).queries.append(
                        [float(x) for x in req.embedding]
                    )
    except FacestreamError as exc:
        error = exc.message
    except Exception as exc:  # one bad segment must not end the job: its video fails
        log.exception("segment %s of %s failed", segment.index, segment.video)
        error = f"analysis failed: {type(exc).__name__}: {exc}"
    # Track ids are final only now (a split relabels the faces it takes).
    for slot, t_s, box, emb in slots_emb:
        tid = str(slot[0])
        e = ends.setdefault(tid, _TrackEnds({}, {}))
        if not e.first or t_s < e.first["t_s"]:
            e.first = _end(t_s, box, emb)
        if not e.last or t_s >= e.last["t_s"]:
            e.last = _end(t_s, box, emb)
        e.faces += 1
    return {
        "video": segment.video,
        "segment": segment.index,
        "start_s": segment.start_s,
        "end_s": segment.end_s,
        "error": error,
        "frames": frames,
        "width": width,
        "height": height,
        "model": model,
        "elapsed_s": round(time.monotonic() - t0, 3),
        "faces": [[t, str(slot[0]), d] for t, slot, d in faces],
        "tracks": {
            tid: {"first": e.first, "last": e.last, "queries": e.queries, "faces": e.faces}
            for tid, e in ends.items()
            if e.faces
        },
    }


def analyzer_config(analyzer: AnalyzerConfig, cfg: VideoAnalysisConfig) -> AnalyzerConfig:
    """``analyzer`` with its video-frame detector set to ``cfg.detector_mode``."""
    stream = analyzer.detector.stream.model_copy(update={"mode": cfg.detector_mode})
    detector = analyzer.detector.model_copy(update={"stream": stream})
    return analyzer.model_copy(update={"detector": detector})


class SegmentAnalyzer:
    """Ray Data actor: a batch of segment rows -> one result row (JSON) per segment."""

    def __init__(self, analyzer: dict[str, Any], video: dict[str, Any]) -> None:
        from models.analyzer import FaceAnalyzer

        self.cfg = VideoAnalysisConfig.model_validate(video)
        self.analyzer = FaceAnalyzer(analyzer_config(AnalyzerConfig.model_validate(analyzer), self.cfg))
        _ = self.analyzer.embedder  # weights once per actor, not per batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        out: list[str] = []
        for raw in batch["segment"]:
            seg = Segment(**json.loads(str(raw)))
            out.append(json.dumps(analyse_segment(seg, self.analyzer, self.cfg)))
        return {"result": out}
