"""Verification metrics on labelled pairs: LFW-protocol accuracy, ROC AUC, TAR at a FAR,
and the threshold for a target false-match rate. Used by the benchmarks and by calibration.

Scores are similarities where larger means "more likely the same person"; a pair whose
face could not be found gets ``-inf`` (it is then always judged "different").
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Pair:
    img1: str
    img2: str
    same: bool
    identity1: str
    identity2: str


def read_pairs(path: Path, *, include_flagged: bool = False) -> list[Pair]:
    """PAIRS.tsv rows (img1, img2, same, identity1, identity2, flag); flagged rows skipped by default."""
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row.get("flag") and not include_flagged:
                continue
            out.append(Pair(row["img1"], row["img2"], row["same"] == "1", row["identity1"], row["identity2"]))
    return out


def kfold_accuracy(
    scores: np.ndarray,
    same: np.ndarray,
    folds: int = 10,
    seed: int = 0,
    *,
    missing_wrong: bool = False,
) -> tuple[float, float]:
    """LFW protocol: the threshold is chosen on 9 folds and applied to the 10th; mean and std.

    A pair without a face scores ``-inf``: by default it is judged "different" (right for an
    impostor pair); with ``missing_wrong`` it counts as wrong whatever its label (the threshold
    is then chosen on the pairs with both faces, the only ones it can decide).
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(scores))
    parts = np.array_split(order, folds)
    accs = []
    for k in range(folds):
        test = parts[k]
        train = np.concatenate([parts[j] for j in range(folds) if j != k])
        if missing_wrong:
            train = train[np.isfinite(scores[train])]
        thr = best_threshold(scores[train], same[train])
        right = (scores[test] >= thr) == same[test]
        if missing_wrong:
            right &= np.isfinite(scores[test])
        accs.append(float(np.mean(right)))
    return float(np.mean(accs)), float(np.std(accs))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy (midpoint between neighbouring scores)."""
    finite = np.unique(scores[np.isfinite(scores)])
    if finite.size == 0:
        return 0.0
    cands = np.concatenate([[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    accs = [np.mean((scores >= t) == same) for t in cands]
    return float(cands[int(np.argmax(accs))])


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (probability a genuine pair outscores an impostor; ties count half)."""
    pos = scores[same]
    neg = scores[~same]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    pos_f = np.where(np.isfinite(pos), pos, -1e9)
    neg_f = np.where(np.isfinite(neg), neg, -1e9)
    greater = (pos_f[:, None] > neg_f[None, :]).sum()
    ties = (pos_f[:, None] == neg_f[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def threshold_at_fmr(scores: np.ndarray, same: np.ndarray, fmr: float) -> float:
    """Smallest threshold whose false-match rate on the impostor pairs is <= ``fmr``."""
    neg = np.sort(scores[~same & np.isfinite(scores)])[::-1]
    n_neg = int((~same).sum())
    allowed = int(np.floor(fmr * n_neg))
    if neg.size <= allowed:
        return float(-np.inf)
    # Accept strictly above the (allowed+1)-th highest impostor score.
    return float(np.nextafter(neg[allowed], np.inf))


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """Share of genuine pairs accepted at the threshold for false-accept rate ``far``; a
    genuine pair without a face (``-inf``) is never accepted, even at a ``-inf`` threshold."""
    thr = threshold_at_fmr(scores, same, far)
    pos = scores[same]
    return float(np.mean(np.isfinite(pos) & (pos >= thr)))


def rates_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-match rate, false-non-match rate) at ``threshold``."""
    fmr = float(np.mean(scores[~same] >= threshold)) if (~same).any() else float("nan")
    fnmr = float(np.mean(scores[same] < threshold)) if same.any() else float("nan")
    return fmr, fnmr


def eer_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold where false-match and false-non-match rates are closest."""
    finite = np.unique(scores[np.isfinite(scores)])
    best, gap = 0.0, np.inf
    for t in finite:
        fmr, fnmr = rates_at(scores, same, float(t))
        if abs(fmr - fnmr) < gap:
            best, gap = float(t), abs(fmr - fnmr)
    return best


def embed_pair_images(pairs: list[Pair], root: Path, analyzer: Any) -> dict[str, np.ndarray | None]:
    """Largest-face embedding of every image named in ``pairs`` (paths relative to ``root``);
    ``None`` where no face is found or the file cannot be read."""
    return {
        rel: largest_face(root / rel, analyzer)[0]
        for rel in sorted({p.img1 for p in pairs} | {p.img2 for p in pairs})
    }


def largest_face(path: Path, analyzer: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(embedding (d,), box (4,) x1,y1,x2,y2 px) of the largest face in the image file at ``path``,
    decoded and analysed as ``facestream compare`` does; (None, None) where no face is found
    or the file cannot be read."""
    from facestream.errors import FacestreamError
    from facestream.imageio import load_image_file

    try:
        batch = analyzer.analyze([load_image_file(path).rgb])[0].largest_first()
    except FacestreamError:
        return None, None
    if not len(batch) or batch.embeddings is None:
        return None, None
    return batch.embeddings[0], batch.boxes[0]


def pair_cosines(emb: dict[str, np.ndarray | None], pairs: list[Pair]) -> np.ndarray:
    """(n,) cosine of each pair's embeddings; -inf where either face is missing."""
    s = np.full(len(pairs), -np.inf)
    for i, p in enumerate(pairs):
        a, b = emb.get(p.img1), emb.get(p.img2)
        if a is not None and b is not None:
            s[i] = float(a @ b)
    return s
