"""Recorded video: probe a file, cut it into segments at key frames, decode one segment.

A long file is read by many workers: each segment starts at a key frame (so it decodes on its
own after a seek) and ends where the next one starts. Segments are planned from a handful of
seeks (one per planned cut), never by reading the whole file.

Sampling uses one grid per file (``origin + k / fps``), so which frames are analysed does not
depend on where the cuts fall: a segment keeps the first frame of each grid slot whose start
lies inside it. A slot that begins just before a cut and has no frame before it is left empty
(at most one sample per cut).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from facestream.errors import InvalidParameter

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv"})


class VideoUnreadable(InvalidParameter):
    """The file is not a video PyAV can decode (missing, truncated, no video stream)."""


@dataclass(frozen=True)
class VideoInfo:
    """What Rekognition's ``VideoMetadata`` reports, plus what segment planning needs.

    ``start_s``: the first video frame's time on the file's clock (seconds from the start of
    the file, as Rekognition counts timestamps); ``end_s``: past the last frame.
    """

    path: str
    codec: str
    format: str
    frame_rate: float
    width: int
    height: int
    color_range: str
    duration_ms: int
    start_s: float
    end_s: float

    def metadata(self) -> dict[str, Any]:
        """Rekognition's ``VideoMetadata``."""
        return {
            "Codec": self.codec,
            "DurationMillis": self.duration_ms,
            "Format": self.format,
            "FrameRate": round(self.frame_rate, 3),
            "FrameHeight": self.height,
            "FrameWidth": self.width,
            "ColorRange": self.color_range,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    """``[start_s, end_s)`` of one video on its own clock; ``end_s`` None: to the end of the file."""

    video: str
    index: int
    count: int
    start_s: float
    end_s: float | None
    origin_s: float  # the file's first frame: origin of the sampling grid

    @property
    def key(self) -> str:
        """Per-segment stream key for the analyser's fast path (state must not cross segments)."""
        return f"{self.video}#{self.index}"


def probe(path: str) -> VideoInfo:
    """Open ``path`` and read its metadata (no frame decoded). Raises :class:`VideoUnreadable`."""
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoUnreadable(f"cannot open video {path}: {exc}") from None
    try:
        if not container.streams.video:
            raise VideoUnreadable(f"{path} has no video stream")
        vs = container.streams.video[0]
        ctx = vs.codec_context
        rate = float(vs.average_rate or vs.guessed_rate or 0.0) or 25.0
        tb = vs.time_base
        if vs.start_time is not None and tb is not None:
            start = float(vs.start_time * tb)
        elif container.start_time is not None:
            start = container.start_time / 1e6
        else:
            start = 0.0
        if vs.duration is not None and tb is not None:
            end = start + float(vs.duration * tb)
        elif container.duration is not None:
            end = container.duration / 1e6
        else:
            end = start
        # The first packet must decode: a file with a valid header and garbage after it fails here.
        first = _first_frame_time(container, vs)
        if first is None:
            raise VideoUnreadable(f"{path}: no decodable video frame")
        start = first
        if end <= start:
            end = start + 1.0 / rate
        fmt = container.format.long_name or container.format.name
        color = "FULL" if str(getattr(ctx, "color_range", "")).endswith(("2", "JPEG", "jpeg")) else "LIMITED"
        duration_ms = round((container.duration / 1e3) if container.duration else end * 1000)
        return VideoInfo(
            path=path,
            codec=ctx.name,
            format=fmt,
            frame_rate=rate,
            width=int(ctx.width),
            height=int(ctx.height),
            color_range=color,
            duration_ms=duration_ms,
            start_s=start,
            end_s=end,
        )
    except (av.FFmpegError, OSError) as exc:
        raise VideoUnreadable(f"{path}: {exc}") from None
    finally:
        container.close()


def _first_frame_time(container: Any, vs: Any) -> float | None:
    for packet in container.demux(vs):
        for frame in packet.decode():
            if frame.time is not None:
                return float(frame.time)
        if packet.size == 0:
            break
    return None


def plan_segments(info: VideoInfo, segment_s: float) -> list[Segment]:
    """Segments of about ``segment_s`` seconds, each starting at a key frame (found by seeking)."""
    if segment_s <= 0:
        raise InvalidParameter(f"segment_s must be positive, got {segment_s}")
    starts = [info.start_s]
    n = math.floor((info.end_s - info.start_s) / segment_s)
    if n >= 1:
        try:
            container = av.open(info.path)
        except (av.FFmpegError, OSError) as exc:
            raise VideoUnreadable(f"cannot open video {info.path}: {exc}") from None
        try:
            vs = container.streams.video[0]
            for k in range(1, n + 1):
                key = _keyframe_at_or_before(container, vs, info.start_s + k * segment_s)
                # a key frame at least half a segment after the previous cut: no tiny segments
                if key is not None and key > starts[-1] + 0.5 * segment_s and key < info.end_s:
                    starts.append(key)
        finally:
            container.close()
    count = len(starts)
    return [
        Segment(
            video=info.path,
            index=i,
            count=count,
            start_s=s,
            end_s=starts[i + 1] if i + 1 < count else None,
            origin_s=info.start_s,
        )
        for i, s in enumerate(starts)
    ]


def _keyframe_at_or_before(container: Any, vs: Any, t_s: float) -> float | None:
    tb = vs.time_base
    if tb is None:
        return None
    try:
        container.seek(int(t_s / tb), stream=vs, backward=True, any_frame=False)
        for packet in container.demux(vs):
            if packet.pts is None:
                continue
            if packet.is_keyframe:
                return float(packet.pts * tb)
            return None  # the demuxer landed elsewhere than a key frame: no cut here
    except (av.FFmpegError, OSError) as exc:
        log.warning("seek to %.2fs in %s failed: %s", t_s, container.name, exc)
    return None


@dataclass(frozen=True)
class DecodedFrame:
    """One sampled frame: ``rgb`` (H, W, 3) uint8, ``t_s`` seconds from the start of the file."""

    t_s: float
    rgb: np.ndarray


def decode_segment(segment: Segment, fps: float, *, skip_nonref: bool = True) -> Iterator[DecodedFrame]:
    """Sampled frames of one segment, in presentation order.

    Seeks to the segment's key frame and decodes until its end. Below the source frame rate
    the decoder skips non-reference frames that cannot be kept (as in
    :func:`pipelines.source.frame_needed`): reference frames always decode, so kept frames are
    bit-identical to a full decode.
    """
    period = 1.0 / fps
    slack = 0.25 * period
    half = 1e-4
    try:
        container = av.open(segment.video)
    except (av.FFmpegError, OSError) as exc:
        raise VideoUnreadable(f"cannot open video {segment.video}: {exc}") from None
    try:
        vs = container.streams.video[0]
        tb = vs.time_base
        if tb is None:
            raise VideoUnreadable(f"{segment.video}: video stream without a time base")
        rate = float(vs.average_rate or vs.guessed_rate or 0.0) or 25.0
        frame_s = 1.0 / rate
        skip = skip_nonref and period * rate > 1.5
        ctx = vs.codec_context
        if segment.index > 0:
            container.seek(round(segment.start_s / tb), stream=vs, backward=True, any_frame=False)
        last_slot: int | None = None

        def slot_of(t: float) -> int:
            return math.floor((t - segment.origin_s + slack) / period)

        for packet in container.demux(vs):
            if skip and packet.pts is not None:
                t_p = float(packet.pts * tb)
                pos = (t_p - segment.origin_s + slack) % period
                needed = pos < 2.0 * frame_s or t_p < segment.start_s + frame_s
                ctx.skip_frame = "DEFAULT" if needed else "NONREF"
            for frame in packet.decode():
                if frame.time is None:
                    continue
                t = float(frame.time)
                if t < segment.start_s - half:
                    continue
                if segment.end_s is not None and t >= segment.end_s - half:
                    return
                slot = slot_of(t)
                if last_slot is not None and slot <= last_slot:
                    continue
                # a slot that began before this segment belongs to the previous one
                if segment.index > 0 and segment.origin_s + slot * period - slack < segment.start_s - half:
                    last_slot = slot
                    continue
                last_slot = slot
                yield DecodedFrame(t_s=t, rgb=frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, OSError) as exc:
        raise VideoUnreadable(f"{segment.video}: decoding failed at segment {segment.index}: {exc}") from None
    finally:
        container.close()


def list_videos(source: Path) -> list[str]:
    """Videos of a file, a directory (every video suffix under it) or a manifest (one path a
    line, or JSON lines ``{"path": ...}``; relative paths from the manifest's folder)."""
    import json

    if source.is_dir():
        return [
            str(p) for p in sorted(source.rglob("*")) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
        ]
    if not source.is_file():
        raise InvalidParameter(f"video source {source} is neither a file nor a directory")
    if source.suffix.lower() in VIDEO_SUFFIXES:
        return [str(source)]
    out: list[str] = []
    for n, raw in enumerate(source.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                p = Path(str(json.loads(line)["path"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidParameter(f"{source}:{n}: not a manifest entry: {exc}") from None
        else:
            p = Path(line)
        out.append(str(p if p.is_absolute() else source.parent / p))
    return out
