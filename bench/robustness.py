"""Verification on degraded copies of the unflagged PAIRS.tsv images: facestream vs face_recognition.

Every image named by an unflagged pair is degraded in a temporary directory at run time
(nothing is written into the repository) and both pipelines read the same files:

- the *base*: the image decoded (EXIF orientation applied, alpha on white) and, if larger,
  downscaled to :data:`BASE_MAX_SIDE_PX` on its longer side (this benchmark is about
  degradation, not resolution: full-resolution stills are ``bench.detect_stills``' job), saved
  as JPEG quality 95. Every variant starts from it; ``original`` is the base itself;
- ``tight``: a square crop to the face box (side = the box's longer side), where the box is
  found by stock facenet-pytorch MTCNN on the base (fixed third-party code, so the crops do
  not move when facestream's detector changes; an image where it finds nothing is not
  cropped); ``tight150`` / ``tight80``: that crop downscaled to 150x150 / 80x80 px (ID-card /
  booking-photo sizes); ``tight_grey150``: the 150 px crop in greyscale;
- ``grey``, ``jpeg30`` (JPEG quality 30), ``blur1.5`` (Gaussian, sigma 1.5 px), ``rot+15`` /
  ``rot-15`` (degrees, canvas expanded, corners black), ``cmyk`` (a CMYK JPEG), ``exif_rot``
  (pixels stored rotated 90 degrees with EXIF orientation 6, which says how to turn them back).

facestream reads each file as ``facestream compare`` does (``load_image_file`` then the still
analyzer, default config); face_recognition reads it as its users do
(``face_recognition.load_image_file``, which ignores EXIF orientation). Each takes the
largest face.

Per variant: failure-to-detect rate (images without a face), 10-fold accuracy with a pair
that lacks a face counted WRONG (``accuracy``; the issue's convention), 10-fold accuracy on
the pairs where both faces were found (``accuracy_both_found``, each pipeline its own
subset), TAR@FAR=1e-3 (a genuine pair without a face is rejected), and the ratios to the
peer. ``ftd_vs_peer`` is (misses + 1) / (peer misses + 1): at most 1.0 exactly when
facestream misses no more images than the peer.

Per-image results are cached (``$FACESTREAM_CACHE_DIR/bench`` or ``~/.cache/facestream/bench``),
keyed by a fingerprint of the pipeline's code and config and of the variant generator, so a
rerun only computes what changed.

    nice -n 10 python -m bench.robustness [--quick] [--no-cache] [--variants a,b]
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from bench.common import (
    REPO,
    distance_scores,
    faces_dir,
    parser,
    peer_largest_face,
    print_ratios,
    print_table,
    setup_logging,
    write_result,
)
from facestream.atomic import write_atomic
from facestream.evaluation import (
    Pair,
    kfold_accuracy,
    largest_face,
    pair_cosines,
    read_pairs,
    tar_at_far,
)
from facestream.imageio import load_image_file

log = logging.getLogger("bench.robustness")

#: Longer side of the base every variant is made from (larger images are downscaled).
BASE_MAX_SIDE_PX = 800
#: JPEG quality of every written file except ``jpeg30``'s.
SAVE_QUALITY = 95
#: Bumped whenever a variant's pixels change: part of every cache key.
GENERATOR_VERSION = 3

Box = tuple[float, float, float, float]
PIPELINES = ("facestream", "face_recognition")


# ------------------------------------------------------------------------------------------------
# the variants


def base_image(rgb: np.ndarray, max_side_px: int = BASE_MAX_SIDE_PX) -> Image.Image:
    """(H, W, 3) uint8 -> RGB image whose longer side is at most ``max_side_px`` (Lanczos)."""
    img = Image.fromarray(rgb, "RGB")
    longest = max(img.size)
    if longest > max_side_px:
        s = max_side_px / longest
        img = img.resize(
            (max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.LANCZOS
        )
    return img


def square_crop_box(box: Box | None, width: int, height: int) -> tuple[int, int, int, int]:
    """A square (left, top, right, bottom) around ``box``'s centre, side = its longer side,
    moved (and if need be shrunk) to lie inside a ``width`` x ``height`` image; the whole
    image when ``box`` is None."""
    if box is None:
        return 0, 0, width, height
    x1, y1, x2, y2 = box
    side = min(max(x2 - x1, y2 - y1), width, height)
    side_i = max(1, round(side))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(min(max(round(cx - side_i / 2), 0), width - side_i))
    top = int(min(max(round(cy - side_i / 2), 0), height - side_i))
    return left, top, left + side_i, top + side_i


def _jpeg(img: Image.Image, quality: int = SAVE_QUALITY, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def _exif_rotated(img: Image.Image) -> bytes:
    # Orientation 6: the stored pixels must be turned 90 degrees clockwise to display, so
    # store them turned 90 degrees counter-clockwise.
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(img.transpose(Image.Transpose.ROTATE_90), exif=exif)


def _tight(img: Image.Image, box: Box | None) -> Image.Image:
    return img.crop(square_crop_box(box, img.width, img.height))


def _small(img: Image.Image, box: Box | None, side: int) -> Image.Image:
    return _tight(img, box).resize((side, side), Image.Resampling.LANCZOS)


#: name -> (what it is, maker: (base, face box or None) -> encoded file bytes). Every file is a JPEG.
VARIANTS: dict[str, tuple[str, Callable[[Image.Image, Box | None], bytes]]] = {
    "original": ("the base (<= 800 px), JPEG q95", lambda im, b: _jpeg(im)),
    "tight": ("square crop to the face box", lambda im, b: _jpeg(_tight(im, b))),
    "tight150": ("tight crop at 150x150 px", lambda im, b: _jpeg(_small(im, b, 150))),
    "tight80": ("tight crop at 80x80 px", lambda im, b: _jpeg(_small(im, b, 80))),
    "tight_grey150": ("tight crop, 150x150, greyscale", lambda im, b: _jpeg(_small(im, b, 150).convert("L"))),
    "grey": ("greyscale (an L-mode JPEG)", lambda im, b: _jpeg(im.convert("L"))),
    "jpeg30": ("JPEG quality 30", lambda im, b: _jpeg(im, quality=30)),
    "blur1.5": ("Gaussian blur, sigma 1.5 px", lambda im, b: _jpeg(im.filter(ImageFilter.GaussianBlur(1.5)))),
    "rot+15": (
        "rotated 15 deg counter-clockwise",
        lambda im, b: _jpeg(im.rotate(15, Image.Resampling.BICUBIC, expand=True)),
    ),
    "rot-15": (
        "rotated 15 deg clockwise",
        lambda im, b: _jpeg(im.rotate(-15, Image.Resampling.BICUBIC, expand=True)),
    ),
    "cmyk": ("CMYK JPEG", lambda im, b: _jpeg(im.convert("CMYK"))),
    "exif_rot": ("pixels rotated, EXIF orientation 6", lambda im, b: _exif_rotated(im)),
}


def make_variant(name: str, base: Image.Image, box: Box | None) -> bytes:
    """The encoded JPEG of variant ``name`` of ``base`` (``box``: the reference face box, px)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}")
    return VARIANTS[name][1](base, box)


