"""Search recorded video for a collection's people (Rekognition's StartFaceSearch/GetFaceSearch),
or list every face in it (StartFaceDetection/GetFaceDetection), as a Ray Data job:
``ray job submit -- python -m pipelines.video_search --collection C --source DIR|MANIFEST|FILE
--purpose TEXT --out DIR``.

- **Plan** (driver): each video is probed (metadata, first frame decodes) and cut into
  segments of about ``segment_s`` at key frames (:mod:`pipelines.video_segments`), so one long
  file is read by many workers at once.
- **Analyse** (Ray Data ``map_batches`` over an actor pool of analysers, one segment per
  call): decode with PyAV skipping non-reference frames the sampler cannot keep, sample
  (5 fps by default), detect + embed in batches with the stream detector keyed per segment,
  track within the segment (:mod:`pipelines.video_tracks`).
- **Stitch and search** (driver): tracks crossing a cut become one person
  (:mod:`pipelines.video_stitch`); each person is searched with the faces its tracks chose,
  all of a video's in one store call through the store actor. Only persons who match the
  collection are reported (watchlist only: nothing else is written anywhere).
- **Results**: one GetFaceSearch- (or GetFaceDetection-) shaped JSON file per video in
  ``--out``; a video that cannot be read is FAILED with its reason, written to the failures
  file, and the job goes on. Progress in the log; a JSON summary on stdout.
- **Accountability**: a purpose is required; one audit entry for the job (before any search)
  and one per match (before its result is written).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from facestream.audit import Actor, AuditLog
from facestream.config import AnalyzerConfig, DeviceConfig
from facestream.errors import FacestreamError, InvalidParameter
from facestream.operations_common import face_json
from facestream.paths import default_home
from facestream.rekognition import wire_image_id
from facestream.similarity import DEFAULT_MATCH_THRESHOLD
from facestream.store import CollectionInfo, FaceRecord
from facestream.types import SearchHit
from facestream.video_results import face_match, get_face_detection, get_face_search, person_match
from pipelines.jobargs import add_job_args, setup_job_logging
from pipelines.video_segments import Segment, VideoInfo, list_videos, plan_segments, probe
from pipelines.video_stitch import Person, judge, stitch
from pipelines.video_tracks import SegmentAnalyzer, VideoAnalysisConfig, analyse_segment, analyzer_config

log = logging.getLogger(__name__)

MATCH_OPERATION = "VideoFaceMatch"


class VideoStore(Protocol):
    """What the job needs of the store: a Milvus store, or (the job) the store actor's client
    :class:`pipelines.store_actor.RemoteFaceStore` (the one owner of a Milvus Lite file)."""

    def describe_collection(self, name: str) -> CollectionInfo: ...

    def search(
        self, collection: str, queries: np.ndarray, *, model: str, max_faces: int, min_similarity: float
    ) -> list[list[SearchHit]]: ...

    def get_faces(self, collection: str, face_ids: Sequence[str]) -> list[FaceRecord]: ...


@dataclass(frozen=True)
class SearchSpec:
    """A face search: against which collection, why, and from what Similarity a match counts."""

    collection: str
    purpose: str
    threshold: float = DEFAULT_MATCH_THRESHOLD
    max_faces: int = 10


def segment_results(
    segments: Sequence[Segment],
    cfg: VideoAnalysisConfig,
    analyzer: AnalyzerConfig,
    *,
    use_ray: bool,
    actors: int = 1,
    cpus_per_actor: float = 1.0,
    local_analyzer: Any = None,
) -> Iterator[dict[str, Any]]:
    """Each segment's :func:`analyse_segment` result, as they finish (any order).

    ``use_ray``: Ray Data over an actor pool (the job); else one analyser in this process
    (``local_analyzer``, a :class:`models.analyzer.FaceAnalyzer` built by
    :func:`analyzer_config`, or a new one).
    """
    if not segments:
        return
    if not use_ray:
        from models.analyzer import FaceAnalyzer

        local = local_analyzer or FaceAnalyzer(analyzer_config(analyzer, cfg))
        for seg in segments:
            yield analyse_segment(seg, local, cfg)
        return
    import ray.data

    rows = [{"segment": json.dumps(asdict(s))} for s in segments]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        SegmentAnalyzer,
        fn_constructor_kwargs={
            "analyzer": analyzer.model_dump(mode="json"),
            "video": cfg.model_dump(mode="json"),
        },
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        batch_format="numpy",
    )
    for row in ds.iter_rows():
        yield json.loads(str(row["result"]))


class VideoJob:
    """Plans, analyses and finishes a batch of videos; ``on_result`` gets one dict per video:
    ``{"video": path, **GetFaceSearch}`` (or GetFaceDetection with ``search`` None)."""

    def __init__(
        self,
        cfg: VideoAnalysisConfig,
        analyzer: AnalyzerConfig,
        *,
        search: SearchSpec | None,
        store: VideoStore | None,
        audit: AuditLog | None,
        actor: Actor,
        use_ray: bool,
        actors: int = 1,
        cpus_per_actor: float = 1.0,
        local_analyzer: Any = None,
    ) -> None:
        if search is not None and (store is None or audit is None):
            raise InvalidParameter("a face search needs a store and an audit log")
        self.cfg = cfg
        self.analyzer = analyzer
        self.search = search
        self.store = store
        self.audit = audit
        self.actor = actor
        self.use_ray = use_ray
        self.actors = actors
        self.cpus_per_actor = cpus_per_actor
        self.local_analyzer = local_analyzer
        self.stats: dict[str, Any] = {"videos": 0, "failed": 0, "segments": 0, "frames": 0, "persons": 0}

    def run(self, videos: Sequence[str], on_result: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        t0 = time.monotonic()
        model = self.analyzer.embed.model.kind
        if self.search is not None:
            assert self.store is not None and self.audit is not None
            info = self.store.describe_collection(self.search.collection)  # unknown: fails here
            if info.model != model:
                raise InvalidParameter(
                    f"collection {self.search.collection!r} holds {info.model} faces; the analyser "
                    f"embeds with {model}"
                )
            self.audit.append(
                actor=self.actor,
                operation="StartFaceSearch",
                purpose=self.search.purpose,
                inputs={
                    "collection": self.search.collection,
                    "videos": [_video_ref(v) for v in videos],
                    "threshold": self.search.threshold,
                },
            )
        infos: dict[str, VideoInfo] = {}
        plans: dict[str, list[Segment]] = {}
        for v in videos:
            self.stats["videos"] += 1
            try:
                infos[v] = probe(v)
                plans[v] = plan_segments(infos[v], self.cfg.segment_s)
            except FacestreamError as exc:
                self._failed(v, None, exc.message, on_result)
        segments = [s for v in videos if v in plans for s in plans[v]]
        self.stats["segments"] = len(segments)
        log.info("%s videos, %s segments to analyse", len(plans), len(segments))
        pending: dict[str, list[dict[str, Any]]] = {v: [] for v in plans}
        for done, res in enumerate(
            segment_results(
                segments,
                self.cfg,
                self.analyzer,
                use_ray=self.use_ray,
                actors=self.actors,
                cpus_per_actor=self.cpus_per_actor,
                local_analyzer=self.local_analyzer,
            ),
            1,
        ):
            self.stats["frames"] += int(res["frames"])
            v = str(res["video"])
            pending[v].append(res)
            log.info(
                "progress: %s/%s segments (%s segment %s: %s frames in %.1fs)",
                done,
                len(segments),
                Path(v).name,
                res["segment"],
                res["frames"],
                res["elapsed_s"],
            )
            if len(pending[v]) == len(plans[v]):
                self._finish(v, infos[v], sorted(pending.pop(v), key=lambda r: int(r["segment"])), on_result)
        for v, got in pending.items():  # lost segments (a worker died): the video fails, the rest stand
            self._failed(v, infos[v], f"{len(plans[v]) - len(got)} segment(s) were not analysed", on_result)
        self.stats["elapsed_s"] = round(time.monotonic() - t0, 3)
        return dict(self.stats)

    def _failed(
        self, video: str, info: VideoInfo | None, message: str, on_result: Callable[[dict[str, Any]], None]
    ) -> None:
        self.stats["failed"] += 1
        log.warning("video %s failed: %s", video, message)
        meta = info.metadata() if info is not None else None
        if self.search is not None:
            on_result(
                {"video": video, **get_face_search("FAILED", metadata=meta, persons=[], message=message)}
            )
        else:
            on_result(
                {"video": video, **get_face_detection("FAILED", metadata=meta, faces=[], message=message)}
            )

    def _finish(
        self,
        video: str,
        info: VideoInfo,
        segs: list[dict[str, Any]],
        on_result: Callable[[dict[str, Any]], None],
    ) -> None:
        errors = [f"segment {r['segment']}: {r['error']}" for r in segs if r["error"]]
        if errors:
            self._failed(video, info, "; ".join(errors), on_result)
            return
        if self.search is None:
            faces = [{"Timestamp": round(t), "Face": d} for r in segs for t, _tid, d in r["faces"]]
            on_result(
                {"video": video, **get_face_detection("SUCCEEDED", metadata=info.metadata(), faces=faces)}
            )
            return
        persons = self._search(video, segs)
        self.stats["persons"] += len({p["Person"]["Index"] for p in persons})
        on_result({"video": video, **get_face_search("SUCCEEDED", metadata=info.metadata(), persons=persons)})

    def _search(self, video: str, segs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        spec, store, audit = self.search, self.store, self.audit
        assert spec is not None and store is not None and audit is not None
        model = self.analyzer.embed.model.kind
        people = stitch(segs, model, self.cfg.tracking)
        owners = [i for i, p in enumerate(people) for _ in p.queries]
        if not owners:
            return []
        queries = np.stack([q for p in people for q in p.queries]).astype(np.float32)
        hits = store.search(
            spec.collection,
            queries,
            model=model,
            max_faces=spec.max_faces,
            min_similarity=max(0.0, spec.threshold - self.cfg.tracking.search_margin),
        )
        per_person: dict[int, list[list[SearchHit]]] = {}
        for owner, h in zip(owners, hits, strict=True):
            per_person.setdefault(owner, []).append(list(h))
        matched = [(p, judge(per_person.get(i, []), spec.threshold)) for i, p in enumerate(people)]
        matched = [(p, m) for p, m in matched if m]
        if not matched:
            return []
        ids = sorted({m.face_id for _, ms in matched for m in ms})
        records = {r.face_id: r for r in store.get_faces(spec.collection, ids)}
        where = {(int(r["segment"]), str(tid)): r for r in segs for tid in r["tracks"]}
        out: list[dict[str, Any]] = []
        for index, (person, ms) in enumerate(matched):
            face_matches = [
                face_match(
                    m.similarity,
                    _face_json(m.face_id, records.get(m.face_id), m.external_image_id, m.image_id),
                )
                for m in ms
            ]
            entries = _person_faces(person, where)
            audit.append(
                actor=self.actor,
                operation=MATCH_OPERATION,
                purpose=spec.purpose,
                inputs={
                    "collection": spec.collection,
                    "video": _video_ref(video),
                    "person_index": index,
                    "first_ms": round(entries[0][0]) if entries else None,
                    "last_ms": round(entries[-1][0]) if entries else None,
                },
                results={
                    "face_ids": [m.face_id for m in ms],
                    "similarities": [round(m.similarity, 3) for m in ms],
                },
            )
            out.extend(person_match(t, index, d, face_matches) for t, d in entries)
        return out


def _person_faces(
    person: Person, where: dict[tuple[int, str], dict[str, Any]]
) -> list[tuple[float, dict[str, Any]]]:
    keys = set(person.tracks)
    out: list[tuple[float, dict[str, Any]]] = []
    for seg_no in sorted({k[0] for k in keys}):
        seg = where.get((seg_no, next(t for s, t in keys if s == seg_no)))
        if seg is None:
            continue
        out.extend((float(t), d) for t, tid, d in seg["faces"] if (seg_no, str(tid)) in keys)
    return sorted(out, key=lambda e: e[0])


def _face_json(face_id: str, rec: FaceRecord | None, ext: str | None, image_id: str) -> dict[str, Any]:
    """Rekognition's ``Face`` of a match (``ImageId`` as a UUID, as every answer shows it)."""
    if rec is not None:
        return face_json(rec)
    out: dict[str, Any] = {"FaceId": face_id, "ImageId": wire_image_id(image_id)}  # deleted meanwhile
    if ext is not None:
        out["ExternalImageId"] = ext
    return out


