"""Choosing which decoded frames to analyse, and how long to wait before reconnecting."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from pipelines.config import ReconnectConfig


class FrameSampler:
    """Keeps frames spaced at least ``1/fps`` seconds apart on the stream's own clock (pts).

    The decision is made from the timestamp alone, before a frame is converted to RGB, so a
    30 fps camera analysed at 5 fps converts one frame in six. A timestamp that goes back
    (a new session, a looped file) restarts the schedule.
    """

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period_s = 1.0 / fps
        self._next: float | None = None
        # Timestamps jitter by a fraction of a frame; without slack 30 fps -> 5 fps can
        # alternate between 5- and 7-frame gaps.
        self._slack = 0.25 * self.period_s

    def reset(self) -> None:
        self._next = None

    @property
    def next_due_s(self) -> float | None:
        """Timestamp the next kept frame is due at (None before the first); read-only."""
        return self._next

    @property
    def slack_s(self) -> float:
        """How early (seconds) a frame may come and still count as the due one."""
        return self._slack

    def accept(self, t_s: float) -> bool:
        if self._next is None or t_s < self._next - 2 * self.period_s - 1.0:
            self._next = t_s + self.period_s
            return True
        if t_s + self._slack >= self._next:
            self._next += self.period_s
            if self._next < t_s:  # a gap in the stream: do not try to catch up
                self._next = t_s + self.period_s
            return True
        return False


@dataclass
class Backoff:
    """Capped exponential backoff with multiplicative jitter; ``reset`` after a success."""

    config: ReconnectConfig
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay_s(self) -> float:
        base = min(self.config.max_backoff_s, self.config.initial_backoff_s * (2.0**self.attempts))
        self.attempts += 1
        r = self.config.jitter_ratio
        return max(0.0, base * self.rng.uniform(1.0 - r, 1.0 + r))

    def exhausted(self) -> bool:
        return self.config.max_attempts is not None and self.attempts >= self.config.max_attempts

    def reset(self) -> None:
        self.attempts = 0


@dataclass
class Counters:
    """Frame accounting of one stream; ``drops`` by reason."""

    decoded: int = 0
    sampled: int = 0
    submitted: int = 0
    analysed: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "decoded": self.decoded,
            "sampled": self.sampled,
            "submitted": self.submitted,
            "analysed": self.analysed,
            "drops": dict(self.drops),
            "reconnects": self.reconnects,
        }
