"""Decoding one stream with PyAV: open, demux, sample by timestamp, reconnect.

:meth:`FrameSource.frames` yields the sampled frames as RGB arrays and handles the stream's
whole life: it opens the source (with open and read timeouts, so a stalled source raises
instead of hanging), decodes every packet but converts to RGB only the frames the sampler
keeps, and on a failure or end of a live stream reconnects with capped, jittered backoff.
Status changes go to a callback with the reason (URLs masked).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import av
import numpy as np

from facestream.errors import FacestreamError
from pipelines.config import FileSource, ReconnectConfig, SourceConfig
from pipelines.sampling import Backoff, Counters, FrameSampler
from pipelines.urls import OpenSpec, describe_source, open_spec, scrub

log = logging.getLogger(__name__)


class NoVideoFrames(Exception):
    """Bytes arrive but no video frame decodes from them: the source is retried like a failure."""


class StreamStatus(StrEnum):
    """Rekognition's stream processor states, plus RECONNECTING."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    RECONNECTING = "RECONNECTING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


StatusFn = Callable[[StreamStatus, str], None]


@dataclass(frozen=True)
class SampledFrame:
    """One frame chosen for analysis.

    - ``rgb``: (H, W, 3) uint8
    - ``offset_s``: seconds on the source's clock (pts; loops of a file add up)
    - ``producer_ts`` / ``server_ts``: epoch seconds when it was (estimated to be) captured /
      when we decoded it
    - ``session``: connection number, 0 for the first
    """

    rgb: np.ndarray
    offset_s: float
    producer_ts: float
    server_ts: float
    key_frame: bool
    session: int
    monotonic: float


