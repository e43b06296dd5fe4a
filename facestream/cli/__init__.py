"""The ``facestream`` command line.

``--json`` output is a stable contract: one JSON object per line on stdout, logs on stderr.
Exit status: 0 success; 2 bad input (unreadable image, unknown collection, missing purpose,
invalid value) — other images of the same call still get their answers; 1 when a dependency
failed (store unavailable, model missing).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path
from typing import Any

from facestream.audit import Actor, AuditLog
from facestream.errors import FacestreamError
from facestream.imageio import LoadedImage, load_image_file
from facestream.settings import Settings, resolve_settings

log = logging.getLogger("facestream.cli")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _exit_code(exc: FacestreamError) -> int:
    return EXIT_BAD_INPUT if exc.http_status < 500 else EXIT_FAILED


class Context:
    """Lazily built pieces for one CLI invocation (the model loads only when needed)."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.settings: Settings = resolve_settings(
            store=getattr(args, "store", None),
            model=getattr(args, "model", None),
            device=getattr(args, "device", None),
            weights=getattr(args, "weights", None),
        )
        self.status = EXIT_OK

    @cached_property
    def analyzer(self) -> Any:
        from models.analyzer import FaceAnalyzer

        return FaceAnalyzer(self.settings.analyzer)

    @cached_property
    def store(self) -> Any:
        from facestream.store import FaceStore, StoreConfig

        store = FaceStore(StoreConfig(uri=self.settings.store_uri))
        self.stack.callback(store.close)
        return store

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.settings.audit_path)

    @cached_property
    def ops(self) -> Any:
        from facestream.operations import FaceOperations

        ops = FaceOperations(self.analyzer, self.store, self.audit)
        ops.attach_thumbnails(self.settings.home)
        return ops

    def emit(self, obj: dict[str, Any], human: str | None = None) -> None:
        if self.args.json or human is None:
            sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(human + "\n")
        sys.stdout.flush()

    def fail(self, exc: FacestreamError, **where: Any) -> None:
        self.status = max(self.status, _exit_code(exc))
        if self.args.json:
            self.emit({**where, "error": exc.to_dict()})
        else:
            place = " ".join(f"{v}" for v in where.values())
            sys.stderr.write(f"error: {place + ': ' if place else ''}{exc.message}\n")

    def per_image(self, paths: Sequence[str], fn: Callable[[str, LoadedImage], None]) -> None:
        """Run ``fn`` for each readable image; a bad one is reported and the rest go on."""
        for p in paths:
            try:
                fn(p, load_image_file(p))
            except FacestreamError as exc:
                self.fail(exc, image=p)


# --- commands ---------------------------------------------------------------------------------


def cmd_detect(ctx: Context) -> None:
    def one(path: str, img: LoadedImage) -> None:
        out = ctx.ops.detect_faces(img, max_faces=ctx.args.max_faces)
        ctx.emit({"image": path, **out}, f"{path}: {len(out['FaceDetails'])} face(s)")

    ctx.per_image(ctx.args.images, one)


def cmd_embed(ctx: Context) -> None:
    from facestream.rekognition import bounding_box

    def one(path: str, img: LoadedImage) -> None:
        batch = ctx.analyzer.analyze([img.rgb])[0].largest_first()
        faces = [
            {
                "BoundingBox": bounding_box(batch.boxes[i], batch.image_width, batch.image_height),
                "Confidence": round(float(batch.scores[i]) * 100.0, 5),
                "Embedding": [round(float(v), 7) for v in batch.embeddings[i]],
            }
            for i in range(len(batch))
        ]
        model = ctx.analyzer.model_name
        ctx.emit({"image": path, "model": model, "faces": faces}, f"{path}: {len(faces)} face(s) [{model}]")

    ctx.per_image(ctx.args.images, one)


def cmd_compare(ctx: Context) -> None:
    a = ctx.args
    try:
        src, tgt = load_image_file(a.source), load_image_file(a.target)
        out = ctx.ops.compare_faces(src, tgt, threshold=a.threshold)
    except FacestreamError as exc:
        ctx.fail(exc, source=a.source, target=a.target)
        return
    best = max((m["Similarity"] for m in out["FaceMatches"]), default=None)
    human = f"match: similarity {best:.2f}" if best is not None else "no match"
    ctx.emit({"source": a.source, "target": a.target, **out}, human)


