"""Per-stream face tracking: one track per person, searched per track, not per frame.

Faces of consecutive analysed frames are linked to tracks by box overlap and embedding
similarity. A track is searched in the store on its first usable face, and again only when
a clearly better face of it arrives (``research_quality_gain``). Each identity the searches
return accumulates similarities over the track; a match is reported once its mean reaches
the threshold, and updated (same event, new revision) when later searches change it.

Nothing here outlives a track: when a track ends its embeddings are gone. Faces that match
nobody are never written anywhere (watchlist-only).
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facestream.rekognition import face_detail
from facestream.types import FaceBatch, SearchHit
from pipelines.config import TrackerConfig


@dataclass(frozen=True)
class FrameInfo:
    """Provenance of an analysed frame (see :class:`pipelines.source.SampledFrame`)."""

    offset_s: float
    producer_ts: float
    server_ts: float
    session: int
    monotonic: float


@dataclass
class IdentityEvidence:
    face_id: str
    external_image_id: str | None
    image_id: str
    similarities: list[float] = field(default_factory=list)
    revision: int = 0
    reported: float | None = None  # aggregate last reported in an event

    @property
    def aggregate(self) -> float:
        return float(np.mean(self.similarities))


@dataclass
class Track:
    track_id: str
    box: np.ndarray
    embedding: np.ndarray
    first: FrameInfo
    last: FrameInfo
    frames: int = 1
    searches: int = 0
    searched_quality: float = 0.0
    best_quality: float = 0.0
    best_detail: dict[str, Any] = field(default_factory=dict)
    best_frame: FrameInfo | None = None
    identities: dict[str, IdentityEvidence] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchRequest:
    track_id: str
    embedding: np.ndarray


@dataclass(frozen=True)
class MatchUpdate:
    """A track's match with one identity, new or changed: becomes one event revision."""

    track_id: str
    identity: IdentityEvidence
    similarity: float
    revision: int
    detected_face: dict[str, Any]
    frame: FrameInfo
    first_offset_s: float
    last_offset_s: float
    track_frames: int
    track_searches: int


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,4) x (m,4) x1y1x2y2 boxes -> (n,m) intersection over union."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6), np.float32)


def face_quality(batch: FaceBatch, i: int, min_face_px: int) -> float:
    """A 0..1 score for choosing which face of a track to search with.

    Size (saturating at 4x the searchable minimum), detector confidence, sharpness and
    frontality all count; 0 for faces too small to search.
    """
    size = float(batch.sizes_px[i])
    if size < min_face_px:
        return 0.0
    size_term = min(1.0, size / (4.0 * min_face_px))
    sharp = 0.25 + 0.75 * min(1.0, float(batch.sharpness[i]) / 50.0)
    yaw, pitch = abs(float(batch.pose[i, 0])), abs(float(batch.pose[i, 1]))
    frontal = max(0.1, 1.0 - yaw / 90.0) * max(0.1, 1.0 - pitch / 90.0)
    return size_term * float(batch.scores[i]) * sharp * frontal


