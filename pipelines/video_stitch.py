"""Joining a video's segment tracks into persons, and judging each person against a collection.

**Stitching.** A person on screen across a cut is tracked twice, once per segment. At each
cut, the tracks of the earlier segment still seen within ``max_gap_s`` before it are linked
to tracks of the later segment first seen within ``max_gap_s`` after it by the tracker's own
thresholds (:class:`pipelines.config.TrackerConfig`, calibrated Similarity of
:mod:`facestream.similarity`): the face must be within reach of the earlier box in the elapsed
time and look like the same person (Similarity >= ``same_person_similarity``, 80); box overlap
only ranks candidates (a cut at a key frame is often a scene cut, where someone else stands
in the same spot). Best pairs first, one to one;
linked tracks form one person (union-find across every cut).

**Search.** Each person is searched with the faces its tracks chose (never every frame);
every stored face the searches return collects its similarities, and the person matches it
when their mean reaches the threshold (the stream tracker's rule).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facestream.similarity import cosine_to_similarity
from facestream.types import SearchHit
from pipelines.config import TrackerConfig

TrackKey = tuple[int, str]  # (segment index, track id)


@dataclass
class Person:
    """Tracks of one person across a video's segments."""

    tracks: list[TrackKey]
    first_s: float
    queries: list[np.ndarray] = field(default_factory=list)


def _box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_score(
    a_end: dict[str, Any], b_first: dict[str, Any], model: str, cfg: TrackerConfig
) -> float | None:
    """How well ``b_first`` (a track's first face after a cut) continues ``a_end`` (a track's
    last face before it): None when it cannot be the same person, else IoU + Similarity/100."""
    dt = float(b_first["t_s"]) - float(a_end["t_s"])
    if dt < 0 or dt > cfg.max_gap_s:
        return None
    a, b = a_end["box"], b_first["box"]
    aw, bw = max(a[2] - a[0], 1.0), max(b[2] - b[0], 1.0)
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    reach = aw * (cfg.motion_slack_face_widths + cfg.max_speed_face_widths_per_s * dt)
    size_ratio = max(aw / bw, bw / aw)
    if float(np.linalg.norm(ca - cb)) > reach or size_ratio > 1.25 + cfg.max_size_change_per_s * dt:
        return None
    cos = float(np.dot(np.asarray(a_end["emb"], np.float32), np.asarray(b_first["emb"], np.float32)))
    sim = float(cosine_to_similarity(model, cos))
    # Unlike frame-to-frame tracking, overlap alone never links here: a key frame is often a
    # scene cut, where someone else stands in the same spot (and a wrong link would report
    # their frames under the first person's match).
    if sim >= cfg.same_person_similarity:
        return _box_iou(a, b) + sim / 100.0
    return None


def stitch(segments: Sequence[dict[str, Any]], model: str, cfg: TrackerConfig) -> list[Person]:
    """Persons of one video from its segment results (sorted by segment), in order of appearance."""
    parent: dict[TrackKey, TrackKey] = {}

    def find(k: TrackKey) -> TrackKey:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for seg in segments:
        for tid in seg["tracks"]:
            k = (int(seg["segment"]), str(tid))
            parent[k] = k
    for prev, nxt in itertools.pairwise(segments):
        cut = float(nxt["start_s"])
        before = [
            (str(tid), tr)
            for tid, tr in prev["tracks"].items()
            if float(tr["last"]["t_s"]) >= cut - cfg.max_gap_s
        ]
        after = [
            (str(tid), tr)
            for tid, tr in nxt["tracks"].items()
            if float(tr["first"]["t_s"]) <= cut + cfg.max_gap_s
        ]
        pairs: list[tuple[float, str, str]] = []
        for ta, a in before:
            for tb, b in after:
                s = link_score(a["last"], b["first"], model, cfg)
                if s is not None:
                    pairs.append((s, ta, tb))
        used_a: set[str] = set()
        used_b: set[str] = set()
        for _s, ta, tb in sorted(pairs, reverse=True):
            if ta in used_a or tb in used_b:
                continue
            used_a.add(ta)
            used_b.add(tb)
            parent[find((int(nxt["segment"]), tb))] = find((int(prev["segment"]), ta))
    groups: dict[TrackKey, Person] = {}
    for seg in segments:
        for tid, tr in seg["tracks"].items():
            k = (int(seg["segment"]), str(tid))
            root = find(k)
            p = groups.get(root)
            t_first = float(tr["first"]["t_s"])
            if p is None:
                p = groups[root] = Person(tracks=[], first_s=t_first)
            p.tracks.append(k)
            p.first_s = min(p.first_s, t_first)
            p.queries.extend(np.asarray(q, np.float32) for q in tr["queries"])
    return sorted(groups.values(), key=lambda p: p.first_s)


@dataclass(frozen=True)
class PersonMatch:
    face_id: str
    similarity: float
    external_image_id: str | None
    image_id: str


def judge(hits_per_query: Sequence[Sequence[SearchHit]], threshold: float) -> list[PersonMatch]:
    """A person's matches: stored faces whose mean similarity over the person's searches that
    returned them reaches ``threshold``, best first."""
    sims: dict[str, list[float]] = {}
    meta: dict[str, SearchHit] = {}
    for hits in hits_per_query:
        for h in hits:
            sims.setdefault(h.face_id, []).append(float(h.similarity))
            meta.setdefault(h.face_id, h)
    out = [
        PersonMatch(fid, float(np.mean(v)), meta[fid].external_image_id, meta[fid].image_id)
        for fid, v in sims.items()
        if float(np.mean(v)) >= threshold
    ]
    return sorted(out, key=lambda m: -m.similarity)
