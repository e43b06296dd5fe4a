"""The decoder skips non-reference frames only where the sampler would throw them away."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import FileSource, ReconnectConfig
from pipelines.sampling import Counters
from pipelines.source import FrameSource, StreamStatus
from tests.helpers import face

# 1080p, 25 fps, x264 with B-frames: about half its frames are non-reference.
CLIP = "facenet-pytorch/examples/video.mp4"


def _sample(path: Path, fps: float, *, skip_nonref: bool) -> tuple[list[float], list[np.ndarray], Counters]:
    counters = Counters()
    statuses: list[StreamStatus] = []
    src = FrameSource(
        FileSource(path=path),
        fps=fps,
        keyframes_only=False,
        reconnect=ReconnectConfig(),
        media_dirs=[path.parent],
        stop=threading.Event(),
        on_status=lambda s, _reason: statuses.append(s),
        counters=counters,
        stream_id="test",
        skip_nonref=skip_nonref,
    )
    ts, frames = [], []
    for f in src.frames():
        ts.append(f.offset_s)
        frames.append(f.rgb[::64, ::64].copy())
    assert statuses[-1] == StreamStatus.STOPPED
    return ts, frames, counters


@pytest.mark.parametrize("fps", [5.0])
def test_skip_keeps_the_same_samples_and_decodes_fewer_frames(fps: float) -> None:
    path = face(CLIP)
    full_t, full_f, full_c = _sample(path, fps, skip_nonref=False)
    skip_t, skip_f, skip_c = _sample(path, fps, skip_nonref=True)
    assert len(full_t) >= 2 * 4  # ~4.2 s of video
    assert skip_t == full_t
    for a, b in zip(full_f, skip_f, strict=True):
        np.testing.assert_array_equal(a, b)  # reference frames decode exactly as before
    assert full_c.decoded == 105
    assert skip_c.decoded < 0.75 * full_c.decoded, (skip_c.decoded, full_c.decoded)
    assert skip_c.sampled == full_c.sampled == len(full_t)


def test_no_skip_at_the_source_rate() -> None:
    """Sampling at (or above) the camera's rate keeps every frame: nothing may be skipped."""
    path = face(CLIP)
    ts, _, counters = _sample(path, 25.0, skip_nonref=True)
    assert counters.decoded == 105
    assert len(ts) == 105