class FaceTracker:
    def __init__(self, config: TrackerConfig, threshold: float) -> None:
        self.config = config
        self.threshold = threshold
        self.tracks: dict[str, Track] = {}
        # Track ids unique across restarts of the processor: a random run prefix.
        self._run = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self.tracks_started = 0
        #: tracks that ended without a match at or above the threshold (see :meth:`drain_unmatched`)
        self._unmatched: list[Track] = []
        self.collect_unmatched = False

    def _expire(self, info: FrameInfo) -> None:
        gap = self.config.max_gap_s
        for tid in [
            t.track_id
            for t in self.tracks.values()
            if t.last.session != info.session
            or info.offset_s - t.last.offset_s > gap
            or info.offset_s < t.last.offset_s
        ]:
            self._end(tid)

    def _end(self, tid: str) -> None:
        track = self.tracks.pop(tid)
        if (
            self.collect_unmatched
            and track.searches
            and not any(ev.reported is not None for ev in track.identities.values())
        ):
            self._unmatched.append(track)

    def end_all(self) -> None:
        """The stream ended: every open track ends."""
        for tid in list(self.tracks):
            self._end(tid)

    def drain_unmatched(self) -> list[Track]:
        """Ended, searched tracks that matched nobody (only collected when asked to)."""
        out, self._unmatched = self._unmatched, []
        return out

    def observe(self, info: FrameInfo, batch: FaceBatch) -> list[SearchRequest]:
        """Link the faces of one analysed frame to tracks; return the searches to make."""
        self._expire(info)
        if len(batch) == 0:
            return []
        if batch.embeddings is None:
            raise ValueError("FaceTracker.observe needs embeddings (use analyze, not detect)")
        cfg = self.config
        tracks = list(self.tracks.values())
        det_boxes = batch.boxes.astype(np.float32)
        assigned: dict[int, Track] = {}
        if tracks:
            iou = iou_matrix(np.stack([t.box for t in tracks]), det_boxes)
            cos = np.stack([t.embedding for t in tracks]) @ batch.embeddings.T
            link = ((iou >= cfg.iou_min) & (cos >= cfg.cosine_veto)) | (cos >= cfg.cosine_link_min)
            score = np.where(link, iou + cos, -np.inf)
            # Greedy on the best remaining pair: few faces per frame, exactness not needed.
            while np.isfinite(score).any():
                ti, di = np.unravel_index(int(np.argmax(score)), score.shape)
                assigned[int(di)] = tracks[int(ti)]
                score[ti, :] = -np.inf
                score[:, di] = -np.inf
        requests: list[SearchRequest] = []
        for i in range(len(batch)):
            emb = batch.embeddings[i]
            track = assigned.get(i)
            if track is None:
                track = Track(
                    track_id=f"{self._run}-{next(self._ids)}",
                    box=det_boxes[i],
                    embedding=emb.copy(),
                    first=info,
                    last=info,
                )
                self.tracks[track.track_id] = track
                self.tracks_started += 1
            else:
                track.box = det_boxes[i]
                mixed = 0.7 * track.embedding + 0.3 * emb
                track.embedding = mixed / max(float(np.linalg.norm(mixed)), 1e-6)
                track.last = info
                track.frames += 1
            q = face_quality(batch, i, cfg.min_face_px)
            if q > track.best_quality:
                track.best_quality = q
                track.best_detail = face_detail(batch, i)
                track.best_frame = info
            if q <= 0.0 or track.searches >= cfg.max_searches_per_track:
                continue
            if track.searches == 0 or q >= track.searched_quality * cfg.research_quality_gain:
                track.searched_quality = q
                track.searches += 1
                requests.append(SearchRequest(track.track_id, emb.copy()))
        return requests

    def search_failed(self, track_ids: list[str]) -> None:
        """Those searches never reached the store (outage): the tracks ask again on their next face.

        Without this, a person who walked in while the store was down would only be searched
        again on a markedly better face, and could pass unmatched.
        """
        for tid in track_ids:
            track = self.tracks.get(tid)
            if track is not None and track.searches > 0:
                track.searches -= 1
                track.searched_quality = 0.0

    @property
    def search_floor(self) -> float:
        """Lowest similarity a search should return (evidence below the threshold counts too)."""
        return max(0.0, self.threshold - self.config.search_margin)

    def apply(self, track_id: str, hits: list[SearchHit]) -> list[MatchUpdate]:
        """Add one search's hits to a track; matches at or above the threshold that changed."""
        track = self.tracks.get(track_id)
        if track is None:  # ended while the search was out
            return []
        for h in hits:
            ev = track.identities.get(h.face_id)
            if ev is None:
                ev = track.identities[h.face_id] = IdentityEvidence(
                    h.face_id, h.external_image_id, h.image_id
                )
            ev.similarities.append(h.similarity)
        out: list[MatchUpdate] = []
        for ev in track.identities.values():
            agg = ev.aggregate
            if agg < self.threshold:
                continue
            if ev.reported is not None and abs(agg - ev.reported) < 0.05:
                continue
            ev.revision += 1
            ev.reported = agg
            out.append(
                MatchUpdate(
                    track_id=track.track_id,
                    identity=ev,
                    similarity=agg,
                    revision=ev.revision,
                    detected_face=track.best_detail,
                    frame=track.best_frame or track.last,
                    first_offset_s=track.first.offset_s,
                    last_offset_s=track.last.offset_s,
                    track_frames=track.frames,
                    track_searches=track.searches,
                )
            )
        return out
