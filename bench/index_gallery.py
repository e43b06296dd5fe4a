"""Gallery indexing throughput: the Ray Data job (``pipelines.index_gallery``) vs a single-process
loop of the same model, and vs face_recognition's own loop (``load_image_file`` +
``face_encodings``), on the same photos. Images per second, including detection and
embedding of every face; the Ray run includes writing to Milvus Lite through the store actor.

    python -m bench.index_gallery [--quick] [--actors N]
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import faces_dir, parser, print_table, setup_logging, write_result
from facestream.audit import Actor, AuditLog
from facestream.config import AnalyzerConfig, DeviceConfig
from facestream.imageio import load_image_file

log = logging.getLogger("bench.index_gallery")


def gallery(root: Path, repeats: int) -> Path:
    """dlib's example faces, copied ``repeats`` times (distinct names, same bytes per copy)."""
    src = sorted((faces_dir() / "dlib/examples/faces").glob("*.jpg"))
    out = root / "gallery"
    out.mkdir()
    for r in range(repeats):
        for p in src:
            shutil.copy(p, out / f"{r:02d}_{p.name}")
    return out


def single_process(paths: list[Path], analyzer: AnalyzerConfig) -> dict[str, Any]:
    from models.analyzer import FaceAnalyzer

    a = FaceAnalyzer(analyzer)
    _ = a.embedder
    t0 = time.perf_counter()
    faces = 0
    for p in paths:
        rgb = load_image_file(p).rgb
        faces += len(a.embed_batches([rgb], a.detect([rgb]))[0])
    dt = time.perf_counter() - t0
    return {"images": len(paths), "faces": faces, "elapsed_s": dt, "images_per_s": len(paths) / dt}


def face_recognition_loop(paths: list[Path]) -> dict[str, Any]:
    import face_recognition

    t0 = time.perf_counter()
    faces = 0
    for p in paths:
        img = face_recognition.load_image_file(str(p))
        faces += len(face_recognition.face_encodings(img))
    dt = time.perf_counter() - t0
    return {"images": len(paths), "faces": faces, "elapsed_s": dt, "images_per_s": len(paths) / dt}


def ray_job(src: Path, workdir: Path, analyzer: AnalyzerConfig, actors: int) -> dict[str, Any]:
    import ray

    from facestream.localray import init_local_ray
    from pipelines.gallery import ensure_collection
    from pipelines.index_gallery import index_gallery
    from pipelines.store_actor import store_actor

    init_local_ray()
    try:
        store = store_actor(str(workdir / "milvus.db"))
        ensure_collection(store, "bench", analyzer.embed.model.kind, fresh=True)
        summary = index_gallery(
            "bench",
            src,
            store=store,
            failures_path=workdir / "failures.jsonl",
            audit=AuditLog(workdir / "audit.jsonl"),
            actor=Actor("bench:index_gallery", "operator"),
            analyzer=analyzer,
            batch_size=8,
            actors=actors,
        )
        ray.kill(store)
        return summary
    finally:
        ray.shutdown()


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--actors", type=int, default=2)
    args = ap.parse_args()
    setup_logging()
    analyzer = AnalyzerConfig(device=DeviceConfig(device="cpu"))
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        root = Path(tmp)
        src = gallery(root, 1 if args.quick else 4)
        paths = sorted(src.glob("*.jpg"))
        ray_res = ray_job(src, root, analyzer, args.actors)
        single = single_process(paths, analyzer)
        fr = face_recognition_loop(paths)
    ours = float(ray_res["images_per_s"])
    ratios = {
        "ray_vs_single_process": ours / single["images_per_s"],
        "ray_vs_face_recognition": ours / fr["images_per_s"],
    }
    print_table(
        "gallery indexing (images/s)",
        ["run", "images", "faces", "images/s"],
        [
            [
                f"ray data ({args.actors} actors, incl. store writes)",
                ray_res["images"],
                ray_res["faces_indexed"],
                ours,
            ],
            ["single process, same model", single["images"], single["faces"], single["images_per_s"]],
            ["face_recognition loop", fr["images"], fr["faces"], fr["images_per_s"]],
        ],
    )
    out = write_result(
        "index_gallery",
        ratios=ratios,
        targets={"ray_vs_single_process": "> 1 with more cores than one actor needs"},
        # the failures file lived in a temporary directory: no machine path in the result
        details={
            "ray": {k: v for k, v in ray_res.items() if k != "failures_path"},
            "single_process": single,
            "face_recognition": fr,
            "actors": args.actors,
        },
        quick=args.quick,
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
