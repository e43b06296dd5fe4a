"""Embedding throughput on this CPU: the torch port of dlib's ResNet vs dlib's own
``compute_face_descriptor`` on the same aligned 150x150 chips, over batch sizes.

Variants: fp32 NCHW, fp32 channels-last (the CPU default), bf16 autocast channels-last (AVX-512
bf16 / AMX where the CPU has them), and with ``--compile`` the fp32 channels-last model under
``torch.compile``. Accuracy per precision on the pairs: see bench/accuracy.py.

    python -m bench.embed_throughput [--quick] [--compile]
"""

from __future__ import annotations

import importlib.util
import logging
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bench.common import (
    faces_dir,
    parser,
    print_ratios,
    print_table,
    setup_logging,
    write_result,
)
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


def _embed_first(emb: DlibResNetEmbedder, data: torch.Tensor, bs: int) -> object:
    return emb.embed(data[:bs])


def _timed(fn: Callable[[int], object], bs: int) -> float:
    t0 = time.perf_counter()
    fn(bs)
    return time.perf_counter() - t0


def main() -> None:
    setup_logging()
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the fp32 model")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's); 1 compares one core with dlib's one core and "
        "resists a loaded machine, where spinning thread teams slow down many times",
    )
    args = p.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    batch_sizes = [1, 32] if args.quick else [1, 8, 16, 32, 64]
    data = chips(max(batch_sizes))
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
    if args.compile:
        compiled = DlibResNetEmbedder(placement=choose_placement("cpu", "fp32"))
        compiled.model = torch.compile(compiled.model)  # type: ignore[assignment]
        variants["torch fp32 channels-last compiled"] = compiled
    rows = []
    ms_per_face: dict[str, dict[int, float]] = {}

    # Round-robin over implementations, one repeat at a time: a change in the shared machine's
    # load then hits every implementation alike.
    def dlib_fn(bs: int) -> object:
        return dlib_net.compute_face_descriptor(np_chips[:bs])

    fns: dict[str, Callable[[int], object]] = {"dlib compute_face_descriptor": dlib_fn}
    for name, emb in variants.items():
        fns[name] = partial(_embed_first, emb, data)
    for bs in batch_sizes:
        times: dict[str, list[float]] = {name: [] for name in fns}
        for fn in fns.values():
            _timed(fn, bs)  # warm-up
        for _ in range(repeats):
            for name, fn in fns.items():
                times[name].append(_timed(fn, bs))
        for name, ts in times.items():
            ms_per_face.setdefault(name, {})[bs] = 1000 * statistics.median(ts) / bs
    base = ms_per_face["dlib compute_face_descriptor"]
    for name, per in ms_per_face.items():
        rows.append([name, *[per[bs] for bs in batch_sizes], *[base[bs] / per[bs] for bs in batch_sizes]])
    print_table(
        "Embedding: ms per face (median) and speed-up over dlib",
        [
            "implementation",
            *[f"ms/face b={bs}" for bs in batch_sizes],
            *[f"x dlib b={bs}" for bs in batch_sizes],
        ],
        rows,
    )
    # The fp32 default (channels-last) at the deployment's embed batch size (EmbedConfig.batch_size).
    default = ms_per_face["torch fp32 channels-last"]
    best_bs = min(batch_sizes, key=lambda bs: default[bs])
    bf16 = ms_per_face["torch bf16 channels-last"]
    ratios = {
        "embed_speedup_vs_dlib": base[32] / default[32],
        "embed_speedup_vs_dlib_bf16": base[32] / bf16[32],
        "embed_speedup_vs_dlib_batch1": base[1] / default[1],
        "bf16_vs_fp32_speedup": default[32] / bf16[32],
    }
    targets: dict[str, str | float] = {"embed_speedup_vs_dlib": 10.0, "embed_speedup_vs_dlib_bf16": 10.0}
    print_ratios(ratios, targets)
    out = write_result(
        "embed_throughput",
        ratios=ratios,
        targets=targets,
        medians={
            "dlib_ms_per_face_b32": base[32],
            "fp32_ms_per_face_b32": default[32],
            "bf16_ms_per_face_b32": bf16[32],
            "fp32_best_ms_per_face": default[best_bs],
        },
        details={
            "ms_per_face": ms_per_face,
            "repeats": repeats,
            "fp32_best_batch": best_bs,
            "torch_threads": torch.get_num_threads(),
        },
        quick=args.quick,
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