# ------------------------------------------------------------------------------------------------
# per-image results, cached


def _cache_dir() -> Path:
    root = os.environ.get("FACESTREAM_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "facestream") / "bench"


def _fingerprint(parts: list[str], files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
    for f in sorted(files):
        h.update(f.relative_to(REPO).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


#: ``--predictor-start``: overrides ``embed.predictor_start`` (None: the config default)
_OPTIONS: dict[str, str | None] = {"predictor_start": None}


def analyzer_config() -> Any:
    """The default analyzer config on the CPU with one torch thread: on this shared 2-core
    machine two spinning torch threads run several times slower under load; the thread count
    does not change any result."""
    from facestream.config import AnalyzerConfig, DeviceConfig, EmbedConfig

    start = _OPTIONS["predictor_start"]
    embed = EmbedConfig() if start is None else EmbedConfig(predictor_start=start)
    return AnalyzerConfig(device=DeviceConfig(device="cpu", torch_threads=1), embed=embed)


def facestream_fingerprint() -> str:
    """Changes whenever code or config (other than the device) on facestream's still path changes."""
    cfg = analyzer_config()
    box_map = REPO / "models" / "dlib_box_map.py"  # only read with predictor_start "dlib_box"
    files = [
        *(
            f
            for f in (REPO / "models").rglob("*.py")
            if f != box_map or cfg.embed.predictor_start == "dlib_box"
        ),
        REPO / "facestream" / "imageio.py",
        REPO / "facestream" / "types.py",
        REPO / "facestream" / "evaluation.py",
    ]
    return _fingerprint([f"g{GENERATOR_VERSION}", cfg.model_dump_json(exclude={"device"})], files)


def peer_fingerprint() -> str:
    import importlib.metadata as md

    import dlib

    return _fingerprint([f"g{GENERATOR_VERSION}", md.version("face_recognition"), dlib.__version__], [])


class ResultCache:
    """``"variant|image" -> {"emb": [...] | None, "box": [...] | None}`` in JSON files.

    Written to ``<stem><suffix>.json``; read from every ``<stem>*.json`` (the shards of a
    ``--shard`` run merge).
    """

    def __init__(self, directory: Path | None, stem: str, suffix: str = "") -> None:
        self.path = None if directory is None else directory / f"{stem}{suffix}.json"
        self.data: dict[str, dict[str, Any]] = {}
        for f in [] if directory is None else sorted(directory.glob(f"{stem}*.json")):
            try:
                self.data.update(json.loads(f.read_text()))
            except (OSError, ValueError) as e:
                log.warning("ignoring unreadable cache %s (%s)", f, e)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, emb: np.ndarray | None, box: np.ndarray | None) -> None:
        self.data[key] = {
            "emb": None if emb is None else [float(v) for v in emb],
            "box": None if box is None else [float(v) for v in box],
        }

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.data))


