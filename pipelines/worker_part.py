"""What the parts of a stream processor that act on its tracks share: the processor's
settings, the store, its tracker, its counters and its audit identity."""

from __future__ import annotations

from typing import Any

from facestream.audit import Actor, AuditLog
from pipelines.config import ProcessorSettings
from pipelines.tracker import FaceTracker
from pipelines.worker_stats import WorkerStats


class TrackPart:
    """Base of :class:`~pipelines.worker_matches.MatchDecider` and
    :class:`~pipelines.worker_unknown.UnknownFaceKeeper`."""

    def __init__(
        self,
        settings: ProcessorSettings,
        store: Any,
        tracker: FaceTracker,
        stats: WorkerStats,
        audit: AuditLog,
        actor: Actor,
    ) -> None:
        self.settings = settings
        self.store = store
        self.tracker = tracker
        self.stats = stats
        self.audit = audit
        self.actor = actor
        #: logging ``extra`` naming the processor
        self.extra = {"stream_id": settings.name}
