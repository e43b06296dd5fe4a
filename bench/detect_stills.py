"""Still-image detection: facestream vs MTCNN at full resolution and face_recognition's detectors.

Detectors, each on the same decoded images (EXIF-rotated RGB):

* **facestream**: ``MtcnnDetector`` with the default config (native-resolution tiles above
  ``tile_px``, padded retry for tight crops, five-point plausibility and greyscale re-score).
* **MTCNN full resolution**: facenet-pytorch's ``MTCNN(keep_all=True, min_face_size=20)`` on the
  full-resolution image, faces at probability >= 0.90 (facestream's own ``min_confidence``, so
  both count the same kind of face).
* **face_recognition HOG** (dlib's HOG detector, ``face_locations(model="hog")``): upsample 1
  (its default) up to 2 megapixels, 0 above.
* **face_recognition CNN** (dlib's mmod, ``model="cnn"``): on CPU its cost grows with pixels
  times upsample^2, so it is bounded: upsample 1 up to 0.5 MP, 0 up to 2 MP, and images above
  2 MP are given to it downscaled to 2 MP (boxes mapped back) — said in the table and the JSON.

Sets:

* **known counts**: every image of ``EXPECTED_FACES.tsv`` with an exact count (globs expanded),
  the largest (CompreFace ``001_A.jpg``, 36 MP) at full resolution; four more photos of the
  same person, one face each, 20-33 MP, are skipped to keep a run under 20 minutes.
  Count-based: an image contributes ``min(found, expected)`` found faces and
  ``max(0, found - expected)`` false faces; recall = found / expected, precision = found / all
  returned. A real face the source project did not count (the girl at the edge of
  ``obama_and_biden.jpg``) counts as false for every detector.
* **crowds** (no exact counts): faces returned, and how many of MTCNN's full-resolution faces
  of at least 20 px (the size both are asked for) each detector also returns (IoU >= 0.4).
* **speed**: seconds for the 12-megapixel photo (``004_A.jpg``, 3024x4032): facestream and
  MTCNN median of 3 interleaved runs after the set; face_recognition's from its run in the set.

Ratios: ``recall_vs_mtcnn_fullres`` (known counts, target >= 1.0), ``crowd_recall_vs_mtcnn_fullres``
(share of MTCNN's crowd faces facestream also returns), ``false_faces_vs_mtcnn_fullres``
(<= 1.0), recall and false faces vs both face_recognition detectors, speed vs MTCNN.

    nice -n 10 python -m bench.detect_stills [--quick]
"""

from __future__ import annotations

import csv
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from bench.common import faces_dir, parser, print_ratios, print_table, setup_logging, write_result
from facestream.config import DetectorConfig
from models.detector import MtcnnDetector

log = logging.getLogger("bench.detect_stills")

CROWDS = [
    "retinaface/tests/dataset/img3.jpg",
    "deepface/tests/unit/dataset/selfie-many-people.jpg",
    "facenet-pytorch/data/multiface.jpg",
    "dlib/examples/faces/bald_guys.jpg",
    "insightface/python-package/insightface/data/images/t1.jpg",
    "face-api.js/examples/images/bbt1.jpg",
    "face-api.js/examples/images/bbt5.jpg",
    "deepface/tests/unit/dataset/img54.jpg",
]
SPEED_IMAGE = "CompreFace/embedding-calculator/sample_images/004_A.jpg"
REF_MIN_PROB = 0.90
HOG_UPSAMPLE_MAX_MP = 2.0
CNN_UPSAMPLE_MAX_MP = 0.5
CNN_MAX_MP = 2.0
#: same person, one face each, 20-33 MP: skipped for time (001_A, the largest, and 004_A stay)
SKIPPED = {f"CompreFace/embedding-calculator/sample_images/00{i}_A.jpg" for i in (2, 3, 5, 6)}
MATCH_IOU = 0.4
SPEED_REPEATS = 3
#: both detectors are asked for faces this big (MTCNN's min_face_size, facestream's min_face_px);
#: crowd recall counts those (P-Net also returns some smaller ones: all sizes are in the JSON)
MIN_FACE_PX = 20

Detector = Callable[[np.ndarray], np.ndarray]


def load_rgb(path: Path) -> np.ndarray:
    """EXIF-rotated RGB uint8, no pixel limit (the largest shared photos are 36 MP)."""
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB")))


def known_counts(root: Path) -> list[tuple[str, int]]:
    """(path relative to ``root``, expected faces) for every exact count in EXPECTED_FACES.tsv."""
    out: dict[str, int] = {}
    with (root / "EXPECTED_FACES.tsv").open(newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            n = r["expected_faces"].strip()
            count = 1 if n.startswith("1 each") else int(n) if n.isdigit() else None
            if count is None:
                continue
            pattern = r["local_path"]
            paths = sorted(root.glob(pattern)) if any(c in pattern for c in "*[") else [root / pattern]
            for p in paths:
                if p.is_file() and str(p.relative_to(root)) not in SKIPPED:
                    out.setdefault(str(p.relative_to(root)), count)
    return sorted(out.items())


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6))