def peer_files(paths: list[Path]) -> list[tuple[np.ndarray | None, np.ndarray | None, float]]:
    """face_recognition on each file, read as its users read files (no EXIF orientation):
    (encoding, box, seconds) per file. Runs in a worker process beside facestream."""
    import face_recognition

    out = []
    for p in paths:
        t0 = time.perf_counter()
        e, b = peer_largest_face(face_recognition.load_image_file(str(p)))
        out.append((e, b, time.perf_counter() - t0))
    return out


def torch_threads_one() -> None:
    import torch

    torch.set_num_threads(1)


@dataclass
class Pipelines:
    """The two pipelines under test plus the reference box finder, created lazily."""

    _analyzer: Any = None
    _ref: Any = None

    def facestream(self, path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self._analyzer is None:
            from models.analyzer import FaceAnalyzer

            self._analyzer = FaceAnalyzer(analyzer_config())
        return largest_face(path, self._analyzer)

    def reference_box(self, base: Image.Image) -> Box | None:
        """Largest face box of stock facenet-pytorch MTCNN (its defaults) on the base."""
        if self._ref is None:
            import torch
            from facenet_pytorch import MTCNN

            self._ref = MTCNN(keep_all=True, device=torch.device("cpu"))
        boxes, _ = self._ref.detect(base)
        if boxes is None or len(boxes) == 0:
            return None
        b = max(boxes, key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])


# ------------------------------------------------------------------------------------------------
# scoring


def variant_metrics(
    emb: dict[str, np.ndarray | None], pairs: list[Pair], scores: np.ndarray
) -> dict[str, float]:
    same = np.array([p.same for p in pairs])
    images = sorted({p.img1 for p in pairs} | {p.img2 for p in pairs})
    missed = sum(emb.get(i) is None for i in images)
    acc, std = kfold_accuracy(scores, same, missing_wrong=True)
    acc_inf, _ = kfold_accuracy(scores, same)
    found = np.isfinite(scores)
    acc_found, _ = kfold_accuracy(scores[found], same[found]) if found.any() else (float("nan"), 0.0)
    return {
        "images": len(images),
        "missed_images": int(missed),
        "ftd_rate": missed / max(1, len(images)),
        "accuracy": acc,
        "accuracy_std": std,
        "accuracy_missing_as_different": acc_inf,
        "pairs_both_found": int(found.sum()),
        "accuracy_both_found": acc_found,
        "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3),
        "tar_at_far_1e-3_both_found": tar_at_far(scores[found], same[found], 1e-3)
        if found.any()
        else float("nan"),
    }


