"""Decode and submit: a stream's sampled frames go to the face service without waiting.

:class:`Decoder` runs in the processor's decode thread: :class:`pipelines.source.FrameSource`
yields sampled RGB frames and each goes to the shared face deployment through its
DeploymentHandle. :class:`InferenceQueue` holds the answers still to come, in frame order: at
most ``max_in_flight`` per stream; a live frame beyond that is dropped (the newest: the ones
in flight are already paid for) and counted under ``inference_busy``, while a file replayed
losslessly waits for a free slot instead.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from pipelines.config import ProcessorSettings
from pipelines.sampling import Counters
from pipelines.source import FrameSource, SampledFrame, StreamStatus
from pipelines.telemetry import observe
from pipelines.tracker import FrameInfo

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """A frame out at the face service: its provenance, the answer to come, its pixels."""

    frame: FrameInfo
    response: Any
    rgb: np.ndarray


class Ended:
    """What :meth:`InferenceQueue.take` returns once the source ended and every answer was taken."""


ENDED: Final = Ended()


class InferenceQueue:
    """Frames submitted and not yet answered, oldest first, bounded by ``max_in_flight`` slots."""

    def __init__(self, max_in_flight: int) -> None:
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pending: collections.deque[Pending] = collections.deque()
        self._cv = threading.Condition()
        self._source_ended = threading.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def acquire(self, *, block: bool, stop: threading.Event) -> bool:
        """A free slot (at once, or waiting until ``stop`` when ``block``); False if none."""
        if not block:
            return self._slots.acquire(blocking=False)
        while not stop.is_set():
            if self._slots.acquire(timeout=0.2):
                return True
        return False

    def release(self) -> None:
        self._slots.release()

    def push(self, item: Pending) -> None:
        with self._cv:
            self._pending.append(item)
            self._cv.notify()

    def reopen(self) -> None:
        self._source_ended.clear()

    def end(self) -> None:
        """The source ended: no more frames come; :meth:`take` says so once the rest is taken."""
        self._source_ended.set()
        with self._cv:
            self._cv.notify_all()

    def take(self, wait_s: float = 0.5) -> Pending | Ended | None:
        """The oldest frame in flight; None after ``wait_s`` idle; ENDED when all is done."""
        with self._cv:
            if not self._pending and not self._source_ended.is_set():
                self._cv.wait(wait_s)
            if self._pending:
                return self._pending.popleft()
            return ENDED if self._source_ended.is_set() else None


def frame_info(frame: SampledFrame) -> FrameInfo:
    return FrameInfo(
        offset_s=frame.offset_s,
        producer_ts=frame.producer_ts,
        server_ts=frame.server_ts,
        session=frame.session,
        monotonic=frame.monotonic,
    )


class Decoder:
    """The decode thread's body: open the source, sample, submit each kept frame."""

    def __init__(
        self,
        settings: ProcessorSettings,
        face_handle: Any,
        queue: InferenceQueue,
        counters: Counters,
        *,
        media_dirs: tuple[Path, ...],
        stop: threading.Event,
        on_status: Callable[[StreamStatus, str], None],
    ) -> None:
        self.settings = settings
        self.face = face_handle
        self.queue = queue
        self.counters = counters
        self.media_dirs = media_dirs
        self.stop = stop
        self.on_status = on_status
        self.extra = {"stream_id": settings.name}

    def run(self) -> None:
        s = self.settings
        source = FrameSource(
            s.source,
            fps=s.analysis_fps,
            keyframes_only=s.keyframes_only,
            reconnect=s.reconnect,
            media_dirs=list(self.media_dirs),
            stop=self.stop,
            on_status=self.on_status,
            counters=self.counters,
            stream_id=s.name,
        )
        frames = source.frames()
        # CPU time of this thread between two sampled frames: demux + decode + RGB conversion,
        # without the waits of a live or paced source.
        cpu0 = time.thread_time()
        try:
            for frame in frames:
                observe("facestream_stream_decode_seconds", time.thread_time() - cpu0, stream=s.name)
                self.submit(frame, block=not source.realtime)
                cpu0 = time.thread_time()
        finally:
            frames.close()  # closes the container inside the generator

    def submit(self, frame: SampledFrame, *, block: bool) -> None:
        counters = self.counters
        if not self.queue.acquire(block=block, stop=self.stop):
            counters.drops["inference_busy"] += 1
            return
        try:
            # The stream key lets the replica carry this stream's faces between full detections
            # (motion gate, detect every k frames, refine): see models/fastdetect.py.
            response = self.face.analyze.remote(frame.rgb, stream_key=self.settings.name)
        except Exception as exc:
            self.queue.release()
            counters.drops["inference_error"] += 1
            log.warning("submit failed: %s", type(exc).__name__, extra=self.extra)
            return
        counters.submitted += 1
        self.queue.push(Pending(frame_info(frame), response, frame.rgb))