def cmd_collections(ctx: Context) -> None:
    a = ctx.args
    st = ctx.store
    if a.action == "create":
        model = ctx.analyzer.model_name if a.model is None else a.model
        from models.embedders import MODEL_DIMS

        if model not in MODEL_DIMS:
            from facestream.errors import InvalidParameter

            raise InvalidParameter(f"model {model!r}: expected one of {sorted(MODEL_DIMS)}")
        info = st.create_collection(
            a.name, model=model, dim=MODEL_DIMS[model], retention_days=getattr(a, "retention_days", None)
        )
        ctx.audit.append(actor=Actor.local_cli(), operation="CreateCollection", inputs={"collection": a.name})
        ctx.emit(
            {
                "CollectionArn": f"facestream:collection/{a.name}",
                "FaceModelVersion": info.model,
                "StatusCode": 200,
            },
            f"created {a.name} ({info.model})",
        )
    elif a.action == "list":
        names = st.list_collections()
        models = [st.describe_collection(n).model for n in names]
        ctx.emit({"CollectionIds": names, "FaceModelVersions": models}, "\n".join(names) or "(none)")
    elif a.action == "describe":
        info = st.describe_collection(a.name)
        ctx.emit(
            {
                "CollectionARN": f"facestream:collection/{a.name}",
                "FaceCount": info.face_count,
                "FaceModelVersion": info.model,
                "CreationTimestamp": info.created_at / 1000.0,
                "RetentionDays": info.retention_days,
            },
            f"{a.name}: {info.face_count} faces, model {info.model}",
        )
    elif a.action == "delete":
        st.delete_collection(a.name)
        _thumbnails(ctx).delete_collection(a.name)
        ctx.audit.append(actor=Actor.local_cli(), operation="DeleteCollection", inputs={"collection": a.name})
        ctx.emit({"StatusCode": 200}, f"deleted {a.name}")


def cmd_index(ctx: Context) -> None:
    from models.quality import QualityFilter

    a = ctx.args
    ctx.store.describe_collection(a.collection)  # unknown collection: fail before loading models

    def one(path: str, img: LoadedImage) -> None:
        ext = a.external_id if a.external_id is not None else _external_id_from(path)
        out = ctx.ops.index_faces(
            a.collection,
            img,
            actor=Actor.local_cli(),
            external_image_id=ext,
            max_faces=a.max_faces,
            quality_filter=QualityFilter(a.quality_filter),
        )
        ctx.emit({"image": path, **out}, f"{path}: indexed {len(out['FaceRecords'])} face(s) as {ext}")

    ctx.per_image(a.images, one)


def _external_id_from(path: str) -> str:
    """A file's stem, reduced to Rekognition's ExternalImageId alphabet."""
    import re

    stem = re.sub(r"[^A-Za-z0-9_.\-:]", "_", Path(path).stem)[:255]
    return stem or "image"


def cmd_faces(ctx: Context) -> None:
    from facestream.operations import face_json

    a = ctx.args
    if a.action == "list":
        faces, token = ctx.store.list_faces(a.collection, max_results=a.max_results, next_token=a.next_token)
        ctx.emit(
            {"Faces": [face_json(f) for f in faces], "NextToken": token, "FaceModelVersion": None},
            "\n".join(f"{f.face_id} {f.external_image_id or ''}" for f in faces) or "(none)",
        )
    elif a.action == "delete":
        deleted = ctx.store.delete_faces(a.collection, a.face_ids)
        _thumbnails(ctx).delete(a.collection, deleted)
        ctx.audit.append(
            actor=Actor.local_cli(),
            operation="DeleteFaces",
            inputs={"collection": a.collection, "face_ids": a.face_ids},
            results={"deleted": deleted},
        )
        ctx.emit({"DeletedFaces": deleted}, f"deleted {len(deleted)} face(s)")


def _thumbnails(ctx: Context) -> Any:
    """Enrolled-face thumbnails: deleted with their faces even when keeping new ones is off."""
    from facestream.thumbnails import ThumbnailStore

    return ThumbnailStore(ctx.settings.home / "thumbnails")


def cmd_search(ctx: Context) -> None:
    from facestream.operations import check_purpose
    from facestream.profiles import resolve_profile

    a = ctx.args
    check_purpose(a.purpose)  # refuse before touching any image
    threshold = resolve_profile().threshold(a.threshold)
    ctx.store.describe_collection(a.collection)

    def one(path: str, img: LoadedImage) -> None:
        out = ctx.ops.search_faces_by_image(
            a.collection,
            img,
            actor=Actor.local_cli(),
            purpose=a.purpose,
            threshold=threshold,
            max_faces=a.max_faces,
        )
        human = "\n".join(
            f"{m['Similarity']:.2f} {m['Face']['ExternalImageId']} {m['Face']['FaceId']}"
            for m in out["FaceMatches"]
        )
        ctx.emit({"image": path, "collection": a.collection, **out}, human or f"{path}: no match")

    ctx.per_image([a.image], one)


def cmd_demo(ctx: Context) -> None:
    from facestream.cli.demo import run_demo

    run_demo(ctx)