def _video_ref(path: str) -> dict[str, Any]:
    """How a video is named in the audit log: its path and the sha256 of its first MiB."""
    try:
        with open(path, "rb") as f:
            head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    except OSError:
        head = None
    return {"path": path, "head_sha256": head}


def _succeeded(path: Path, video: str) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("video") == video and data.get("JobStatus") == "SUCCEEDED"


def result_filename(n: int, video: str) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(video).stem)[:80]
    return f"{n:05d}-{stem}.json"


def main(argv: Sequence[str] | None = None) -> int:
    from facestream.operations_common import check_purpose
    from facestream.profiles import resolve_profile
    from pipelines.config import RuntimeConfig

    ap = argparse.ArgumentParser(prog="python -m pipelines.video_search", description=__doc__.splitlines()[0])
    ap.add_argument("--collection", help="collection to search (omit with --detect)")
    ap.add_argument("--source", required=True, type=Path, help="video file, directory of videos or manifest")
    ap.add_argument("--purpose", help="why this search is made (case id or reason); audited")
    ap.add_argument("--out", required=True, type=Path, help="directory for one result JSON per video")
    ap.add_argument("--detect", action="store_true", help="GetFaceDetection: every face, no search")
    ap.add_argument("--threshold", type=float, default=None, help="FaceMatchThreshold (profile default)")
    ap.add_argument("--max-faces", type=int, default=10, help="matches per person at most")
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--segment-s", type=float, default=30.0)
    ap.add_argument("--detector", choices=["fast", "mtcnn"], default="fast")
    add_job_args(ap)
    ap.add_argument(
        "--failures", type=Path, default=None, help="JSONL of failed videos; default <out>/failures.jsonl"
    )
    ap.add_argument("--torch-threads", type=int, default=None)
    args = ap.parse_args(argv)
    setup_job_logging(args.verbose)
    import ray

    from pipelines.runtime import ensure_ray
    from pipelines.store_actor import RemoteFaceStore

    try:
        if not args.detect:
            if not args.collection:
                raise InvalidParameter("--collection is required (or --detect)")
            purpose = check_purpose(args.purpose)
            threshold = resolve_profile().threshold(args.threshold)
        if not 1 <= args.actors <= 64:
            raise InvalidParameter(f"--actors must be 1-64, got {args.actors}")
        cfg = VideoAnalysisConfig(fps=args.fps, segment_s=args.segment_s, detector_mode=args.detector)
        analyzer = AnalyzerConfig(device=DeviceConfig(device=args.device, torch_threads=args.torch_threads))
        runtime = RuntimeConfig(
            home=args.home or default_home(), store_uri=args.store_uri, ray_address=args.ray_address
        )
        videos = list_videos(args.source)
        args.out.mkdir(parents=True, exist_ok=True)
        failures_path = args.failures or args.out / "failures.jsonl"
        started = ensure_ray(runtime.ray_address)
        try:
            store = None if args.detect else RemoteFaceStore(runtime.resolved_store_uri)
            job = VideoJob(
                cfg,
                analyzer,
                search=None
                if args.detect
                else SearchSpec(args.collection, purpose, threshold=threshold, max_faces=args.max_faces),
                store=store,
                audit=AuditLog(runtime.resolved_audit_path),
                actor=Actor(key_id="job:pipelines.video_search", role="searcher"),
                use_ray=True,
                actors=args.actors,
                cpus_per_actor=args.cpus_per_actor,
            )
            order = {v: i for i, v in enumerate(videos)}
            # A rerun (a restarted job) does not redo videos already answered SUCCEEDED.
            done = [v for v in videos if _succeeded(args.out / result_filename(order[v], v), v)]
            if done:
                log.info("%s of %s videos already searched in %s: skipped", len(done), len(videos), args.out)
            todo = [v for v in videos if v not in set(done)]
            with failures_path.open("a", encoding="utf-8") as failures:

                def write(result: dict[str, Any]) -> None:
                    v = str(result["video"])
                    path = args.out / result_filename(order.get(v, 0), v)
                    tmp = path.with_suffix(".part")
                    tmp.write_text(json.dumps(result) + "\n", encoding="utf-8")
                    tmp.replace(path)  # a result file is whole or absent
                    if result["JobStatus"] == "FAILED":
                        failures.write(
                            json.dumps({"video": v, "error": result.get("StatusMessage"), "ts": time.time()})
                            + "\n"
                        )
                        failures.flush()

                stats = job.run(todo, write)
        finally:
            if started:
                ray.shutdown()
    except FacestreamError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2 if exc.http_status < 500 else 1
    summary = {**stats, "skipped": len(done), "out": str(args.out), "failures_path": str(failures_path)}
    log.info("done: %s", summary)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
