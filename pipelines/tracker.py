"""Per-stream face tracking: one track per person, searched per track, not per frame.

Faces of consecutive analysed frames are linked to tracks in the embedder's calibrated terms
(the Similarity scale of :mod:`facestream.similarity`, so one setting means the same for
every model; see :class:`pipelines.config.TrackerConfig`):

- **identity**: a face links to a track without box overlap only at same-person Similarity
  (the equal-error point, 80); an overlapping face is vetoed when it is clearly someone else
  (below 50), and overlap counts only for a track seen in the last frame or two, because a
  spot left empty for a moment may hold someone new;
- **motion**: the face must lie within reach of the track's predicted position in the
  elapsed stream time (box width as the scale); farther faces start a new track;
- **no drift**: each face must still pass the same-person test against the face the track
  was searched with. A face that fails is held, not added; ``drift_frames`` such faces in a
  row are split off as a new track, which is searched on its own. A track reported as X
  never takes in someone else's face, and its evidence comes only from its own faces.

A track is searched in the store on its first usable face, and again only when a clearly
better face of it arrives (``research_quality_gain``). Each identity the searches return
accumulates similarities over the track; a match is reported once its mean reaches the
threshold, and updated (same event, new revision) when later searches change it.

Nothing here outlives a track: when a track ends its embeddings are gone (the bounded
:attr:`FaceTracker.assignments` log keeps track ids and boxes only). Faces that match nobody
are never written anywhere (watchlist-only).
"""

from __future__ import annotations

import collections
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facestream.match_event import DetectedFace
from facestream.similarity import cosine_to_similarity
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
    #: the best face so far (pixels of its frame; see best_quality, best_frame)
    best_face: DetectedFace | None = None
    best_frame: FrameInfo | None = None
    identities: dict[str, IdentityEvidence] = field(default_factory=dict)
    #: the face the track was last searched with (its identity reference), None before a search
    reference: np.ndarray | None = None
    #: box centre velocity, px per second of stream time
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    #: index of the analysed frame the track was last seen in (see FaceTracker.frames_seen)
    last_frame_no: int = 0
    #: faces linked to the track that failed the same-person test, held (newest last)
    pending: list[_Held] = field(default_factory=list)


@dataclass
class _Held:
    """A face held back from its track: it may be someone else (see drift_frames)."""

    box: np.ndarray
    embedding: np.ndarray
    info: FrameInfo
    frame_no: int
    quality: float
    face: DetectedFace
    log_slot: list[Any]  # the [track_id, box] entry of FaceTracker.assignments, relabelled on a split


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
    #: the track's best face so far (formatted only at the edges: facestream.match_event)
    detected_face: DetectedFace | None
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


def _centres(boxes: np.ndarray) -> np.ndarray:
    """(n,4) x1y1x2y2 -> (n,2) box centres."""
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


def _widths(boxes: np.ndarray) -> np.ndarray:
    return np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)