# --- parser -----------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, *, store: bool = True, model: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    if store:
        p.add_argument("--store", help="Milvus Lite path or http://127.0.0.1:19530 (env FACESTREAM_STORE)")
    if model:
        p.add_argument("--model", choices=["dlib-resnet", "facenet-vggface2"], help="embedding model")
        p.add_argument("--device", help="auto, cpu, cuda or cuda:N (env FACESTREAM_DEVICE)")
        p.add_argument("--weights", help="local weights file for the model")


def add_profile_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        choices=["general", "public-safety"],
        help="deployment profile: threshold default and floor (flag > env FACESTREAM_PROFILE > general)",
    )
    p.set_defaults(profile_flag=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facestream", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("detect", help="find faces (DetectFaces)")
    p.add_argument("images", nargs="+")
    p.add_argument("--max-faces", type=int, default=None, help="keep the K largest faces (default: all)")
    _common(p)
    p.set_defaults(fn=cmd_detect)

    p = sub.add_parser("embed", help="face embeddings, largest face first")
    p.add_argument("images", nargs="+")
    _common(p)
    p.set_defaults(fn=cmd_embed)

    p = sub.add_parser("compare", help="CompareFaces: the largest source face against every target face")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--threshold", type=float, default=80.0, help="SimilarityThreshold 0-100 (default 80)")
    _common(p)
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("collections", help="create | list | describe | delete collections")
    csub = p.add_subparsers(dest="action", required=True)
    for action in ("create", "describe", "delete"):
        q = csub.add_parser(action)
        q.add_argument("name")
        if action == "create":
            q.add_argument(
                "--retention-days",
                type=int,
                help="delete faces older than this (enforced by "
                "`facestream retention enforce`; default: keep)",
            )
        _common(q)
        q.set_defaults(fn=cmd_collections)
    q = csub.add_parser("list")
    _common(q)
    q.set_defaults(fn=cmd_collections)

    p = sub.add_parser("index", help="IndexFaces: add the faces of images to a collection")
    p.add_argument("collection")
    p.add_argument("images", nargs="+")
    p.add_argument("--external-id", help="ExternalImageId for every face (default: the file's stem)")
    p.add_argument("--max-faces", type=int, default=None)
    p.add_argument("--quality-filter", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"], default="AUTO")
    _common(p)
    p.set_defaults(fn=cmd_index)

    p = sub.add_parser("faces", help="list | delete faces of a collection")
    fsub = p.add_subparsers(dest="action", required=True)
    q = fsub.add_parser("list")
    q.add_argument("collection")
    q.add_argument("--max-results", type=int, default=100)
    q.add_argument("--next-token")
    _common(q, model=False)
    q.set_defaults(fn=cmd_faces)
    q = fsub.add_parser("delete")
    q.add_argument("collection")
    q.add_argument("face_ids", nargs="+")
    _common(q, model=False)
    q.set_defaults(fn=cmd_faces)

    p = sub.add_parser("search", help="SearchFacesByImage: who is the largest face of IMAGE?")
    p.add_argument("collection")
    p.add_argument("image")
    p.add_argument("--purpose", required=True, help="why this search is made (case id or reason); audited")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="FaceMatchThreshold 0-100 (default: the profile's, 80 general / 99 public-safety)",
    )
    p.add_argument("--max-faces", type=int, default=10, help="at most K matches (default 10)")
    add_profile_flag(p)
    _common(p)
    p.set_defaults(fn=cmd_search)

    p = sub.add_parser("demo", help="the whole path on the embedded defaults, no outside input")
    p.add_argument("--purpose", required=True, help="why this demo search is made; audited")
    p.add_argument("--gallery", help="a folder of reference photos (default: scikit-image's astronaut)")
    add_profile_flag(p)
    _common(p)
    p.set_defaults(fn=cmd_demo)

    # Commands of the other layers register themselves here; their modules stay light at
    # import time (Ray, Serve and torch load only when a command runs).
    import importlib

    for module in _EXTENSIONS:
        importlib.import_module(module).register(sub, _common)
    return parser


#: modules with a ``register(subparsers, add_common_flags)`` function adding their commands.
_EXTENSIONS: tuple[str, ...] = (
    "facestream.cli.audit",
    "facestream.cli.models",
    "facestream.cli.privacy",
    "facestream.cli.accountability",
    "facestream.cli.review",
    "pipelines.evidence",
    "facestream.cli.api",
    "facestream.cli.streams",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with ExitStack() as stack:
        try:
            if getattr(args, "profile_flag", False):
                from facestream.profiles import apply_profile_flag

                apply_profile_flag(args.profile)
            ctx = Context(args, stack)
            args.fn(ctx)
            return ctx.status
        except FacestreamError as exc:
            if getattr(args, "json", False):
                sys.stdout.write(json.dumps({"error": exc.to_dict()}) + "\n")
            else:
                sys.stderr.write(f"error: {exc.message}\n")
            return _exit_code(exc)
    return EXIT_FAILED  # pragma: no cover - ExitStack does not swallow
