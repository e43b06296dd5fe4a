"""Decoding cost per camera: the pipeline's PyAV decode + sample vs ``ffmpeg -f null`` on the same clip.

The pipeline's own :class:`pipelines.source.FrameSource` samples at the processors' default
analysis rate (5 fps) and converts the kept frames to RGB, in three modes: decode every frame,
skip non-reference frames the sampler will not keep (the default), and key frames only. The
limit is the ``ffmpeg`` CLI decoding every frame to the null muxer (no conversion, no Python),
with its default threads and with one thread. Throughput is in *source* frames per second of
wall time: how much camera video one decoder keeps up with.

    python -m bench.decode [--quick]
"""

from __future__ import annotations

import logging
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import av

from bench.common import faces_dir, parser, print_ratios, print_table, setup_logging, write_result
from pipelines.config import FileSource, ReconnectConfig
from pipelines.sampling import Counters
from pipelines.source import FrameSource

log = logging.getLogger("bench.decode")

#: (clip, what it is): 1080p25 x264 with B-frames (about half non-reference), and 640x360 30 fps
#: with no B-frames (nothing to skip: the skip must then cost nothing).
CLIPS = (
    ("facenet-pytorch/examples/video.mp4", "1080p25 H.264 with B-frames"),
    ("face_recognition/examples/short_hamilton_clip.mp4", "360p30 H.264, no B-frames"),
)
ANALYSIS_FPS = 5.0  # pipelines.config.ProcessorSettings.analysis_fps default


def source_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def run_pipeline(path: Path, loops: int, *, skip_nonref: bool, keyframes_only: bool) -> dict[str, Any]:
    counters = Counters()
    t0 = time.perf_counter()
    for _ in range(loops):
        src = FrameSource(
            FileSource(path=path),
            fps=ANALYSIS_FPS,
            keyframes_only=keyframes_only,
            reconnect=ReconnectConfig(),
            media_dirs=[path.parent],
            stop=threading.Event(),
            on_status=lambda _s, _r: None,
            counters=counters,
            stream_id="bench",
            skip_nonref=skip_nonref,
        )
        for _frame in src.frames():
            pass
    return {"s": time.perf_counter() - t0, "decoded": counters.decoded, "sampled": counters.sampled}


def run_ffmpeg(path: Path, loops: int, threads: int | None) -> dict[str, Any]:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise SystemExit("ffmpeg not found on PATH (scripts/setup.sh installs it)")
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error"]
    if threads is not None:
        cmd += ["-threads", str(threads)]
    cmd += ["-stream_loop", str(loops - 1), "-i", str(path), "-map", "0:v:0", "-f", "null", "-"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return {"s": time.perf_counter() - t0}


def main() -> None:
    setup_logging()
    args = parser(__doc__.splitlines()[0]).parse_args()
    repeats = 3 if args.quick else 7
    loops = 1 if args.quick else 3
    rows: list[list[Any]] = []
    details: dict[str, Any] = {
        "analysis_fps": ANALYSIS_FPS,
        "loops_per_run": loops,
        "repeats": repeats,
        "clips": {},
    }
    ratios: dict[str, float] = {}
    medians: dict[str, float] = {}
    for i, (rel, what) in enumerate(CLIPS):
        path = faces_dir() / rel
        n_src = source_frames(path) * loops
        variants: dict[str, Any] = {
            "ffmpeg -f null (default threads)": lambda p=path: run_ffmpeg(p, loops, None),
            "ffmpeg -f null -threads 1": lambda p=path: run_ffmpeg(p, loops, 1),
            "PyAV decode all + sample": lambda p=path: run_pipeline(
                p, loops, skip_nonref=False, keyframes_only=False
            ),
            "PyAV skip non-ref + sample": lambda p=path: run_pipeline(
                p, loops, skip_nonref=True, keyframes_only=False
            ),
            "PyAV key frames only": lambda p=path: run_pipeline(
                p, loops, skip_nonref=False, keyframes_only=True
            ),
        }
        clip: dict[str, Any] = {"what": what, "source_frames_per_run": n_src}
        for fn in variants.values():
            fn()  # warm-up (page cache, codec init)
        # Round-robin, so a change in the shared machine's load hits every variant alike.
        all_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for _ in range(repeats):
            for name, fn in variants.items():
                all_runs[name].append(fn())
        for name, runs in all_runs.items():
            med = statistics.median(r["s"] for r in runs)
            clip[name] = {
                "median_s": med,
                "source_fps": n_src / med,
                "decoded_frames": runs[0].get("decoded", n_src),
                "sampled_frames": runs[0].get("sampled"),
            }
            rows.append(
                [
                    Path(rel).name,
                    name,
                    n_src / med,
                    clip[name]["decoded_frames"],
                    clip[name]["sampled_frames"] or "",
                ]
            )
        details["clips"][rel] = clip
        limit = clip["ffmpeg -f null (default threads)"]["source_fps"]
        suffix = "" if i == 0 else "_no_bframes"
        ratios[f"decode_vs_ffmpeg{suffix}"] = clip["PyAV skip non-ref + sample"]["source_fps"] / limit
        # One decoder thread each: what one stream actor per camera costs against the CLI.
        ratios[f"decode_vs_ffmpeg_1thread{suffix}"] = (
            clip["PyAV skip non-ref + sample"]["source_fps"] / clip["ffmpeg -f null -threads 1"]["source_fps"]
        )
        ratios[f"decode_all_vs_ffmpeg{suffix}"] = clip["PyAV decode all + sample"]["source_fps"] / limit
        ratios[f"nonref_skip_speedup{suffix}"] = (
            clip["PyAV skip non-ref + sample"]["source_fps"] / clip["PyAV decode all + sample"]["source_fps"]
        )
        ratios[f"nonref_skip_decoded_fraction{suffix}"] = (
            clip["PyAV skip non-ref + sample"]["decoded_frames"]
            / clip["PyAV decode all + sample"]["decoded_frames"]
        )
        for name in variants:
            medians[f"{Path(rel).stem}: {name} source_fps"] = clip[name]["source_fps"]
    print_table(
        f"Decode + sample at {ANALYSIS_FPS:g} fps: source frames/s of wall time (median of {repeats})",
        ["clip", "decoder", "source fps", "decoded", "sampled"],
        rows,
    )
    targets: dict[str, str | float] = {
        "decode_vs_ffmpeg": ">= 0.8 (the CLI decoding every frame, its default threads, is the limit)",
        "decode_vs_ffmpeg_1thread": ">= 0.9 (both on one decoder thread)",
        "nonref_skip_speedup": ">= 1.2 on a clip with non-reference frames",
        "nonref_skip_speedup_no_bframes": ">= 0.9 (no cost where there is nothing to skip)",
    }
    print_ratios(ratios, targets)
    out = write_result(
        "decode", ratios=ratios, targets=targets, medians=medians, details=details, quick=args.quick
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
