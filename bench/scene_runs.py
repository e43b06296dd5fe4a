"""Run the tracking scenes of :mod:`bench.scenes` through the real stream path and score them
(``bench.tracking`` and tests/pipelines/test_tracking_e2e.py).

The stream path: a stream processor (Ray actor, PyAV decode) per scene video, the shared
batched face deployment, the store actor with a gallery of the enrolled photos, JSONL sinks.
Scoring uses the tracker's own per-frame log (:meth:`pipelines.worker.StreamWorker.track_log`)
against the generator's truth with ``motmetrics`` (ID switches, fragmentations, IDF1), and the
match events for first-report latency and wrong reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import scenes as sc
from facestream.audit import Actor, AuditLog
from facestream.imageio import load_image_file

#: a tracker box matches a truth face at this IoU or more
MATCH_IOU = 0.4


@dataclass(frozen=True)
class SceneVideo:
    scene: sc.Scene
    path: Path
    truth: list[list[sc.TruthBox]]


def make_videos(
    face_handle: Any, data_dir: Path, out_dir: Path, *, max_gap_s: float, names: list[str] | None = None
) -> dict[str, SceneVideo]:
    """Render the scenes (``names``, default all) to ``out_dir``; faces located by the deployment."""

    def locate(rgb: np.ndarray) -> np.ndarray:
        batch = face_handle.detect.remote(rgb).result(timeout_s=300).largest_first()
        if len(batch) == 0:
            raise RuntimeError("no face found in a roster photo")
        return np.asarray(batch.boxes[0])

    chosen = {k: v for k, v in sc.scenes(max_gap_s).items() if names is None or k in names}
    people = sorted({p for s in chosen.values() for p in s.people})
    chips = sc.prepare_chips(people, data_dir, lambda p: load_image_file(p).rgb, locate)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, scene in chosen.items():
        path = out_dir / f"{name}.mp4"
        out[name] = SceneVideo(scene, path, sc.render(scene, chips, path))
    return out


def enrol_roster(
    face_handle: Any, store: Any, collection: str, data_dir: Path, *, audit: AuditLog, actor: Actor
) -> list[str]:
    """A fresh gallery of every enrolled roster person (their *other* photo); returns the names."""
    from pipelines.gallery import enrol, ensure_collection

    model = str(face_handle.model_name.remote().result(timeout_s=60))
    ensure_collection(store, collection, model, fresh=True)
    people = [p for p in sc.ROSTER.values() if p.enrolled is not None]
    counts = enrol(
        face_handle,
        store,
        collection,
        [(p.name, load_image_file(data_dir / str(p.enrolled))) for p in people],
        audit=audit,
        actor=actor,
    )
    missing = [n for n, c in counts.items() if c != 1]
    if missing:
        raise RuntimeError(f"no face enrolled for {missing}")
    return [p.name for p in people]


@dataclass
class SceneRun:
    name: str
    events: list[dict[str, Any]]
    track_log: list[tuple[float, list[list[Any]]]]
    status: dict[str, Any]
    wall_s: float = 0.0
    #: wall seconds from each event's frame being sampled to the event (the worker's own measure)
    event_latency_s: list[float] = field(default_factory=list)


def events_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def run_scenes(
    manager: Any,
    videos: dict[str, SceneVideo],
    make_settings: Callable[[str, Path], Any],
    events_path: Callable[[str], Path],
    actor: Actor,
    timeout_s: float,
) -> dict[str, SceneRun]:
    """Run one file processor per scene video at once; collect events, track logs and status."""
    import time

    import ray

    names = list(videos)
    for name in names:
        manager.create(make_settings(name, videos[name].path), actor, replace=True)
    t0 = time.monotonic()
    for name in names:
        manager.start(name, actor)
    finished = manager.wait(names, timeout_s)
    wall = time.monotonic() - t0
    runs: dict[str, SceneRun] = {}
    for name in names:
        status = manager.describe(name)
        # The processor's actor (named by pipelines.worker.spawn) still holds its tracker.
        handle = ray.get_actor(f"facestream-stream-{name}")
        log: list[tuple[float, list[list[Any]]]] = ray.get(handle.track_log.remote(), timeout=60)
        latencies = ray.get(handle.latencies.remote(), timeout=60)
        manager.stop(name, actor)
        runs[name] = SceneRun(name, events_of(events_path(name)), log, status, wall, list(latencies["event"]))
    if sorted(finished) != sorted(names):
        raise TimeoutError(f"scenes not finished after {timeout_s}s: {sorted(set(names) - set(finished))}")
    return runs


def _iou(a: tuple[float, ...] | list[float], b: tuple[float, ...] | list[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _matched(rec: dict[str, Any]) -> str:
    return str(rec["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"]["ExternalImageId"])


@dataclass
class SceneScore:
    scene: str
    frames: int
    id_switches: int
    fragmentations: int
    idf1: float
    mota: float
    tracks: int
    visits: int
    #: per enrolled visit: stream seconds from the face's first frame to the first report of them
    first_report_s: dict[str, float | None] = field(default_factory=dict)
    #: events naming someone not on screen during the reported track
    wrong_reports: list[str] = field(default_factory=list)
    #: reported identities (sorted)
    reported: list[str] = field(default_factory=list)
    #: wall seconds from a reported frame being sampled to its event, median and max (None: no
    #: event); on a lossless replay this includes waiting behind the other streams' frames
    event_latency_median_s: float | None = None
    event_latency_max_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def score(video: SceneVideo, run: SceneRun, enrolled: set[str], analysis_fps: float) -> SceneScore:
    """motmetrics over the analysed frames, first-report latency per enrolled visit, wrong reports."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    hyp_ids: dict[str, int] = {}
    for offset, entries in run.track_log:
        truth = sc.truth_at(video.truth, offset)
        hyps = [(hyp_ids.setdefault(str(tid), len(hyp_ids) + 1), box) for tid, box in entries]
        dist = np.full((len(truth), len(hyps)), np.nan)
        for i, t in enumerate(truth):
            for j, (_, box) in enumerate(hyps):
                iou = _iou(t.box, box)
                if iou >= MATCH_IOU:
                    dist[i, j] = 1.0 - iou
        # motmetrics ids must be integers (its string ids break under pandas 3).
        acc.update([t.visit_id + 1 for t in truth], [h for h, _ in hyps], dist)
    mh = mm.metrics.create()
    summary = mh.compute(
        acc,
        metrics=["num_switches", "num_fragmentations", "idf1", "mota", "num_frames"],
        name=video.scene.name,
    )
    row = summary.iloc[0]
    # First report per enrolled visit (stream time: the offset of the frame that made the report).
    first: dict[str, float | None] = {}
    step = 1.0 / analysis_fps
    for v in video.scene.visits:
        if v.person not in enrolled:
            continue
        seen = [i / sc.FPS for i, fr in enumerate(video.truth) if any(b.visit_id == v.visit_id for b in fr)]
        if not seen:
            continue
        appear = seen[0]
        reports = [
            float(e["Track"]["LastSeenOffsetInSeconds"])
            for e in run.events
            if _matched(e) == v.person
            and v.t0_s - step <= float(e["Track"]["FirstSeenOffsetInSeconds"]) <= v.t1_s + step
        ]
        first[f"{v.person}#{v.visit_id}"] = round(min(reports) - appear, 3) if reports else None
    wrong = []
    for e in run.events:
        who = _matched(e)
        a = float(e["Track"]["FirstSeenOffsetInSeconds"]) - step
        b = float(e["Track"]["LastSeenOffsetInSeconds"]) + step
        visible = any(
            any(t.person == who for t in fr) for i, fr in enumerate(video.truth) if a <= i / sc.FPS <= b
        )
        if not visible:
            wrong.append(f"{who}@{e['Track']['FirstSeenOffsetInSeconds']}")
    idf1 = float(row["idf1"])
    return SceneScore(
        scene=video.scene.name,
        frames=int(row["num_frames"]),
        id_switches=int(row["num_switches"]),
        fragmentations=int(row["num_fragmentations"]),
        idf1=round(idf1, 4) if math.isfinite(idf1) else 0.0,
        mota=round(float(row["mota"]), 4),
        tracks=len(hyp_ids),
        visits=len(video.scene.visits),
        first_report_s=first,
        wrong_reports=wrong,
        reported=sorted({_matched(e) for e in run.events}),
        event_latency_median_s=_rounded(np.median, run.event_latency_s),
        event_latency_max_s=_rounded(np.max, run.event_latency_s),
    )


def _rounded(fn: Callable[[list[float]], Any], values: list[float]) -> float | None:
    return round(float(fn(values)), 4) if values else None
