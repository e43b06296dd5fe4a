"""Embedding throughput on this CPU: the torch port of dlib's ResNet vs dlib's own
``compute_face_descriptor`` on the same aligned 150x150 chips, at batch 1 and batch 32.

    python -m bench.embed_throughput [--quick]
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch

from bench.common import faces_dir, median_time, parser, print_table, setup_logging, write_result
from facestream.imageio import load_image_file
from models.align import align_faces
from models.detector import MtcnnDetector
from models.device import choose_placement
from models.embedders.dlib_resnet import DlibResNetEmbedder

log = logging.getLogger("bench.embed_throughput")


def chips(n: int) -> torch.Tensor:
    """``n`` real aligned chips (cycling over the faces of a few photos)."""
    det = MtcnnDetector()
    emb_chip = DlibResNetEmbedder(placement=choose_placement("cpu", "fp32")).chip
    out = []
    paths = sorted((faces_dir() / "dlib/examples/faces").glob("*.jpg"))
    for p in paths:
        rgb = load_image_file(p).rgb
        d = det.detect([rgb])[0]
        out.append(align_faces(rgb, d.landmarks, emb_chip))
    all_chips = torch.cat(out)
    reps = int(np.ceil(n / all_chips.shape[0]))
    return all_chips.repeat(reps, 1, 1, 1)[:n].contiguous()


def main() -> None:
    setup_logging()
    args = parser(__doc__.splitlines()[0]).parse_args()
    repeats = 3 if args.quick else 7
    batch_sizes = [1, 32]
    data = chips(32)
    import dlib

    origin = importlib.util.find_spec("face_recognition_models").origin  # type: ignore[union-attr]
    dat = Path(str(origin)).parent / "models" / "dlib_face_recognition_resnet_model_v1.dat"
    dlib_net = dlib.face_recognition_model_v1(str(dat))
    np_chips = [np.ascontiguousarray(c.permute(1, 2, 0).numpy()) for c in data]

    variants = {
        "torch fp32": DlibResNetEmbedder(placement=choose_placement("cpu", "fp32"), channels_last=False),
        "torch fp32 channels-last": DlibResNetEmbedder(placement=choose_placement("cpu", "fp32")),
        "torch bf16 channels-last": DlibResNetEmbedder(placement=choose_placement("cpu", "bf16")),
    }
    rows = []
    ms_per_face: dict[str, dict[int, float]] = {}
    for bs in batch_sizes:
        sub = np_chips[:bs]
        t = median_time(lambda sub=sub: dlib_net.compute_face_descriptor(sub), repeats)  # type: ignore[misc]
        ms_per_face.setdefault("dlib compute_face_descriptor", {})[bs] = 1000 * t / bs
        for name, emb in variants.items():
            x = data[:bs]
            t = median_time(lambda emb=emb, x=x: emb.embed(x), repeats)  # type: ignore[misc]
            ms_per_face.setdefault(name, {})[bs] = 1000 * t / bs
    base = ms_per_face["dlib compute_face_descriptor"]
    for name, per in ms_per_face.items():
        rows.append([name, *[per[bs] for bs in batch_sizes], *[base[bs] / per[bs] for bs in batch_sizes]])
    print_table(
        "Embedding: ms per face (median) and speed-up over dlib",
        ["implementation", "ms/face b=1", "ms/face b=32", "x dlib b=1", "x dlib b=32"],
        rows,
    )
    best = min(v[32] for k, v in ms_per_face.items() if k.startswith("torch fp32"))
    ratios = {
        "embed_speedup_vs_dlib": base[32] / best,
        "embed_speedup_vs_dlib_bf16": base[32] / ms_per_face["torch bf16 channels-last"][32],
        "embed_speedup_vs_dlib_batch1": base[1]
        / min(v[1] for k, v in ms_per_face.items() if k.startswith("torch")),
    }
    out = write_result(
        "embed_throughput",
        ratios=ratios,
        targets={"embed_speedup_vs_dlib": ">= 3 (foundation), >= 10 (performance issue)"},
        details={"ms_per_face": ms_per_face, "repeats": repeats},
        quick=args.quick,
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
