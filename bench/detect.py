"""Stream detection: per-frame facenet-pytorch MTCNN vs the fast per-stream path (models/fastdetect.py).

On the hamilton clip sampled at the stream default analysis rate (5 fps): frames/s of both
(median of interleaved repeats), recall of the fast path against per-frame MTCNN (a baseline
face counts as found when a fast face overlaps it with IoU >= 0.5), and the end-to-end
analyzer (detect + landmarks + align + embed) with and without a stream key. On the
EXPECTED_FACES.tsv stills (each its own stream: a state miss, so a full fast detection):
recall against MTCNN and against the expected counts. Recall counts the faces the stream path
is asked to find: at least ``detector.stream.min_face_px`` (28 px, the tracker's searchable
minimum); recall over all sizes is in the JSON details.

    python -m bench.detect [--quick]
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from bench.common import RESULTS, faces_dir, machine, parser, print_table, setup_logging
from facestream.config import AnalyzerConfig, DetectorConfig, DeviceConfig
from facestream.imageio import load_image_file
from models.analyzer import FaceAnalyzer
from models.detector import Detections
from models.fastdetect import StreamDetector

CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
FPS = 5.0  # pipelines.config default analysis_fps


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6))


def matched(base: np.ndarray, fast: np.ndarray) -> int:
    """Baseline boxes with a fast box at IoU >= 0.5."""
    if len(base) == 0 or len(fast) == 0:
        return 0
    return int((iou_matrix(base, fast).max(axis=1) >= 0.5).sum())


def usable(boxes: np.ndarray, min_face_px: int) -> np.ndarray:
    """Boxes whose shorter side is at least ``min_face_px`` (what the stream path looks for)."""
    if len(boxes) == 0:
        return boxes
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return boxes[side >= min_face_px]


def clip_frames(path: Path, fps: float, limit: int | None) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        next_t = 0.0
        for f in c.decode(video=0):
            if f.time is None or f.time + 1e-6 < next_t:
                continue
            out.append(f.to_ndarray(format="rgb24"))
            next_t += 1.0 / fps
            if limit is not None and len(out) >= limit:
                break
    return out


def expected_stills(root: Path) -> list[tuple[Path, int]]:
    rows = []
    with (root / "EXPECTED_FACES.tsv").open() as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            p = root / r["local_path"]
            if r["expected_faces"].strip().isdigit() and p.is_file():
                rows.append((p, int(r["expected_faces"])))
    return rows


def baseline_detect(mtcnn: Any, frame: np.ndarray, min_conf: float) -> np.ndarray:
    """facenet-pytorch MTCNN called on one frame, faces >= min_conf, boxes clipped (as the project does)."""
    boxes, probs = mtcnn.detect(frame)
    if boxes is None:
        return np.zeros((0, 4), np.float32)
    b = np.asarray(boxes, np.float32)[np.asarray(probs) >= min_conf]
    h, w = frame.shape[:2]
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    return b


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    setup_logging()
    quick = bool(args.quick)
    root = faces_dir()
    load0 = os.getloadavg()
    analyzer = FaceAnalyzer(AnalyzerConfig(device=DeviceConfig(device="cpu")))
    det_cfg: DetectorConfig = analyzer.config.detector
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device="cpu").eval()
    fast = StreamDetector(analyzer.detector.mtcnn, det_cfg, torch.device("cpu"))
    frames = clip_frames(root / CLIP, FPS, 24 if quick else None)
    repeats = 2 if quick else 3

    def run_base() -> list[np.ndarray]:
        return [baseline_detect(mtcnn, f, det_cfg.min_confidence) for f in frames]

    def run_fast(key: str) -> list[Detections]:
        fast.forget(key)
        return [fast.detect([f], [key])[0] for f in frames]

    run_base()
    run_fast("warm")
    fast.stats.__init__()  # type: ignore[misc]
    base_t, fast_t = [], []
    base_out: list[np.ndarray] = []
    fast_out: list[Detections] = []
    for r in range(repeats):  # interleaved, so load changes hit both alike
        t0 = time.perf_counter()
        base_out = run_base()
        base_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fast_out = run_fast(f"clip-{r}")
        fast_t.append(time.perf_counter() - t0)
    base_fps = len(frames) / statistics.median(base_t)
    fast_fps = len(frames) / statistics.median(fast_t)
    # Recall over the faces the stream path is asked to find: those at least stream.min_face_px
    # (the tracker never searches smaller ones). All sizes are reported too (details).
    m = det_cfg.stream.min_face_px
    n_all = sum(len(b) for b in base_out)
    n_found_all = sum(matched(b, f.boxes) for b, f in zip(base_out, fast_out, strict=True))
    n_base = sum(len(usable(b, m)) for b in base_out)
    n_found = sum(matched(usable(b, m), f.boxes) for b, f in zip(base_out, fast_out, strict=True))
    clip_recall = n_found / max(1, n_base)
    stats = fast.stats.as_dict()

    # Stills: every image its own stream (state miss -> full fast detection).
    stills = expected_stills(root)
    if quick:
        stills = stills[::3]
    s_base = s_found = s_exp = s_exp_base = s_exp_fast = 0
    for j, (p, n_exp) in enumerate(stills):
        img = load_image_file(p).rgb
        b_all = analyzer.detector.detect([img])[0].boxes  # the still-image path (what IndexFaces uses)
        b = usable(b_all, m)
        f = fast.detect([img], [f"still-{j}"])[0].boxes
        s_base += len(b)
        s_found += matched(b, f)
        s_exp += n_exp
        s_exp_base += min(len(b), n_exp)
        s_exp_fast += min(len(f), n_exp)
    still_recall = s_found / max(1, s_base)

    # End to end: analyzer per frame, still path (no key) vs stream path (key).
    e2e = frames[:12] if quick else frames
    _ = analyzer.analyze([e2e[0]])
    t0 = time.perf_counter()
    for f in e2e:
        analyzer.analyze([f])
    e2e_base = len(e2e) / (time.perf_counter() - t0)
    analyzer.stream_detector.forget("e2e")
    t0 = time.perf_counter()
    for f in e2e:
        analyzer.analyze([f], ["e2e"])
    e2e_fast = len(e2e) / (time.perf_counter() - t0)

    ratios = {
        "detect_speedup_vs_mtcnn": fast_fps / base_fps,
        "recall_vs_mtcnn": clip_recall,
        "recall_vs_mtcnn_stills": still_recall,
        "recall_vs_expected_stills_fast_over_mtcnn": s_exp_fast / max(1, s_exp_base),
        "analyzer_speedup_stream_vs_still": e2e_fast / e2e_base,
    }
    targets = {
        "detect_speedup_vs_mtcnn": ">= 3",
        "recall_vs_mtcnn": ">= 1.0 within noise (faces >= min_face_px; borderline ones flip)",
        "recall_vs_mtcnn_stills": ">= 1.0 within noise",
        "recall_vs_expected_stills_fast_over_mtcnn": ">= 1.0 within noise",
        "analyzer_speedup_stream_vs_still": "> 1",
    }
    print_table(
        "stream detection, hamilton clip at 5 fps" + (" (quick)" if quick else ""),
        ["path", "frames", "fps (median)", "faces", "recall vs mtcnn"],
        [
            ["facenet-pytorch MTCNN per frame", len(frames), base_fps, n_base, 1.0],
            ["fast stream path", len(frames), fast_fps, sum(len(f) for f in fast_out), clip_recall],
            ["analyzer, still path", len(e2e), e2e_base, "", ""],
            ["analyzer, stream key", len(e2e), e2e_fast, "", ""],
        ],
    )
    print_table(
        "EXPECTED_FACES stills (fast = full detection)",
        ["images", "expected", "mtcnn found (capped)", "fast found (capped)", "fast recall vs mtcnn"],
        [[len(stills), s_exp, s_exp_base, s_exp_fast, still_recall]],
    )
    print_table("ratios", ["name", "value", "target"], [[k, v, targets[k]] for k, v in ratios.items()])
    payload = {
        "benchmark": "detect",
        "quick": quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "loadavg": {"start": list(load0), "end": list(os.getloadavg())},
        "ratios": {k: round(v, 4) for k, v in ratios.items()},
        "targets": targets,
        "medians": {
            "mtcnn_fps": round(base_fps, 3),
            "fast_fps": round(fast_fps, 3),
            "analyzer_still_fps": round(e2e_base, 3),
            "analyzer_stream_fps": round(e2e_fast, 3),
        },
        "details": {
            "clip_frames": len(frames),
            "clip_fps_sampled": FPS,
            "repeats": repeats,
            "mtcnn_seconds": base_t,
            "fast_seconds": fast_t,
            "min_face_px": m,
            "clip_faces_mtcnn": n_base,
            "clip_faces_found": n_found,
            "clip_faces_mtcnn_all_sizes": n_all,
            "clip_faces_found_all_sizes": n_found_all,
            "recall_vs_mtcnn_all_sizes": round(n_found_all / max(1, n_all), 4),
            "fast_actions": stats,
            "stills": len(stills),
            "stills_expected_faces": s_exp,
            "stills_mtcnn_faces": s_base,
            "stills_found": s_found,
            "config": det_cfg.stream.model_dump(),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detect.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
