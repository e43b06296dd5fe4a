"""Verification accuracy on the unflagged pairs of PAIRS.tsv: facestream vs face_recognition (dlib).

Both pipelines see the same images; each takes the largest face it finds. A pair where
either face is missing scores -inf (judged "different"), so detection misses cost accuracy.
Also prints the similarity anchors (facestream/similarity.py) measured on these pairs, and
the accuracy of the embedder under bf16 autocast.

    python -m bench.accuracy [--quick]
"""

from __future__ import annotations

import logging
import time

import numpy as np

from bench.common import (
    distance_scores,
    faces_dir,
    parser,
    peer_largest_face,
    print_ratios,
    print_table,
    setup_logging,
    verification_metrics,
    write_result,
)
from facestream.config import AnalyzerConfig, DeviceConfig, EmbedConfig
from facestream.evaluation import (
    Pair,
    eer_threshold,
    embed_pair_images,
    pair_cosines,
    rates_at,
    read_pairs,
    threshold_at_fmr,
)
from facestream.imageio import load_image_file
from facestream.similarity import cosine_to_similarity

log = logging.getLogger("bench.accuracy")


def facestream_embeddings(
    pairs: list[Pair], precision: str, flip: bool = False, predictor_start: str | None = None
) -> tuple[dict[str, np.ndarray | None], float]:
    from models.analyzer import FaceAnalyzer

    embed = EmbedConfig(flip_augment=flip)
    if predictor_start is not None:
        embed = embed.model_copy(update={"predictor_start": predictor_start})
    cfg = AnalyzerConfig(device=DeviceConfig(device="cpu", precision=precision), embed=embed)
    analyzer = FaceAnalyzer(cfg)
    t0 = time.perf_counter()
    out = embed_pair_images(pairs, faces_dir(), analyzer)
    return out, time.perf_counter() - t0


def peer_embeddings(paths: list[str]) -> tuple[dict[str, np.ndarray | None], float]:
    out: dict[str, np.ndarray | None] = {}
    t0 = time.perf_counter()
    for p in paths:
        img = load_image_file(faces_dir() / p).rgb  # same decoding (EXIF, modes) for both
        out[p] = peer_largest_face(img)[0]
    return out, time.perf_counter() - t0


def main() -> None:
    setup_logging()
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--predictor-start",
        choices=("detector_box", "dlib_box"),
        help="facestream's embed.predictor_start (default: its config default)",
    )
    args = p.parse_args()
    pairs = read_pairs(faces_dir() / "PAIRS.tsv")
    if args.quick:
        pairs = pairs[::4]
    same = np.array([p.same for p in pairs])
    paths = sorted({p.img1 for p in pairs} | {p.img2 for p in pairs})
    log.info(
        "%d pairs (%d genuine, %d impostor) over %d images", len(pairs), same.sum(), (~same).sum(), len(paths)
    )

    ours, t_ours = facestream_embeddings(pairs, "fp32", predictor_start=args.predictor_start)
    peer, t_peer = peer_embeddings(paths)
    s_ours = pair_cosines(ours, pairs)
    s_peer = distance_scores(peer, pairs)
    m_ours, m_peer = verification_metrics(s_ours, same), verification_metrics(s_peer, same)
    rows = [
        ["facestream dlib-resnet fp32", *[m_ours[k] for k in m_ours], t_ours / len(paths)],
        ["face_recognition (dlib)", *[m_peer[k] for k in m_peer], t_peer / len(paths)],
    ]
    details: dict[str, object] = {
        "pairs": len(pairs),
        "genuine": int(same.sum()),
        "images": len(paths),
        "facestream_fp32": m_ours,
        "face_recognition": m_peer,
    }
    # Accuracy per precision (bf16 autocast runs on AVX-512 bf16 / AMX), and flip augmentation.
    variants = [("bf16", "bf16", False)] + ([] if args.quick else [("fp32 + flip", "fp32", True)])
    if variants:
        for label, precision, flip in variants:
            emb, t = facestream_embeddings(pairs, precision, flip, args.predictor_start)
            m = verification_metrics(pair_cosines(emb, pairs), same)
            rows.append([f"facestream dlib-resnet {label}", *[m[k] for k in m], t / len(paths)])
            details[f"facestream_{label.replace(' + ', '_')}"] = m

    # Similarity anchors on these pairs (cosine), and what 80 / 99 mean here.
    c80 = eer_threshold(s_ours, same)
    c99 = threshold_at_fmr(s_ours, same, 0.0)
    imp = s_ours[~same & np.isfinite(s_ours)]
    c50 = (float(np.median(imp)) + c80) / 2
    sims = cosine_to_similarity("dlib-resnet", np.where(np.isfinite(s_ours), s_ours, -1.0))
    at80 = rates_at(sims, same, 80.0)
    at99 = rates_at(sims, same, 99.0)
    details["measured_anchors"] = {"c50": c50, "c80": c80, "c99": c99}
    details["rates_at_similarity"] = {
        "80": {"fmr": at80[0], "fnmr": at80[1]},
        "99": {"fmr": at99[0], "fnmr": at99[1]},
    }

    print_table(
        "Verification on unflagged PAIRS.tsv",
        ["pipeline", "acc(10-fold)", "std", "ROC AUC", "TAR@FAR=1e-3", "pairs w/o face", "s/image"],
        rows,
    )
    print_table(
        "Similarity scale on these pairs (dlib-resnet)",
        ["threshold", "false-match rate", "false-non-match rate"],
        [["Similarity 80", at80[0], at80[1]], ["Similarity 99", at99[0], at99[1]]],
    )
    log.info("measured anchors: c50=%.4f c80=%.4f c99=%.4f", c50, c80, c99)
    ratios = {
        "accuracy_vs_face_recognition": m_ours["accuracy_10fold"] / m_peer["accuracy_10fold"],
        "auc_vs_face_recognition": m_ours["roc_auc"] / m_peer["roc_auc"],
        "tar_at_far_1e-3_vs_face_recognition": m_ours["tar_at_far_1e-3"]
        / max(m_peer["tar_at_far_1e-3"], 1e-9),
        "speed_vs_face_recognition": t_peer / t_ours,
    }
    bf16 = details["facestream_bf16"]
    assert isinstance(bf16, dict)
    ratios["bf16_vs_fp32_accuracy"] = bf16["accuracy_10fold"] / m_ours["accuracy_10fold"]
    ratios["bf16_vs_fp32_tar_at_far_1e-3"] = bf16["tar_at_far_1e-3"] / max(m_ours["tar_at_far_1e-3"], 1e-9)
    targets: dict[str, str | float] = {"accuracy_vs_face_recognition": 1.0, "bf16_vs_fp32_accuracy": 0.999}
    print_ratios(ratios, targets)
    out = write_result(
        "accuracy",
        ratios=ratios,
        targets=targets,
        medians={
            "fp32_accuracy_10fold": m_ours["accuracy_10fold"],
            "face_recognition_accuracy_10fold": m_peer["accuracy_10fold"],
            "fp32_s_per_image": t_ours / len(paths),
            "face_recognition_s_per_image": t_peer / len(paths),
        },
        details=details,
        quick=args.quick,
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
