"""The batched face deployment: detection + quality + alignment + embedding on Ray Serve.

Every caller — stream actors and the HTTP API alike — sends single frames through a
DeploymentHandle; ``@serve.batch`` gathers frames from all of them into one call, which
groups equal-sized frames for MTCNN and embeds all their faces in one forward pass. The
model runs in a worker thread so the replica's event loop keeps collecting the next batch.

Frames with a stream key go to that stream's home replica (``pipelines/face_router.py``), so
the per-stream fast-path state stays in one place; ``stats()`` counts frames per stream and
names the replica, which is how tests and ``bench.scale`` check it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from typing import Any, cast

import numpy as np
from ray import serve
from ray.serve.exceptions import RayServeException

from facestream import metrics
from facestream.config import EmbeddingServiceConfig
from facestream.errors import InvalidParameter
from facestream.types import FaceBatch

log = logging.getLogger(__name__)


class FaceAnalysisService:
    """Serve replica body (wrapped by :func:`deployment`). Methods take one frame each."""

    def __init__(self, config: dict[str, Any] | EmbeddingServiceConfig | None = None) -> None:
        from models.analyzer import FaceAnalyzer

        self.config = (
            config
            if isinstance(config, EmbeddingServiceConfig)
            else EmbeddingServiceConfig.model_validate(config or {})
        )
        self.analyzer = FaceAnalyzer(self.config.analyzer)
        _ = self.analyzer.embedder  # load weights now, not on the first request
        for method in (self.analyze_batch, self.detect_batch):
            batched = cast(Any, method)  # serve.batch adds the setters at run time
            batched.set_max_batch_size(self.config.max_batch_size)
            batched.set_batch_wait_timeout_s(self.config.batch_wait_timeout_s)
        self._batch_sizes: Counter[int] = Counter()
        self._queue: Counter[str] = Counter()
        self._frames = 0
        self._busy_s = 0.0
        self._stream_frames: Counter[str] = Counter()
        self._stream_seen: dict[str, float] = {}
        self._replica_id = _replica_id()
        log.info("face analysis replica ready (pid %s, model %s)", os.getpid(), self.analyzer.model_name)

    async def analyze(self, frame: np.ndarray, stream_key: str | None = None) -> FaceBatch:
        """One RGB uint8 frame (H, W, 3) -> its faces with embeddings.

        ``stream_key``: the video stream the frame belongs to (its name); keyed frames use the
        fast per-stream detector (motion gate, detect every k frames, refine). None (still
        images): full per-frame MTCNN.
        """
        key = _check_key(stream_key)
        self._count_stream(key)
        return await self._queued("analyze", self.analyze_batch, frame, key)

    async def detect(self, frame: np.ndarray, stream_key: str | None = None) -> FaceBatch:
        """One RGB uint8 frame (H, W, 3) -> its faces, no embeddings (``stream_key``: see analyze)."""
        key = _check_key(stream_key)
        self._count_stream(key)
        return await self._queued("detect", self.detect_batch, frame, key)

    def _count_stream(self, key: str | None) -> None:
        # Bounded like the detector's own per-stream state: keys beyond the cap go uncounted.
        if key is None:
            return
        if key in self._stream_frames or len(self._stream_frames) < _MAX_COUNTED_STREAMS:
            self._stream_frames[key] += 1
            self._stream_seen[key] = time.monotonic()

    def record_routing_stats(self) -> dict[str, Any]:
        """What the stream-affinity router balances on (Serve collects it periodically): the
        streams that sent a frame here in the last ``_ACTIVE_STREAM_S``."""
        cutoff = time.monotonic() - _ACTIVE_STREAM_S
        for key in [k for k, t in self._stream_seen.items() if t < cutoff]:
            del self._stream_seen[key]
        return {"active_streams": len(self._stream_seen)}

    async def _queued(self, method: str, batched: Any, frame: np.ndarray, key: str | None) -> FaceBatch:
        """Await the batched call while counting the frames waiting or running in this replica."""
        self._queue[method] += 1
        metrics.set_gauge("facestream_serve_queue_depth", self._queue[method], method=method)
        try:
            result: FaceBatch = await batched((frame, key))
            return result
        finally:
            self._queue[method] -= 1
            metrics.set_gauge("facestream_serve_queue_depth", self._queue[method], method=method)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def analyze_batch(self, items: list[tuple[np.ndarray, str | None]]) -> list[FaceBatch]:
        return await self._run(items, embed=True)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def detect_batch(self, items: list[tuple[np.ndarray, str | None]]) -> list[FaceBatch]:
        return await self._run(items, embed=False)

    async def _run(self, items: list[tuple[np.ndarray, str | None]], *, embed: bool) -> list[FaceBatch]:
        frames = [f for f, _ in items]
        keys = [k for _, k in items]
        method = "analyze" if embed else "detect"
        metrics.observe("facestream_serve_batch_size", len(frames), method=method)
        t0 = time.perf_counter()
        out: list[FaceBatch] = await asyncio.to_thread(self._analyze, frames, keys, embed)
        self._busy_s += time.perf_counter() - t0
        self._batch_sizes[len(frames)] += 1
        self._frames += len(frames)
        return out

    def _analyze(self, frames: list[np.ndarray], keys: list[str | None], embed: bool) -> list[FaceBatch]:
        t0 = time.perf_counter()
        batches = self.analyzer.detect(frames, keys if any(k is not None for k in keys) else None)
        t1 = time.perf_counter()
        metrics.observe("facestream_detect_seconds", t1 - t0)
        for b in batches:
            metrics.observe("facestream_faces_per_frame", len(b))
        if not embed:
            return batches
        out = self.analyzer.embed_batches(frames, batches)
        metrics.observe("facestream_embed_seconds", time.perf_counter() - t1)
        return out

    def model_name(self) -> str:
        return self.analyzer.model_name

    async def landmarks_all(self, frame: np.ndarray, batch: FaceBatch) -> np.ndarray:
        """Rekognition's ALL landmarks (n, 30, 2) px for ``batch``'s faces (not batched: rare,
        and the 68-point model is loaded on the first such call)."""
        return await asyncio.to_thread(self.analyzer.landmarks_all, frame, batch)

    def stats(self) -> dict[str, Any]:
        """Batch-size histogram and busy time of this replica (for tests and benchmarks)."""
        timing = self.analyzer.precision_timing
        return {
            "pid": os.getpid(),
            "replica": self._replica_id,
            "node": _node_id(),
            "precision": self.analyzer.placement.precision,
            "precision_timing": timing.as_dict() if timing is not None else None,
            "stream_frames": dict(self._stream_frames),
            "frames": self._frames,
            "busy_s": self._busy_s,
            "batch_sizes": dict(self._batch_sizes),
            "stream_detect": self.analyzer.stream_detector.stats.as_dict(),
        }


_MAX_COUNTED_STREAMS = 4096
#: a stream counts as active on a replica this long after its last frame there
_ACTIVE_STREAM_S = 10.0


def _replica_id() -> str:
    """This replica's Serve id (what the router hashes on); the pid outside Serve."""
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except RayServeException:  # not inside a Serve replica (tests construct it directly)
        return f"pid-{os.getpid()}"


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _check_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 0 < len(key) <= 256:
        raise InvalidParameter("stream_key must be a non-empty string of at most 256 characters")
    return key


