"""Index a gallery of photos into a collection with Ray Data:
``ray job submit -- python -m pipelines.index_gallery --collection C --source DIR_OR_MANIFEST``.

- **Read**: a directory (every .jpg/.jpeg/.png/.webp/.bmp under it, ExternalImageId = file stem)
  or a manifest (JSON lines ``{"path": ..., "external_image_id": ...}``, or one path a line).
- **Analyse**: ``map_batches`` over an actor pool of :class:`models.analyzer.FaceAnalyzer`s
  (weights loaded once per actor): detection, alignment and embedding of every face.
- **Write**: the driver upserts through the store actor (the one owner of a Milvus Lite file,
  see :mod:`pipelines.store_actor`). Face ids are ``uuid5(image sha256, face index)``, so a
  rerun over the same photos rewrites the same rows instead of adding duplicates.
- **Failures** (unreadable image, no face) go to a JSON-lines file, one per image; the job goes
  on. Progress is logged every batch. The summary is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facestream.audit import Actor, AuditLog
from facestream.config import AnalyzerConfig, DeviceConfig
from facestream.errors import FacestreamError, InvalidParameter
from pipelines.jobargs import add_job_args, setup_job_logging

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
#: namespace of the deterministic face ids (uuid5 of "<image sha256>:<face index>")
FACE_ID_NAMESPACE = uuid.UUID("6f1c2d0e-5a4b-4d8e-9b7a-3c2f1e0d9a8b")
EXTERNAL_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:")


@dataclass(frozen=True)
class GalleryItem:
    path: str
    external_image_id: str


def face_id_for(image_sha256: str, face_index: int) -> str:
    """The same photo and face always get the same id: reruns upsert, never duplicate."""
    return str(uuid.uuid5(FACE_ID_NAMESPACE, f"{image_sha256}:{face_index}"))


def _external_id(raw: str) -> str:
    cleaned = "".join(c if c in EXTERNAL_ID_CHARS else "_" for c in raw)[:255]
    return cleaned or "image"


def list_gallery(source: Path) -> list[GalleryItem]:
    """Items of a directory or a manifest file, in a stable order."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return [GalleryItem(str(p), _external_id(p.stem)) for p in files]
    if not source.is_file():
        raise InvalidParameter(f"gallery source {source} is neither a directory nor a manifest file")
    items: list[GalleryItem] = []
    for n, raw in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                path = Path(str(obj["path"]))
                ext = str(obj.get("external_image_id") or path.stem)
            except (ValueError, KeyError) as exc:
                raise InvalidParameter(f"{source}:{n}: not a manifest entry: {exc}") from None
        else:
            path, ext = Path(line), Path(line).stem
        if not path.is_absolute():
            path = source.parent / path
        items.append(GalleryItem(str(path), _external_id(ext)))
    return items


class FaceIndexer:
    """Ray Data actor: a batch of image paths -> one row per face (or per failed image)."""

    def __init__(self, analyzer: dict[str, Any]) -> None:
        from models.analyzer import FaceAnalyzer

        self.analyzer = FaceAnalyzer(AnalyzerConfig.model_validate(analyzer))
        _ = self.analyzer.embedder  # load weights once per actor, not per batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from facestream.imageio import load_image_file
        from facestream.rekognition import bbox_ratios

        rows: list[dict[str, Any]] = []
        ok: list[tuple[str, str, Any]] = []
        for path, ext in zip(batch["path"], batch["external_image_id"], strict=True):
            try:
                ok.append((str(path), str(ext), load_image_file(str(path))))
            except FacestreamError as exc:
                rows.append(_failure(str(path), str(ext), "", exc.message))
            except OSError as exc:
                rows.append(_failure(str(path), str(ext), "", f"{type(exc).__name__}: {exc.strerror}"))
        if ok:
            frames = [img.rgb for _, _, img in ok]
            try:
                faces = self.analyzer.embed_batches(frames, self.analyzer.detect(frames))
            except Exception as exc:  # one bad batch must not stop the job: fail its images
                faces = None
                for path, ext, img in ok:
                    rows.append(_failure(path, ext, img.sha256, f"analysis failed: {type(exc).__name__}"))
            for (path, ext, img), fb in zip(ok, faces or [], strict=False):
                if len(fb) == 0 or fb.embeddings is None:
                    rows.append(_failure(path, ext, img.sha256, "no face found"))
                    continue
                for i in range(len(fb)):
                    rows.append(
                        {
                            "path": path,
                            "external_image_id": ext,
                            "image_sha256": img.sha256,
                            "face_index": i,
                            "error": "",
                            "bounding_box": list(bbox_ratios(fb.boxes[i], fb.image_width, fb.image_height)),
                            "confidence": float(fb.scores[i]) * 100.0,
                            "brightness": float(fb.brightness[i]),
                            "sharpness": float(fb.sharpness[i]),
                            "embedding": np.asarray(fb.embeddings[i], dtype=np.float32).tolist(),
                        }
                    )
        return {k: [r[k] for r in rows] for k in _COLUMNS}