class FrameSource:
    def __init__(
        self,
        source: SourceConfig,
        *,
        fps: float,
        keyframes_only: bool,
        reconnect: ReconnectConfig,
        media_dirs: list[Path],
        stop: threading.Event,
        on_status: StatusFn,
        counters: Counters,
        stream_id: str,
        skip_nonref: bool = True,
    ) -> None:
        """``skip_nonref``: when sampling below the source's frame rate, let the decoder drop
        non-reference frames the sampler will not keep (see :func:`frame_needed`)."""
        self.source = source
        self.keyframes_only = keyframes_only
        self.skip_nonref = skip_nonref
        self.reconnect = reconnect
        self.media_dirs = media_dirs
        self.stop = stop
        self.on_status = on_status
        self.counters = counters
        self.sampler = FrameSampler(fps)
        self.extra = {"stream_id": stream_id}
        self.display = describe_source(source)
        self._loop_base_s = 0.0
        self._last_t = 0.0

    @property
    def realtime(self) -> bool:
        """False only for a file replayed as fast as inference allows (waits instead of drops)."""
        return not isinstance(self.source, FileSource) or self.source.realtime

    @property
    def paced(self) -> bool:
        """True when we sleep to the frames' timestamps (the source would deliver faster)."""
        return self.source.realtime

    def frames(self) -> Generator[SampledFrame, None, None]:
        backoff = Backoff(self.reconnect)
        session = 0
        while not self.stop.is_set():
            try:
                spec = open_spec(self.source, self.media_dirs, timeout_s=self.reconnect.open_timeout_s)
            except FacestreamError as exc:
                self.on_status(StreamStatus.FAILED, exc.message)
                return
            except Exception as exc:  # a Kinesis lookup can fail in many ways; all mean "retry"
                reason = f"could not resolve {self.display}: {type(exc).__name__}"
                if not self._wait_before_retry(backoff, reason):
                    return
                continue
            reason = "end of stream"
            eof = False
            try:
                container = av.open(
                    spec.url,
                    options=spec.options,
                    timeout=(self.reconnect.open_timeout_s, self.reconnect.stall_timeout_s),
                )
            except (av.FFmpegError, OSError) as exc:
                reason = f"cannot open {spec.display}: {scrub(str(exc), spec.secrets)}"
                log.warning("%s", reason, extra=self.extra)
                if spec.is_file or not self._wait_before_retry(backoff, reason):
                    if spec.is_file:
                        self.on_status(StreamStatus.FAILED, reason)
                    return
                continue
            try:
                got_frame = False
                for frame in self._decode(container, spec, session):
                    if not got_frame:
                        got_frame = True
                        backoff.reset()
                        self.on_status(StreamStatus.RUNNING, f"receiving {spec.display}")
                    yield frame
                eof = True
            except (av.FFmpegError, OSError, NoVideoFrames) as exc:
                # A read timeout (stalled source) surfaces here as an FFmpeg exit error.
                reason = f"{spec.display}: {scrub(str(exc), spec.secrets)}"
                log.warning("stream read failed: %s", reason, extra=self.extra)
            finally:
                container.close()
            if self.stop.is_set():
                return
            session += 1
            if spec.is_file and eof:
                assert isinstance(self.source, FileSource)
                if not self.source.loop:
                    self.on_status(StreamStatus.STOPPED, "end of file")
                    return
                self._loop_base_s = self._last_t + self.sampler.period_s
                continue
            if eof and not isinstance(self.source, FileSource) and self.source.end_of_stream == "stop":
                self.on_status(StreamStatus.STOPPED, "end of stream")
                return
            if not self._wait_before_retry(backoff, reason):
                return

    def _wait_before_retry(self, backoff: Backoff, reason: str) -> bool:
        if backoff.exhausted():
            self.on_status(StreamStatus.FAILED, f"{reason}; gave up after {backoff.attempts} attempts")
            return False
        delay = backoff.next_delay_s()
        self.counters.reconnects += 1
        self.on_status(StreamStatus.RECONNECTING, f"{reason}; reconnecting in {delay:.1f}s")
        self.stop.wait(delay)
        return not self.stop.is_set()

    def _decode(
        self, container: av.container.InputContainer, spec: OpenSpec, session: int
    ) -> Iterator[SampledFrame]:
        if not container.streams.video:
            raise av.error.InvalidDataError(0, f"{spec.display} has no video stream")
        stream = container.streams.video[0]
        if self.keyframes_only:
            # The decoder then skips every non-key frame instead of decoding it to drop it.
            stream.codec_context.skip_frame = "NONKEY"
        rate = float(stream.average_rate) if stream.average_rate else 25.0
        # Below the source rate most frames are thrown away after decoding. Those nobody refers
        # to (H.264/HEVC non-reference B/P frames) need not be decoded at all: per packet, the
        # decoder is told to skip non-reference frames unless the sampler may keep this one.
        # Reference frames are always decoded, so every kept frame decodes exactly as before.
        skip = self.skip_nonref and not self.keyframes_only and self.sampler.period_s * rate > 1.5
        ctx = stream.codec_context
        self.sampler.reset()
        wall0 = time.time()
        mono0 = time.monotonic()
        t0: float | None = None
        prev_t: float | None = None
        frame_timeout_s = self.reconnect.frame_timeout_s
        last_frame_mono = mono0
        # Every stream is demuxed, not only the video: PyAV's demux(stream) reads past other
        # streams' packets inside one call, so a source that sends only those (or garbage the
        # demuxer turns into them) would never hand control back: no stop, no watchdog.
        for packet in container.demux():
            if self.stop.is_set():
                return
            if time.monotonic() - last_frame_mono > frame_timeout_s:
                raise NoVideoFrames(f"{spec.display}: no decodable video frame for {frame_timeout_s:g} s")
            if packet.stream.index != stream.index:
                continue
            if skip:
                ctx.skip_frame = "DEFAULT" if frame_needed(packet, self.sampler, 1.0 / rate) else "NONREF"
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame):
                    continue
                last_frame_mono = time.monotonic()
                self.counters.decoded += 1
                if frame.time is not None:
                    t = float(frame.time)
                elif prev_t is not None:
                    t = prev_t + 1.0 / rate
                else:
                    # RTSP's first frame can precede the first RTCP timing: its offset is unknown,
                    # and a guessed 0 would misplace it in the stream's timeline.
                    continue
                prev_t = t
                if t0 is None:
                    t0 = t
                if not self.sampler.accept(t):
                    continue
                if self.paced:
                    # Replay a recording as a camera would deliver it.
                    delay = mono0 + (t - t0) - time.monotonic()
                    if delay > 0 and self.stop.wait(delay):
                        return
                self.counters.sampled += 1
                offset = self._loop_base_s + t
                self._last_t = offset
                yield SampledFrame(
                    rgb=frame.to_ndarray(format="rgb24"),
                    offset_s=offset,
                    producer_ts=wall0 + (t - t0),
                    server_ts=time.time(),
                    key_frame=bool(frame.key_frame),
                    session=session,
                    monotonic=time.monotonic(),
                )
                # The consumer may have held us (blocking replay, pacing): that is not the source's time.
                last_frame_mono = time.monotonic()


def frame_needed(packet: av.Packet, sampler: FrameSampler, frame_s: float) -> bool:
    """Whether the frame in ``packet`` may be kept by ``sampler`` (so must not be skipped).

    Packets come in decode order, frames leave the decoder (a few frames later) in
    presentation order, and the sampler keeps the first frame at or after each due time
    ``next_due_s + k * period_s`` (minus its slack). A frame is needed when such a due time
    falls within one and a half frame durations before its timestamp: a superset of the frames
    the sampler keeps, whatever it decides meanwhile. Unknown timestamps, the first frame and a
    timestamp going back (a new schedule) are always needed.
    """
    if packet.pts is None or packet.time_base is None:
        return True
    due = sampler.next_due_s
    if due is None:
        return True
    t = float(packet.pts * packet.time_base) + sampler.slack_s
    period = sampler.period_s
    if t < due - 2 * period - 1.0:
        return True
    if t + 0.5 * frame_s < due:
        return False
    # The latest due time at or before t + half a frame; needed if it is within 1.5 frames before t.
    k = int((t + 0.5 * frame_s - due) // period)
    return t + 0.5 * frame_s - (due + k * period) < 2.0 * frame_s