def deployment(config: EmbeddingServiceConfig, name: str = "FaceAnalysis") -> Any:
    """The configured Serve deployment (replicas, autoscaling, GPUs per replica)."""
    autoscaling: dict[str, Any] | None = None
    if config.max_replicas > config.min_replicas:
        autoscaling = {
            "min_replicas": config.min_replicas,
            "max_replicas": config.max_replicas,
            "target_ongoing_requests": config.target_ongoing_requests,
        }
    extra: dict[str, Any] = {}
    if config.stream_affinity:
        from ray.serve.config import RequestRouterConfig

        from pipelines.face_router import StreamAffinityRouter

        router: dict[str, Any] = {
            # a class is accepted as well as an import path
            "request_router_class": StreamAffinityRouter,
            "request_router_kwargs": {
                "load_factor": config.affinity_load_factor,
                "min_queue": config.affinity_min_queue,
                "rehome_s": config.affinity_rehome_s,
            },
            # how fresh the replicas' active-stream counts are that the router balances on
            "request_routing_stats_period_s": 2.0,
        }
        extra["request_router_config"] = RequestRouterConfig(**router)
    return serve.deployment(
        FaceAnalysisService,
        name=name,
        num_replicas=None if autoscaling else config.min_replicas,
        autoscaling_config=autoscaling,
        max_ongoing_requests=config.max_ongoing_requests,
        ray_actor_options={"num_cpus": config.num_cpus, "num_gpus": config.num_gpus},
        **extra,
    )