_COLUMNS = (
    "path",
    "external_image_id",
    "image_sha256",
    "face_index",
    "error",
    "bounding_box",
    "confidence",
    "brightness",
    "sharpness",
    "embedding",
)


def _failure(path: str, ext: str, sha: str, error: str) -> dict[str, Any]:
    return {
        "path": path,
        "external_image_id": ext,
        "image_sha256": sha,
        "face_index": -1,
        "error": error,
        "bounding_box": [0.0, 0.0, 0.0, 0.0],
        "confidence": 0.0,
        "brightness": 0.0,
        "sharpness": 0.0,
        "embedding": [],
    }


def analysed_rows(
    items: Sequence[GalleryItem],
    analyzer: AnalyzerConfig,
    *,
    batch_size: int,
    actors: int,
    cpus_per_actor: float,
) -> Iterator[dict[str, Any]]:
    """Rows of :class:`FaceIndexer` as Ray Data produces them (streaming, bounded memory)."""
    import ray.data

    rows = [{"path": it.path, "external_image_id": it.external_image_id} for it in items]
    source = ray.data.from_items(rows)
    ds = source.map_batches(
        FaceIndexer,
        fn_constructor_kwargs={"analyzer": analyzer.model_dump(mode="json")},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        batch_format="numpy",
    )
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        n = len(batch["path"])
        for i in range(n):
            yield {k: batch[k][i] for k in _COLUMNS}