def matched(ref: np.ndarray, boxes: np.ndarray) -> int:
    """Reference boxes with a box at IoU >= MATCH_IOU."""
    if len(ref) == 0 or len(boxes) == 0:
        return 0
    return int((iou_matrix(ref, boxes).max(axis=1) >= MATCH_IOU).sum())


def at_least(boxes: np.ndarray, side_px: float) -> np.ndarray:
    """Boxes whose shorter side is at least ``side_px``."""
    if len(boxes) == 0:
        return boxes
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return boxes[side >= side_px]


def facestream_detector() -> Detector:
    det = MtcnnDetector(DetectorConfig(), torch.device("cpu"))
    return lambda rgb: det.detect([rgb])[0].boxes


def mtcnn_fullres() -> Detector:
    from facenet_pytorch import MTCNN

    m = MTCNN(keep_all=True, min_face_size=20, device="cpu").eval()

    def run(rgb: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            boxes, probs = m.detect(rgb)
        if boxes is None:
            return np.zeros((0, 4), np.float32)
        b = np.asarray(boxes, np.float32)[np.asarray(probs, np.float32) >= REF_MIN_PROB]
        h, w = rgb.shape[:2]
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
        return b

    return run


def _fr_boxes(locs: list[tuple[int, int, int, int]], scale: float) -> np.ndarray:
    if not locs:
        return np.zeros((0, 4), np.float32)
    return np.array([[left, top, right, bottom] for top, right, bottom, left in locs], np.float32) / scale


def face_recognition_hog() -> Detector:
    import face_recognition

    def run(rgb: np.ndarray) -> np.ndarray:
        mp = rgb.shape[0] * rgb.shape[1] / 1e6
        ups = 1 if mp <= HOG_UPSAMPLE_MAX_MP else 0
        return _fr_boxes(
            face_recognition.face_locations(rgb, number_of_times_to_upsample=ups, model="hog"), 1.0
        )

    return run


def face_recognition_cnn() -> Detector:
    import face_recognition

    def run(rgb: np.ndarray) -> np.ndarray:
        mp = rgb.shape[0] * rgb.shape[1] / 1e6
        scale = 1.0
        img = rgb
        if mp > CNN_MAX_MP:  # bounded: see the module doc
            scale = (CNN_MAX_MP / mp) ** 0.5
            small = Image.fromarray(rgb).resize(
                (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), Image.Resampling.BILINEAR
            )
            img = np.asarray(small)
        ups = 1 if mp <= CNN_UPSAMPLE_MAX_MP else 0
        return _fr_boxes(
            face_recognition.face_locations(img, number_of_times_to_upsample=ups, model="cnn"), scale
        )

    return run


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    setup_logging()
    quick = bool(args.quick)
    root = faces_dir()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    detectors: dict[str, Detector] = {
        "facestream": facestream_detector(),
        "mtcnn_fullres": mtcnn_fullres(),
        "fr_hog": face_recognition_hog(),
        "fr_cnn": face_recognition_cnn(),
    }
    counts = known_counts(root)
    crowds = CROWDS
    if quick:  # small images only, every third
        counts = [c for c in counts if "CompreFace/embedding-calculator/sample_images/00" not in c[0]][::3]
        crowds = crowds[:3]
    found: dict[str, dict[str, list[list[float]]]] = {k: {} for k in detectors}
    speed: dict[str, float] = {}
    seconds: dict[str, float] = dict.fromkeys(detectors, 0.0)
    for rel in [c[0] for c in counts] + crowds:
        rgb = load_rgb(root / rel)
        for name, fn in detectors.items():
            t0 = time.perf_counter()
            boxes = fn(rgb)
            dt = time.perf_counter() - t0
            seconds[name] += dt
            if rel == SPEED_IMAGE:
                speed[name] = dt
            found[name][rel] = np.asarray(boxes, np.float32).reshape(-1, 4).round(1).tolist()
        log.info("%s %s: %s", rel, rgb.shape[:2], {k: len(found[k][rel]) for k in detectors})

    if not quick:  # the 12 MP photo again: facestream and MTCNN interleaved, median of 3 (load drifts)
        rgb = load_rgb(root / SPEED_IMAGE)
        runs: dict[str, list[float]] = {"facestream": [], "mtcnn_fullres": []}
        for _ in range(SPEED_REPEATS):
            for name, ts in runs.items():
                t0 = time.perf_counter()
                detectors[name](rgb)
                ts.append(time.perf_counter() - t0)
        for name, ts in runs.items():
            speed[name] = statistics.median(ts)
        log.info("12 MP runs: %s", runs)
    # known counts
    known: dict[str, dict[str, float]] = {}
    expected_total = sum(n for _, n in counts)
    for name in detectors:
        got = [len(found[name][rel]) for rel, _ in counts]
        tp = sum(min(g, n) for g, (_, n) in zip(got, counts, strict=True))
        fp = sum(max(0, g - n) for g, (_, n) in zip(got, counts, strict=True))
        exact = sum(g == n for g, (_, n) in zip(got, counts, strict=True))
        known[name] = {
            "images": len(counts),
            "expected": expected_total,
            "returned": sum(got),
            "found": tp,
            "false": fp,
            "missed": expected_total - tp,
            "exact_images": exact,
            "recall": tp / max(1, expected_total),
            "precision": tp / max(1, sum(got)),
        }
    # crowds
    crowd: dict[str, dict[str, float]] = {}
    refs = {rel: np.array(found["mtcnn_fullres"][rel], np.float32).reshape(-1, 4) for rel in crowds}
    refs_min = {rel: at_least(b, MIN_FACE_PX) for rel, b in refs.items()}
    ref_total = sum(len(b) for b in refs_min.values())
    ref_all = sum(len(b) for b in refs.values())
    for name in detectors:
        mine = {rel: np.array(found[name][rel], np.float32).reshape(-1, 4) for rel in crowds}
        hit = sum(matched(refs_min[rel], mine[rel]) for rel in crowds)
        hit_all = sum(matched(refs[rel], mine[rel]) for rel in crowds)
        crowd[name] = {
            "images": len(crowds),
            "returned": sum(len(b) for b in mine.values()),
            "mtcnn_faces_also_found": hit,
            "recall_vs_mtcnn_fullres": hit / max(1, ref_total),
            "recall_vs_mtcnn_fullres_all_sizes": hit_all / max(1, ref_all),
        }
    labels = {
        "facestream": "facestream (tiles, retry, checks)",
        "mtcnn_fullres": "MTCNN full resolution (p >= 0.90)",
        "fr_hog": "face_recognition HOG (upsample 1 <= 2 MP, else 0)",
        "fr_cnn": "face_recognition CNN/mmod (bounded: upsample 1 <= 0.5 MP, 0 <= 2 MP, >2 MP at 2 MP)",
    }
    print_table(
        f"Known counts: {len(counts)} images, {expected_total} faces (EXPECTED_FACES.tsv)"
        + (" (quick)" if quick else ""),
        ["detector", "recall", "precision", "false faces", "missed", "exact images", "s per 12 MP"],
        [
            [
                labels[k],
                known[k]["recall"],
                known[k]["precision"],
                known[k]["false"],
                known[k]["missed"],
                f"{int(known[k]['exact_images'])}/{len(counts)}",
                speed.get(k, float("nan")),
            ]
            for k in detectors
        ],
    )
    print_table(
        f"Crowds: {len(crowds)} images, {ref_total} MTCNN full-res faces >= {MIN_FACE_PX} px ({ref_all} all)",
        ["detector", "faces returned", "MTCNN faces also found", "share", "share, all sizes"],
        [
            [
                labels[k],
                crowd[k]["returned"],
                crowd[k]["mtcnn_faces_also_found"],
                crowd[k]["recall_vs_mtcnn_fullres"],
                crowd[k]["recall_vs_mtcnn_fullres_all_sizes"],
            ]
            for k in detectors
        ],
    )
    ours, ref = known["facestream"], known["mtcnn_fullres"]
    ratios = {
        "recall_vs_mtcnn_fullres": ours["recall"] / max(1e-9, ref["recall"]),
        "precision_vs_mtcnn_fullres": ours["precision"] / max(1e-9, ref["precision"]),
        "false_faces_vs_mtcnn_fullres": ours["false"] / max(1, ref["false"]),
        "crowd_recall_vs_mtcnn_fullres": crowd["facestream"]["recall_vs_mtcnn_fullres"],
        "recall_vs_fr_hog": ours["recall"] / max(1e-9, known["fr_hog"]["recall"]),
        "recall_vs_fr_cnn": ours["recall"] / max(1e-9, known["fr_cnn"]["recall"]),
        "precision_vs_fr_hog": ours["precision"] / max(1e-9, known["fr_hog"]["precision"]),
        "precision_vs_fr_cnn": ours["precision"] / max(1e-9, known["fr_cnn"]["precision"]),
    }
    if speed:
        ratios["speed_12mp_vs_mtcnn_fullres"] = speed["mtcnn_fullres"] / max(1e-9, speed["facestream"])
    targets: dict[str, str | float] = {
        "recall_vs_mtcnn_fullres": 1.0,
        "false_faces_vs_mtcnn_fullres": "<= 1.0",
        "crowd_recall_vs_mtcnn_fullres": 1.0,
        "recall_vs_fr_hog": 1.0,
        "recall_vs_fr_cnn": 1.0,
    }
    print_ratios(ratios, targets)
    write_result(
        "detect_stills",
        ratios=ratios,
        targets=targets,
        medians={f"{k}_s_per_12mp": v for k, v in speed.items()}
        | {f"{k}_s_total": v for k, v in seconds.items()},
        details={
            "known_counts": known,
            "crowds": crowd,
            "detectors": labels,
            "speed_image": SPEED_IMAGE,
            "match_iou": MATCH_IOU,
            "config": DetectorConfig().model_dump(),
            "per_image": {
                rel: {k: len(found[k][rel]) for k in detectors} | {"expected": n} for rel, n in counts
            }
            | {rel: {k: len(found[k][rel]) for k in detectors} for rel in crowds},
        },
        quick=quick,
    )


if __name__ == "__main__":
    main()
