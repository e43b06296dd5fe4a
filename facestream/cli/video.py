"""Recorded video on the command line: ``facestream video search`` (Rekognition's
StartFaceSearch/GetFaceSearch) and ``facestream video detect`` (StartFaceDetection/
GetFaceDetection), one JSON object per video.

The same segment analysis, stitching and search as the Ray Data job
(``python -m pipelines.video_search``), run in this process with one analyser: no Ray to
start for a few files. A video that cannot be read is answered FAILED with its reason (exit
status 2); the other videos of the call are still answered.
"""

from __future__ import annotations

from typing import Any

from facestream.audit import Actor
from facestream.cli.context import EXIT_BAD_INPUT, Context, Subcommands, add_common_flags, add_profile_flag


def _config(ctx: Context) -> Any:
    """The analysis settings from the flags; a bad value is exit status 2, before anything loads."""
    from pydantic import ValidationError

    from facestream.errors import InvalidParameter
    from pipelines.video_tracks import VideoAnalysisConfig

    a = ctx.args
    try:
        return VideoAnalysisConfig(fps=a.fps, segment_s=a.segment_s, detector_mode=a.detector)
    except ValidationError as exc:
        bad = "; ".join(
            f"--{'-'.join(str(x) for x in e['loc']).replace('_', '-')}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidParameter(bad) from None


def _job(ctx: Context, search: Any, cfg: Any) -> Any:
    from models.analyzer import FaceAnalyzer
    from pipelines.video_search import VideoJob
    from pipelines.video_tracks import analyzer_config

    analyzer_cfg = analyzer_config(ctx.settings.analyzer, cfg)
    return VideoJob(
        cfg,
        analyzer_cfg,
        search=search,
        store=ctx.store if search is not None else None,
        audit=ctx.audit,
        actor=Actor.local_cli(),
        use_ray=False,
        local_analyzer=FaceAnalyzer(analyzer_cfg),
    )


def _emit(ctx: Context, result: dict[str, Any], key: str) -> None:
    video = result["video"]
    out: dict[str, Any] = {"video": video, "JobStatus": result["JobStatus"]}
    if "StatusMessage" in result:
        out["StatusMessage"] = result["StatusMessage"]
    out["VideoMetadata"] = result.get("VideoMetadata")
    out[key] = result[key]
    if result["JobStatus"] == "FAILED":
        ctx.status = max(ctx.status, EXIT_BAD_INPUT)
        out["error"] = {"code": "InvalidParameterException", "message": result.get("StatusMessage", "")}
        human = f"{video}: FAILED: {result.get('StatusMessage', '')}"
    elif key == "Persons":
        spans: dict[int, list[int]] = {}
        names: dict[int, str] = {}
        for p in result["Persons"]:
            i = p["Person"]["Index"]
            spans.setdefault(i, []).append(p["Timestamp"])
            best = p["FaceMatches"][0]
            names[i] = (
                f"{best['Face'].get('ExternalImageId', best['Face']['FaceId'])} ({best['Similarity']:.1f}%)"
            )
        lines = [f"{video}: {len(spans)} person(s) matched"]
        lines += [f"  person {i}: {names[i]} {min(t)}-{max(t)} ms" for i, t in sorted(spans.items())]
        human = "\n".join(lines)
    else:
        human = f"{video}: {len(result['Faces'])} face(s)"
    ctx.emit(out, human)


def cmd_video_search(ctx: Context) -> None:
    from facestream.operations_common import check_purpose
    from facestream.profiles import resolve_profile
    from pipelines.video_search import SearchSpec

    a = ctx.args
    purpose = check_purpose(a.purpose)  # refused before any video is opened
    threshold = resolve_profile().threshold(a.threshold)
    cfg = _config(ctx)
    ctx.store.describe_collection(a.collection)  # unknown collection: fail before loading models
    spec = SearchSpec(a.collection, purpose, threshold=threshold, max_faces=a.max_faces)
    _run_in_order(ctx, _job(ctx, spec, cfg), "Persons")


def cmd_video_detect(ctx: Context) -> None:
    _run_in_order(ctx, _job(ctx, None, _config(ctx)), "Faces")


def _run_in_order(ctx: Context, job: Any, key: str) -> None:
    """Answers in the order the videos were named (an unreadable one is known first)."""
    videos: list[str] = list(ctx.args.videos)
    results: dict[str, list[dict[str, Any]]] = {}
    job.run(list(dict.fromkeys(videos)), lambda r: results.setdefault(r["video"], []).append(r))
    for v in videos:
        for r in results.get(v, []):
            _emit(ctx, r, key)


def _analysis_flags(p: Any) -> None:
    p.add_argument("--fps", type=float, default=5.0, help="analysed frames per second (default 5)")
    p.add_argument("--segment-s", type=float, default=30.0, help="segment length, seconds (default 30)")
    p.add_argument("--detector", choices=["fast", "mtcnn"], default="fast", help="video-frame detector")


def register(sub: Subcommands) -> None:
    p = sub.add_parser("video", help="recorded video: search | detect")
    vsub = p.add_subparsers(dest="action", required=True)
    q = vsub.add_parser("search", help="GetFaceSearch: where do the collection's people appear?")
    q.add_argument("videos", nargs="+")
    q.add_argument("--collection", required=True)
    q.add_argument("--purpose", required=True, help="why this search is made (case id or reason); audited")
    q.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="FaceMatchThreshold 0-100 (default: the profile's, 80 general / 99 public-safety)",
    )
    q.add_argument("--max-faces", type=int, default=10, help="matches per person at most (default 10)")
    _analysis_flags(q)
    add_profile_flag(q)
    add_common_flags(q)
    q.set_defaults(fn=cmd_video_search)
    q = vsub.add_parser("detect", help="GetFaceDetection: every face with its timestamp")
    q.add_argument("videos", nargs="+")
    _analysis_flags(q)
    add_common_flags(q)
    q.set_defaults(fn=cmd_video_detect)
