"""Serve overhead: faces/s of the bare analyzer vs the same model behind the Ray Serve deployment.

Both sides run the same :class:`models.analyzer.FaceAnalyzer` (MTCNN detection + alignment +
embedding) on the same frames (a real clip, sampled at 5 fps), at the same batch size B and
the same number of torch threads:

- bare: ``analyzer.analyze(frames[i:i+B])`` in this one process;
- Serve: the deployment of pipelines/face_service.py on a local Ray (one replica,
  ``max_batch_size=B``), every frame sent as its own request through a DeploymentHandle, all
  of them in flight at once so ``@serve.batch`` fills its batches.

``serve_efficiency`` = Serve faces/s / bare faces/s (goal >= 0.9: Serve costs at most 10%),
the median over rounds, each round timing bare then Serve back to back so a change in the
machine's load hits both. Ray runs its workers at niceness 15 by default; the replica is run at
0 like this process (``--worker-niceness``), else a busy machine starves the replica.

    python -m bench.serve_efficiency [--quick]
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from bench.common import faces_dir, parser, print_ratios, print_table, setup_logging, write_result
from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig

log = logging.getLogger("bench.serve_efficiency")

CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
APP = "serve-efficiency-bench"


def clip_frames(path: Path, fps: float, limit: int) -> list[np.ndarray]:
    """RGB frames of ``path`` about ``1/fps`` s apart (what a stream actor sends)."""
    out: list[np.ndarray] = []
    next_t = 0.0
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            if f.time is not None and f.time + 1e-6 >= next_t:
                out.append(f.to_ndarray(format="rgb24"))
                next_t += 1.0 / fps
                if len(out) >= limit:
                    break
    return out


def bare_round(analyzer: Any, frames: list[np.ndarray], batch: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    faces = 0
    for i in range(0, len(frames), batch):
        faces += sum(len(b) for b in analyzer.analyze(frames[i : i + batch]))
    return time.perf_counter() - t0, faces


def serve_round(handle: Any, frame_refs: list[Any]) -> tuple[float, int]:
    t0 = time.perf_counter()
    responses = [handle.analyze.remote(f) for f in frame_refs]
    faces = sum(len(r.result(timeout_s=600)) for r in responses)
    return time.perf_counter() - t0, faces


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    setup_logging()
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8, help="frames per batch (bare) = max_batch_size (Serve)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads on both sides (the replica reserves as many CPUs); 1 = one replica per core",
    )
    p.add_argument(
        "--batch-wait-s",
        type=float,
        default=0.05,
        help="batch_wait_timeout_s of the deployment",
    )
    p.add_argument(
        "--worker-niceness",
        type=int,
        default=0,
        help="niceness of Ray's worker processes (Ray's own default is 15: on a shared machine the "
        "replica then gets less CPU than this un-niced process, which measured as 'Serve overhead')",
    )
    args = p.parse_args()
    rounds = 2 if args.quick else 5
    n_frames = 8 if args.quick else 40
    threads = args.threads
    torch.set_num_threads(threads)
    frames = clip_frames(faces_dir() / CLIP, 5.0, n_frames)
    analyzer_cfg = AnalyzerConfig(
        device=DeviceConfig(device="cpu", precision=args.precision, torch_threads=threads)
    )
    svc_cfg = EmbeddingServiceConfig(
        analyzer=analyzer_cfg,
        max_batch_size=args.batch,
        batch_wait_timeout_s=args.batch_wait_s,
        num_cpus=float(threads),
        max_ongoing_requests=max(32, 2 * args.batch),
    )

    import ray
    from ray import serve

    from facestream.localray import init_local_ray
    from models.analyzer import FaceAnalyzer
    from pipelines.face_service import deployment

    bare = FaceAnalyzer(analyzer_cfg)
    # Read by the raylet when it starts; the bare side runs at this process's niceness (0).
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # noqa: SIM112 - Ray spells it so
    init_local_ray(num_cpus=max(threads, os.cpu_count() or 1))
    try:
        handle = serve.run(
            deployment(svc_cfg, name="FaceAnalysisEfficiency").bind(svc_cfg.model_dump()),
            name=APP,
            route_prefix=None,
        )
        # Frames go to the object store once, as a stream actor's frames would arrive: the
        # bench measures the replica side, not this driver pickling frames on every round.
        refs = [ray.put(f) for f in frames]
        bare_round(bare, frames[: args.batch], args.batch)  # warm-up
        serve_round(handle, refs[: args.batch])
        bare_s: list[float] = []
        serve_s: list[float] = []
        detect_rounds_s: list[float] = []
        faces_bare = faces_serve = 0
        for r in range(rounds):
            t, faces_bare = bare_round(bare, frames, args.batch)
            bare_s.append(t)
            t, faces_serve = serve_round(handle, refs)
            serve_s.append(t)
            log.info(
                "round %d: bare %.2f s, serve %.2f s (%d faces)", r, bare_s[-1], serve_s[-1], faces_serve
            )
            # Detection alone (for docs/capacity.md): the rest is alignment + embedding.
            detect_rounds_s.append(
                _timed(
                    lambda: [
                        bare.detect(frames[i : i + args.batch]) for i in range(0, len(frames), args.batch)
                    ]
                )
            )
        stats = handle.stats.remote().result(timeout_s=60)
    finally:
        serve.shutdown()
        ray.shutdown()
    if faces_bare != faces_serve:
        raise SystemExit(f"Serve found {faces_serve} faces, the bare model {faces_bare}: not the same work")
    t_bare, t_serve = statistics.median(bare_s), statistics.median(serve_s)
    detect_s = statistics.median(detect_rounds_s)
    # Each round runs bare then Serve back to back: the per-round ratio cancels the machine's
    # load drifting between rounds, and its median is the efficiency.
    paired = statistics.median(b / s for b, s in zip(bare_s, serve_s, strict=True))
    fps_bare, fps_serve = faces_bare / t_bare, faces_serve / t_serve
    busy = stats["busy_s"]
    rows = [
        ["bare analyzer, one process", args.batch, len(frames) / t_bare, fps_bare, ""],
        ["Ray Serve deployment", args.batch, len(frames) / t_serve, fps_serve, stats["batch_sizes"]],
    ]
    print_table(
        f"Detection + embedding of {len(frames)} 640x360 frames ({faces_bare} faces), "
        f"{threads} torch threads, {args.precision}, median of {rounds}",
        ["path", "batch", "frames/s", "faces/s", "Serve batch sizes"],
        rows,
    )
    ratios = {"serve_efficiency": paired}
    targets: dict[str, str | float] = {"serve_efficiency": 0.9}
    print_ratios(ratios, targets)
    out = write_result(
        "serve_efficiency",
        ratios=ratios,
        targets=targets,
        medians={
            "bare_faces_per_s": fps_bare,
            "serve_faces_per_s": fps_serve,
            "bare_round_s": t_bare,
            "serve_round_s": t_serve,
            "bare_detect_ms_per_frame": 1000 * detect_s / len(frames),
            "bare_analyze_ms_per_frame": 1000 * t_bare / len(frames),
            "bare_align_embed_ms_per_face": 1000 * (t_bare - detect_s) / max(faces_bare, 1),
        },
        details={
            "batch": args.batch,
            "batch_wait_timeout_s": args.batch_wait_s,
            "ray_worker_niceness": args.worker_niceness,
            "precision": args.precision,
            "torch_threads": threads,
            "frames": len(frames),
            "faces_per_round": faces_bare,
            "rounds": rounds,
            "bare_rounds_s": bare_s,
            "serve_rounds_s": serve_s,
            "detect_rounds_s": detect_rounds_s,
            "ratio_of_median_faces_per_s": fps_serve / fps_bare,
            "replica_stats": stats,
            "replica_busy_fraction_of_serve_wall": busy / max(sum(serve_s), 1e-9),
        },
        quick=args.quick,
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