def main() -> None:
    setup_logging()
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-cache", action="store_true", help="recompute every image (and do not save)")
    p.add_argument("--variants", default="", help="comma-separated subset of: " + ", ".join(VARIANTS))
    p.add_argument(
        "--only",
        choices=PIPELINES,
        help="only fill this pipeline's cache (no scoring, no result file): to run pipelines apart",
    )
    p.add_argument(
        "--shard", default="0/1", help="I/N: with --only, only every N-th image from the I-th (parallel runs)"
    )
    p.add_argument(
        "--predictor-start",
        choices=("detector_box", "dlib_box"),
        help="facestream's embed.predictor_start (default: its config default)",
    )
    args = p.parse_args()
    _OPTIONS["predictor_start"] = args.predictor_start
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    if not 0 <= shard < n_shards or (n_shards > 1 and not args.only):
        raise SystemExit(f"--shard {args.shard}: need 0 <= I < N, and --only when N > 1")
    names = [v for v in args.variants.split(",") if v] or list(VARIANTS)
    for n in names:
        if n not in VARIANTS:
            raise SystemExit(f"unknown variant {n!r}; expected one of {', '.join(VARIANTS)}")
    root = faces_dir()
    pairs = read_pairs(root / "PAIRS.tsv")
    if args.quick:  # every 4th image and the pairs among them (~35 images, ~65 pairs)
        keep = set(sorted({p.img1 for p in pairs} | {p.img2 for p in pairs})[::4])
        pairs = [p for p in pairs if p.img1 in keep and p.img2 in keep]
    images = sorted({p.img1 for p in pairs} | {p.img2 for p in pairs})
    log.info("%d pairs over %d images, %d variants", len(pairs), len(images), len(names))

    cdir = None if args.no_cache else _cache_dir()
    fs_fp, peer_fp = facestream_fingerprint(), peer_fingerprint()
    sfx = f"-s{shard}of{n_shards}" if n_shards > 1 else ""
    caches = {
        "facestream": ResultCache(cdir, f"robustness-facestream-{fs_fp}", sfx),
        "face_recognition": ResultCache(cdir, f"robustness-face_recognition-{peer_fp}", sfx),
        "ref": ResultCache(cdir, f"robustness-refbox-g{GENERATOR_VERSION}", sfx),
    }
    running = (args.only,) if args.only else PIPELINES

    def save() -> None:
        # only what this process computes: another process may be filling the other caches
        for k in (*running, "ref"):
            caches[k].save()

    pipes = Pipelines()
    torch_threads_one()
    emb: dict[str, dict[str, dict[str, np.ndarray | None]]] = {k: {v: {} for v in names} for k in PIPELINES}
    seconds = {k: 0.0 for k in PIPELINES}
    computed = {k: 0 for k in PIPELINES}
    uncropped = done = 0
    spawn = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="facestream-robustness-") as tmp,
        ProcessPoolExecutor(1, mp_context=spawn) as peer_pool,
    ):
        for n_img, rel in enumerate(images):
            if n_img % n_shards != shard:
                continue
            todo = {
                k: [n for n in names if k in running and caches[k].get(f"{n}|{rel}") is None]
                for k in PIPELINES
            }
            needed = [n for n in names if any(n in t for t in todo.values())]
            if needed:
                base = base_image(load_image_file(root / rel).rgb)
                if caches["ref"].get(rel) is None:
                    box = pipes.reference_box(base)
                    caches["ref"].put(rel, None, None if box is None else np.array(box))
                rbox = caches["ref"].data[rel]["box"]
                files: dict[str, Path] = {}
                for name in needed:
                    files[name] = Path(tmp) / f"{name}-{n_img}.jpg"
                    files[name].write_bytes(make_variant(name, base, None if rbox is None else tuple(rbox)))
                # face_recognition in its own process while facestream runs here
                peer_names = todo["face_recognition"]
                fut = peer_pool.submit(peer_files, [files[n] for n in peer_names]) if peer_names else None
                for name in todo["facestream"]:
                    t0 = time.perf_counter()
                    e, b = pipes.facestream(files[name])
                    seconds["facestream"] += time.perf_counter() - t0
                    computed["facestream"] += 1
                    caches["facestream"].put(f"{name}|{rel}", e, b)
                if fut is not None:
                    for name, (e, b, t) in zip(peer_names, fut.result(), strict=True):
                        seconds["face_recognition"] += t
                        computed["face_recognition"] += 1
                        caches["face_recognition"].put(f"{name}|{rel}", e, b)
                for f in files.values():
                    f.unlink()
            for k in running:
                for name in names:
                    hit = caches[k].data[f"{name}|{rel}"]
                    emb[k][name][rel] = None if hit["emb"] is None else np.asarray(hit["emb"], np.float32)
            uncropped += caches["ref"].data[rel]["box"] is None
            done += 1
            if done % 5 == 0:
                save()
                log.info(
                    "%d/%d images; computed %s in %s s",
                    n_img + 1,
                    len(images),
                    computed,
                    {k: round(v) for k, v in seconds.items()},
                )

    save()
    if args.only:
        log.info("filled the %s cache (shard %d of %d); no result file written", args.only, shard, n_shards)
        return
    per: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    ratios: dict[str, float] = {}
    for name in names:
        per[name] = {}
        for k in PIPELINES:
            s = (
                pair_cosines(emb[k][name], pairs)
                if k == "facestream"
                else distance_scores(emb[k][name], pairs)
            )
            per[name][k] = variant_metrics(emb[k][name], pairs, s)
        ours, peer = per[name]["facestream"], per[name]["face_recognition"]
        # a ratio to a peer that scored 0 is left out (undefined), not written as a huge number
        vs_peer = {f"{m}_vs_peer": ours[m] / peer[m] for m in ("accuracy", "tar_at_far_1e-3") if peer[m] > 0}
        vs_peer["ftd_vs_peer"] = (ours["missed_images"] + 1) / (peer["missed_images"] + 1)
        per[name]["ratios"] = vs_peer
        for r, v in vs_peer.items():
            ratios[f"{r}_{name}"] = v
        for k in PIPELINES:
            got = per[name][k]
            rows.append(
                [
                    name,
                    k,
                    f"{got['missed_images']}/{got['images']}",
                    got["accuracy"],
                    got["accuracy_both_found"],
                    got["tar_at_far_1e-3"],
                    got["tar_at_far_1e-3_both_found"],
                ]
            )
    summary = {
        "robust_accuracy_vs_peer_min": min(
            per[n]["ratios"].get("accuracy_vs_peer", float("inf")) for n in names
        ),
        "robust_ftd_vs_peer_max": max(per[n]["ratios"]["ftd_vs_peer"] for n in names),
    }
    ratios = {**summary, **ratios}
    print_table(
        "Verification on degraded copies (a pair without a face counts wrong)",
        [
            "variant",
            "pipeline",
            "no face",
            "acc(10-fold)",
            "acc both found",
            "TAR@FAR=1e-3",
            "TAR both found",
        ],
        rows,
    )
    targets: dict[str, str | float] = {"robust_accuracy_vs_peer_min": 1.0, "robust_ftd_vs_peer_max": "<= 1.0"}
    print_ratios(ratios, targets)
    medians = {f"{k}_s_per_image": seconds[k] / computed[k] for k in PIPELINES if computed[k]}
    out = write_result(
        "robustness",
        ratios=ratios,
        targets=targets,
        medians=medians,
        details={
            "pairs": len(pairs),
            "genuine": int(sum(p.same for p in pairs)),
            "images": len(images),
            "base_max_side_px": BASE_MAX_SIDE_PX,
            "images_without_reference_box": uncropped,
            "variants": {n: VARIANTS[n][0] for n in names},
            "conventions": {
                "accuracy": "10-fold; a pair where either face is missing counts wrong",
                "accuracy_missing_as_different": "10-fold; a missing face scores -inf (judged different)",
                "accuracy_both_found": "10-fold on the pairs where the pipeline found both faces",
                "tar_at_far_1e-3": "a genuine pair with a missing face is rejected",
                "ftd_vs_peer": "(facestream misses + 1) / (face_recognition misses + 1)",
                "s_per_image": "mean over the images computed in this run (cache misses only)",
            },
            "per_variant": per,
            "computed_images": computed,
        },
        quick=args.quick,
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