def index_gallery(
    collection: str,
    source: Path,
    *,
    store: Any,
    failures_path: Path,
    audit: AuditLog,
    actor: Actor,
    analyzer: AnalyzerConfig,
    batch_size: int = 8,
    actors: int = 1,
    cpus_per_actor: float = 1.0,
    upsert_rows: int = 256,
) -> dict[str, Any]:
    """Index every face of every photo of ``source``; per-image failures go to ``failures_path``."""
    from facestream.store import FaceRecord
    from pipelines.store_actor import call

    info = call(store.describe_collection.remote(collection), 60)
    items = list_gallery(source)
    log.info("indexing %s images from %s into %r with %s actor(s)", len(items), source, collection, actors)
    t0 = time.monotonic()
    failures_path.parent.mkdir(parents=True, exist_ok=True)
    pending: list[FaceRecord] = []
    face_ids: list[str] = []
    images_done: set[str] = set()
    failed = 0
    now_ms = int(time.time() * 1000)

    def flush() -> None:
        if pending:
            # The same bytes under two names are one photo: its faces have the same ids
            # (uuid5 of the image's sha256), so one upsert of each is the whole of it.
            unique = list({r.face_id: r for r in pending}.values())
            face_ids.extend(call(store.add_faces.remote(collection, unique, model=info.model), 300))
            pending.clear()

    with failures_path.open("a", encoding="utf-8") as failures:
        for row in analysed_rows(
            items, analyzer, batch_size=batch_size, actors=actors, cpus_per_actor=cpus_per_actor
        ):
            path = str(row["path"])
            if path not in images_done:
                images_done.add(path)
                if len(images_done) % max(1, batch_size) == 0 or len(images_done) == len(items):
                    log.info(
                        "progress: %s/%s images, %s faces, %s failed, %.1f images/s",
                        len(images_done),
                        len(items),
                        len(face_ids) + len(pending),
                        failed,
                        len(images_done) / max(1e-9, time.monotonic() - t0),
                    )
            if row["error"]:
                failed += 1
                failures.write(
                    json.dumps({"path": path, "error": str(row["error"]), "ts": time.time()}) + "\n"
                )
                failures.flush()
                continue
            emb = np.asarray(row["embedding"], dtype=np.float32)
            pending.append(
                FaceRecord(
                    face_id=face_id_for(str(row["image_sha256"]), int(row["face_index"])),
                    external_image_id=str(row["external_image_id"]),
                    image_id=str(row["image_sha256"]),
                    bounding_box=tuple(float(x) for x in row["bounding_box"]),  # type: ignore[arg-type]
                    confidence=float(row["confidence"]),
                    quality={"brightness": float(row["brightness"]), "sharpness": float(row["sharpness"])},
                    created_at_ms=now_ms,
                    embedding=emb,
                )
            )
            if len(pending) >= upsert_rows:
                flush()
        flush()
    elapsed = time.monotonic() - t0
    audit.append(
        actor=actor,
        operation="IndexFaces",
        purpose="gallery indexing job",
        inputs={"collection": collection, "source": str(source), "images": len(items)},
        results={"face_ids": face_ids, "failed_images": failed},
    )
    summary = {
        "collection": collection,
        "images": len(items),
        "faces_indexed": len(face_ids),
        "failed_images": failed,
        "failures_path": str(failures_path),
        "elapsed_s": round(elapsed, 3),
        "images_per_s": round(len(items) / elapsed, 3) if elapsed > 0 else None,
    }
    log.info("done: %s", summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    from facestream.paths import default_home
    from pipelines.config import RuntimeConfig

    ap = argparse.ArgumentParser(
        prog="python -m pipelines.index_gallery", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--collection", required=True)
    ap.add_argument("--source", required=True, type=Path, help="directory of photos or manifest file")
    add_job_args(ap)
    ap.add_argument("--failures", type=Path, default=None, help="JSONL of failed images; default <home>/...")
    ap.add_argument("--create", action="store_true", help="create the collection if it does not exist")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    setup_job_logging(args.verbose)
    if not 1 <= args.batch_size <= 256 or not 1 <= args.actors <= 64:
        sys.stderr.write("error: --batch-size must be 1-256 and --actors 1-64\n")
        return 2
    import ray

    from pipelines.gallery import ensure_collection
    from pipelines.runtime import ensure_ray
    from pipelines.store_actor import store_actor

    try:
        runtime = RuntimeConfig(
            home=args.home or default_home(), store_uri=args.store_uri, ray_address=args.ray_address
        )
        analyzer = AnalyzerConfig(device=DeviceConfig(device=args.device))
        started = ensure_ray(runtime.ray_address)
        try:
            store = store_actor(runtime.resolved_store_uri)
            if args.create:
                ensure_collection(store, args.collection, analyzer.embed.model.kind)
            failures = args.failures or runtime.state.index_failures(args.collection)
            summary = index_gallery(
                args.collection,
                args.source,
                store=store,
                failures_path=failures,
                audit=AuditLog(runtime.resolved_audit_path),
                actor=Actor(key_id="job:pipelines.index_gallery", role="operator"),
                analyzer=analyzer,
                batch_size=args.batch_size,
                actors=args.actors,
                cpus_per_actor=args.cpus_per_actor,
            )
        finally:
            if started:
                ray.shutdown()
    except FacestreamError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2 if exc.http_status < 500 else 1
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
