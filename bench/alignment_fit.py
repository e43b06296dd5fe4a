"""Learn where dlib's face detector would have put its box, from an MTCNN face (issue 14 item 4).

dlib's 5-point shape predictor was trained on dlib-detector boxes (HOG, as face_recognition
runs it); facestream starts it from MTCNN boxes, which sit differently on the face. This fits
a least-squares linear map from an MTCNN face (box and five points, in the box's own frame) to
the dlib HOG box of the same face, on the shared images that are NOT in PAIRS.tsv (so
``bench.accuracy`` and ``bench.robustness`` measure it on images it was not fitted on), and
reports, by 5-fold cross-validation, how far the predictor's points land from the points it
gives on the real dlib box (in inter-ocular distances) when started from:

- the MTCNN box as is (before this change),
- the box mapped with a constant offset / scale only (``box``),
- the box mapped from the box and the five points (``box+points``).

Prints the coefficients to paste into ``models/landmarks.py`` (``DLIB_BOX_FROM_MTCNN``).

    nice -n 10 python -m bench.alignment_fit
"""

from __future__ import annotations

import csv
import json
import logging

import numpy as np

from bench.common import faces_dir, print_table, setup_logging
from bench.robustness import base_image, torch_threads_one
from facestream.errors import FacestreamError
from facestream.evaluation import read_pairs
from facestream.imageio import load_image_file
from models.landmarks import ShapePredictor5, mtcnn_face_features

log = logging.getLogger("bench.alignment_fit")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def collect() -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """(images, MTCNN boxes (n,4), MTCNN points (n,5,2), dlib HOG boxes (n,4), image index per face)."""
    import face_recognition

    from models.detector import MtcnnDetector

    root = faces_dir()
    in_pairs: set[str] = set()
    for p in read_pairs(root / "PAIRS.tsv", include_flagged=True):
        in_pairs |= {p.img1, p.img2}
    with (root / "MANIFEST.tsv").open(newline="", encoding="utf-8") as f:
        rels = [
            r["local_path"]
            for r in csv.DictReader(f, delimiter="\t")
            if r["kind"] == "image" and r["local_path"] not in in_pairs
        ]
    det = MtcnnDetector()
    images: list[np.ndarray] = []
    mb: list[np.ndarray] = []
    mp: list[np.ndarray] = []
    hb: list[np.ndarray] = []
    idx: list[int] = []
    for rel in rels:
        try:
            rgb = np.asarray(base_image(load_image_file(root / rel).rgb))
        except FacestreamError as e:
            log.info("skipping %s: %s", rel, e)
            continue
        d = det.detect([rgb])[0]
        hog = [
            np.array([left, top, right, bottom], np.float64)
            for top, right, bottom, left in face_recognition.face_locations(rgb)
        ]
        used: set[int] = set()
        n_before = len(mb)
        for box, pts in zip(d.boxes.astype(np.float64), d.landmarks.astype(np.float64), strict=True):
            best, j_best = 0.3, -1
            for j, h in enumerate(hog):
                v = _iou(box, h)
                if j not in used and v > best:
                    best, j_best = v, j
            if j_best >= 0:
                used.add(j_best)
                mb.append(box)
                mp.append(pts)
                hb.append(hog[j_best])
                idx.append(len(images))
        if len(mb) > n_before:
            images.append(rgb)
        log.info("%s: %d MTCNN, %d HOG, %d matched", rel, len(d), len(hog), len(mb) - n_before)
    return images, np.array(mb), np.array(mp), np.array(hb), idx


def targets(mtcnn_boxes: np.ndarray, hog_boxes: np.ndarray) -> np.ndarray:
    """HOG box in the MTCNN box's frame: (centre dx, centre dy) / width, (width, height) / width."""
    w = mtcnn_boxes[:, 2] - mtcnn_boxes[:, 0]
    c = (mtcnn_boxes[:, :2] + mtcnn_boxes[:, 2:]) / 2
    hc = (hog_boxes[:, :2] + hog_boxes[:, 2:]) / 2
    hw = hog_boxes[:, 2:] - hog_boxes[:, :2]
    return np.column_stack([(hc - c) / w[:, None], hw / w[:, None]])


def boxes_from(mtcnn_boxes: np.ndarray, t: np.ndarray) -> np.ndarray:
    w = mtcnn_boxes[:, 2] - mtcnn_boxes[:, 0]
    c = (mtcnn_boxes[:, :2] + mtcnn_boxes[:, 2:]) / 2
    hc = c + t[:, :2] * w[:, None]
    half = t[:, 2:] * w[:, None] / 2
    return np.column_stack([hc - half, hc + half])


def main() -> None:
    setup_logging()
    torch_threads_one()
    images, mb, mp, hb, idx = collect()
    n = len(mb)
    log.info("%d matched faces in %d images", n, len(images))
    feats = {
        "box": np.ones((n, 1)),
        "box+aspect": mtcnn_face_features(mb, mp)[:, :2],
        "box+points": mtcnn_face_features(mb, mp),
    }
    y = targets(mb, hb)
    sp = ShapePredictor5()

    def points(boxes: np.ndarray) -> np.ndarray:
        out = np.zeros((n, 5, 2))
        for k in range(n):
            out[k] = sp.predict(images[idx[k]], boxes[k : k + 1], round_to_pixel=False)[0]
        return out

    ref = points(hb)  # what dlib's predictor gives on dlib's own box
    iod = np.linalg.norm(ref[:, [0, 1]].mean(1) - ref[:, [2, 3]].mean(1), axis=1)

    def err(boxes: np.ndarray) -> np.ndarray:
        return np.linalg.norm(points(boxes) - ref, axis=2).mean(1) / iod

    rows = [["MTCNN box as is", *_summary(err(mb))]]
    folds = np.array_split(np.random.default_rng(0).permutation(n), 5)
    coefs = {}
    for name, x in feats.items():
        pred = np.zeros_like(y)
        for k in range(5):
            test = folds[k]
            train = np.concatenate([folds[j] for j in range(5) if j != k])
            w, *_ = np.linalg.lstsq(x[train], y[train], rcond=None)
            pred[test] = x[test] @ w
        rows.append([f"mapped ({name}), 5-fold", *_summary(err(boxes_from(mb, pred)))])
        coefs[name], *_ = np.linalg.lstsq(x, y, rcond=None)
    print_table(
        f"5-point predictor: distance from its points on dlib's HOG box ({n} faces, {len(images)} images)",
        ["start box", "mean (IOD)", "median (IOD)", "p90 (IOD)"],
        rows,
    )
    print(json.dumps({k: np.round(v, 6).tolist() for k, v in coefs.items()}))


def _summary(e: np.ndarray) -> list[float]:
    return [float(e.mean()), float(np.median(e)), float(np.percentile(e, 90))]


if __name__ == "__main__":
    main()