#: face size ratio between two frames allowed at any elapsed time (detector jitter)
_SIZE_JITTER = 1.25
#: analysed frames kept in FaceTracker.assignments (10 minutes at 5 fps)
_ASSIGNMENT_LOG = 3000


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
    def __init__(self, config: TrackerConfig, threshold: float, model: str | None = None) -> None:
        self.config = config
        self.threshold = threshold
        #: embedder whose calibration maps cosines to Similarity; None: each batch's own model
        self.model = model
        self.tracks: dict[str, Track] = {}
        # Track ids unique across restarts of the processor: a random run prefix.
        self._run = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self.tracks_started = 0
        #: tracks split off another one whose faces stopped looking like its searched face
        self.drift_splits = 0
        #: analysed frames seen (with or without faces)
        self.frames_seen = 0
        #: per analysed frame: (offset_s, [[track_id, [x1, y1, x2, y2]], ...]), bounded;
        #: ids and boxes only, for tracking metrics and diagnosis
        self.assignments: collections.deque[tuple[float, list[list[Any]]]] = collections.deque(
            maxlen=_ASSIGNMENT_LOG
        )
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

    def similarity(self, model: str, cosine: np.ndarray | float) -> np.ndarray:
        """Cosine -> calibrated Similarity (0-100) of ``self.model`` (else ``model``)."""
        return cosine_to_similarity(self.model or model, cosine)

    def _links(
        self, info: FrameInfo, boxes: np.ndarray, embeddings: np.ndarray, model: str
    ) -> dict[int, Track]:
        """Which detection continues which open track (identity, overlap, motion; greedy, best first)."""
        cfg = self.config
        tracks = list(self.tracks.values())
        if not tracks:
            return {}
        det_boxes = boxes
        t_boxes = np.stack([t.box for t in tracks])
        iou = iou_matrix(t_boxes, det_boxes)
        sim = self.similarity(model, np.stack([t.embedding for t in tracks]) @ embeddings.T)
        dt = np.array([max(0.0, info.offset_s - t.last.offset_s) for t in tracks], np.float32)
        predicted = _centres(t_boxes) + np.stack([t.velocity for t in tracks]) * dt[:, None]
        dist = np.linalg.norm(predicted[:, None, :] - _centres(det_boxes)[None, :, :], axis=2)
        # The person's own size sets the reach (a face w px wide moves a few w per second) and
        # how much the size may change: a 23 px face does not become a 199 px one in 0.2 s.
        t_w, d_w = _widths(t_boxes)[:, None], _widths(det_boxes)[None, :]
        reach = t_w * (cfg.motion_slack_face_widths + cfg.max_speed_face_widths_per_s * dt[:, None])
        size_ratio = np.maximum(t_w / d_w, d_w / t_w)
        plausible = (dist <= reach) & (size_ratio <= _SIZE_JITTER + cfg.max_size_change_per_s * dt[:, None])
        recent = np.array(
            [self.frames_seen - t.last_frame_no <= 1 + cfg.overlap_max_missed_frames for t in tracks]
        )
        overlap = recent[:, None] & (iou >= cfg.iou_min) & (sim >= cfg.different_person_similarity)
        link = plausible & (overlap | (sim >= cfg.same_person_similarity))
        score = np.where(link, iou + sim / 100.0, -np.inf)
        assigned: dict[int, Track] = {}
        # Greedy on the best remaining pair: few faces per frame, exactness not needed.
        while np.isfinite(score).any():
            ti, di = np.unravel_index(int(np.argmax(score)), score.shape)
            assigned[int(di)] = tracks[int(ti)]
            score[ti, :] = -np.inf
            score[:, di] = -np.inf
        return assigned

    def _new_track(self, box: np.ndarray, emb: np.ndarray, info: FrameInfo) -> Track:
        track = Track(
            track_id=f"{self._run}-{next(self._ids)}",
            box=box,
            embedding=emb.copy(),
            first=info,
            last=info,
            last_frame_no=self.frames_seen,
        )
        self.tracks[track.track_id] = track
        self.tracks_started += 1
        return track

    def _extend(self, track: Track, box: np.ndarray, emb: np.ndarray, info: FrameInfo) -> None:
        dt = info.offset_s - track.last.offset_s
        if dt > 0:
            v = (_centres(box[None, :])[0] - _centres(track.box[None, :])[0]) / dt
            track.velocity = (v if track.frames == 1 else 0.5 * track.velocity + 0.5 * v).astype(np.float32)
        track.box = box
        mixed = 0.7 * track.embedding + 0.3 * emb
        track.embedding = mixed / max(float(np.linalg.norm(mixed)), 1e-6)
        track.last = info
        track.last_frame_no = self.frames_seen
        track.frames += 1

    def _consider_search(
        self, track: Track, emb: np.ndarray, q: float, face: DetectedFace, info: FrameInfo
    ) -> SearchRequest | None:
        cfg = self.config
        if q > track.best_quality:
            track.best_quality = q
            track.best_face = face
            track.best_frame = info
        if q <= 0.0 or track.searches >= cfg.max_searches_per_track:
            return None
        if track.searches == 0 or q >= track.searched_quality * cfg.research_quality_gain:
            track.searched_quality = q
            track.searches += 1
            track.reference = emb.copy()
            return SearchRequest(track.track_id, emb.copy())
        return None

    def _split(self, track: Track) -> SearchRequest | None:
        """The held faces of ``track`` become a new track of their own (searched on its best face)."""
        held, track.pending = track.pending, []
        first = held[0]
        new = self._new_track(first.box, first.embedding, first.info)
        new.last_frame_no = first.frame_no
        first.log_slot[0] = new.track_id
        for h in held[1:]:
            self._extend(new, h.box, h.embedding, h.info)
            new.last_frame_no = h.frame_no
            h.log_slot[0] = new.track_id
        self.drift_splits += 1
        best = max(held, key=lambda h: h.quality)
        request = None
        for h in held:
            if h is best:
                request = self._consider_search(new, h.embedding, h.quality, h.face, h.info)
            elif h.quality > new.best_quality:
                new.best_quality, new.best_face, new.best_frame = h.quality, h.face, h.info
        return request

    def observe(self, info: FrameInfo, batch: FaceBatch) -> list[SearchRequest]:
        """Link the faces of one analysed frame to tracks; return the searches to make."""
        self._expire(info)
        self.frames_seen += 1
        logged: list[list[Any]] = []
        self.assignments.append((info.offset_s, logged))
        if len(batch) == 0:
            return []
        if batch.embeddings is None:
            raise ValueError("FaceTracker.observe needs embeddings (use analyze, not detect)")
        cfg = self.config
        model = self.model or batch.model
        if model is None:
            raise ValueError("FaceTracker.observe needs the embedder's name (FaceBatch.model or model=)")
        det_boxes = batch.boxes.astype(np.float32)
        assigned = self._links(info, det_boxes, batch.embeddings, model)
        requests: list[SearchRequest] = []
        for i in range(len(batch)):
            emb = batch.embeddings[i]
            box = det_boxes[i]
            slot: list[Any] = ["", [round(float(v), 1) for v in box]]
            logged.append(slot)
            q = face_quality(batch, i, cfg.min_face_px)
            track = assigned.get(i)
            if track is not None:
                ref = track.reference if track.reference is not None else track.embedding
                if float(self.similarity(model, float(ref @ emb))) < cfg.same_person_similarity:
                    # Someone else, or a bad view: held back until it is clear which.
                    face = DetectedFace.from_batch(batch, i)
                    track.pending.append(_Held(box, emb.copy(), info, self.frames_seen, q, face, slot))
                    slot[0] = track.track_id
                    if len(track.pending) >= cfg.drift_frames:
                        req = self._split(track)
                        if req is not None:
                            requests.append(req)
                    continue
                track.pending.clear()
                self._extend(track, box, emb, info)
            else:
                track = self._new_track(box, emb, info)
            slot[0] = track.track_id
            req = self._consider_search(track, emb, q, DetectedFace.from_batch(batch, i), info)
            if req is not None:
                requests.append(req)
        return requests

    def face_index(self, track_id: str) -> int | None:
        """Which face of the frame last observed the tracker gave to ``track_id`` (its own
        assignment, held faces included), or None when the track had no face there."""
        if not self.assignments:
            return None
        _offset_s, faces = self.assignments[-1]
        for i, (tid, _box) in enumerate(faces):
            if tid == track_id:
                return i
        return None

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
                    detected_face=track.best_face,
                    frame=track.best_frame or track.last,
                    first_offset_s=track.first.offset_s,
                    last_offset_s=track.last.offset_s,
                    track_frames=track.frames,
                    track_searches=track.searches,
                )
            )
        return out
