"""What one stream processor counts, and the metric increments made from those counts."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from pipelines.sampling import Counters
from pipelines.telemetry import inc

#: latencies kept per processor (frame and event), newest last
LATENCIES = 20_000


@dataclass
class WorkerStats:
    """Counters of one processor's actor (shared by its threads; plain ints, GIL-atomic updates)."""

    counters: Counters = field(default_factory=Counters)
    #: seconds from a frame's capture (monotonic) to its analysis done
    frame_latency_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LATENCIES)
    )
    #: seconds from a frame's capture (monotonic) to the event it made being spooled
    event_latency_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LATENCIES)
    )
    faces: int = 0
    searches: int = 0
    events: int = 0
    candidates: int = 0
    suppressed: int = 0
    unknown_kept: int = 0


class MetricsFlusher:
    """Turns the counters into Prometheus increments: what changed since the last flush."""

    def __init__(self, stream: str, stats: WorkerStats) -> None:
        self.stream = stream
        self.stats = stats
        self._flushed: dict[str, int] = {}

    def flush(self, tracks_started: int) -> None:
        c, name = self.stats.counters, self.stream
        now = {
            "decoded": c.decoded,
            "analysed": c.analysed,
            "reconnects": c.reconnects,
            "tracks": tracks_started,
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
