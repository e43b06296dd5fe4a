"""Where a stream processor's matches and frames go: spool and sinks, review, evidence, previews.

One :class:`Outputs` per run of a processor (opened when it starts, closed when it stops):

- released events go to the durable spool, from which the delivery thread feeds the sinks
  (see :mod:`pipelines.sinks`);
- events that need confirmation are filed with the review store (with a face crop);
- evidence frames and console previews (only when the settings ask for them) blur every face,
  down to faces below the searchable minimum, found on this actor's CPU for those frames only.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from facestream.atomic import write_atomic
from facestream.match_event import MatchEvent
from facestream.paths import StateHome
from facestream.types import FaceBatch
from pipelines.config import ProcessorSettings
from pipelines.evidence import (
    EvidenceStore,
    SmallFaceFinder,
    encode_jpeg,
    evidence_root,
    redacted_preview,
    with_small_faces,
)
from pipelines.review import Filing, ReviewStore, review_path
from pipelines.sinks import Deliverer, Spool, make_sink

_CROP_SIDE_PX = 160
_PREVIEW_SIDE_PX = 320


def preview_path(home: Path, processor: str) -> Path:
    return StateHome(home).preview(processor)


def crop(rgb: np.ndarray, box: np.ndarray, pad: float = 0.25) -> np.ndarray:
    """The face in ``box`` (x1, y1, x2, y2 px) with ``pad`` of its size around it, clipped to the frame."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    px, py = (x2 - x1) * pad, (y2 - y1) * pad
    left, top = max(0, int(x1 - px)), max(0, int(y1 - py))
    right, bottom = min(w, int(x2 + px) + 1), min(h, int(y2 + py) + 1)
    return rgb[top:bottom, left:right]


class Outputs:
    """The stores and the delivery thread of one run of a processor."""

    def __init__(self, settings: ProcessorSettings, home: Path, small_faces: SmallFaceFinder) -> None:
        self.settings = settings
        self.home = home
        self.spool = Spool(StateHome(home).spool(settings.name))
        self.review = ReviewStore(review_path(home))
        self.evidence: EvidenceStore | None = None
        self._small_faces = small_faces
        if settings.evidence_frames or settings.preview_interval_s is not None:
            self.evidence = EvidenceStore(evidence_root(home))
            small_faces.warm()
        self.deliverer: Deliverer | None = None
        self._stop_delivery = threading.Event()
        self._delivery: threading.Thread | None = None
        self._preview_at = 0.0

    def start_delivery(self) -> None:
        """Open the sinks and start moving spooled records to them."""
        s = self.settings
        sinks = [make_sink(c) for c in s.sinks]
        self.deliverer = Deliverer(self.spool, sinks, s.delivery, s.name)
        self._delivery = threading.Thread(
            target=self.deliverer.run, args=(self._stop_delivery,), name=f"deliver-{s.name}", daemon=True
        )
        self._delivery.start()

    @property
    def sink_names(self) -> list[str]:
        return self.deliverer.names if self.deliverer is not None else []

    def release(self, event: MatchEvent) -> None:
        """Send out: into the durable spool, then to every sink."""
        self.spool.put(self.sink_names, event)
        if self.deliverer is not None:
            self.deliverer.notify()

    def file_for_review(
        self, event: MatchEvent, *, required: int, rgb: np.ndarray, batch: FaceBatch, keep: int | None
    ) -> Filing:
        """Hand an event that needs ``required`` confirmations to the reviewers (with the face's crop)."""
        jpeg = None
        if keep is not None:
            jpeg = encode_jpeg(crop(rgb, batch.boxes[keep]), max_side_px=_CROP_SIDE_PX, quality=85)
        return self.review.submit(
            event,
            collection=self.settings.collection,
            required=required,
            sinks=self.sink_names,
            spool=self.spool.path,
            crop_jpeg=jpeg,
        )

    def save_evidence(self, event: MatchEvent, rgb: np.ndarray, batch: FaceBatch, keep: int | None) -> None:
        """The frame of a match, every face blurred but the matched one (when evidence is kept)."""
        if self.evidence is None or not self.settings.evidence_frames or keep is None:
            return
        self.evidence.save_frame(
            event.event_id,
            rgb,
            with_small_faces(batch.boxes, self._small_faces.boxes(rgb)),
            keep,
            face_id=event.match.face_id,
            external_image_id=event.match.external_image_id,
        )

    def write_preview(self, rgb: np.ndarray, batch: FaceBatch) -> None:
        """A small frame with every face blurred, for the console's stream card (when allowed)."""
        interval = self.settings.preview_interval_s
        now = time.monotonic()
        if interval is None or self.evidence is None or now - self._preview_at < interval:
            return
        self._preview_at = now
        jpeg = redacted_preview(rgb, batch.boxes, self._small_faces, max_side_px=_PREVIEW_SIDE_PX)
        path = preview_path(self.home, self.settings.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, jpeg)

    def close(self) -> None:
        """Drain the spool to the sinks for a bounded time, then close every store."""
        if self.deliverer is not None:
            self._stop_delivery.set()
            self.deliverer.notify()
            if self._delivery is not None:
                self._delivery.join(timeout=self.settings.delivery.drain_timeout_s + 10)
            self.deliverer.close()
        self.spool.close()
        self.review.close()
        if self.evidence is not None:
            self.evidence.close()
