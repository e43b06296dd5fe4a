"""The face commands, Rekognition's image operations on the command line: ``detect``,
``embed``, ``compare``, ``collections``, ``index``, ``faces`` and ``search``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facestream.audit import Actor
from facestream.cli.context import Context, Subcommands, add_common_flags, add_profile_flag
from facestream.errors import FacestreamError, ModelUnavailable
from facestream.imageio import LoadedImage, load_image_file
from facestream.similarity import DEFAULT_MATCH_THRESHOLD

if TYPE_CHECKING:
    from facestream.thumbnails import ThumbnailStore


def cmd_detect(ctx: Context) -> None:
    def one(path: str, img: LoadedImage) -> None:
        out = ctx.ops.detect_faces(img, max_faces=ctx.args.max_faces)
        ctx.emit({"image": path, **out}, f"{path}: {len(out['FaceDetails'])} face(s)")

    ctx.per_image(ctx.args.images, one)


def cmd_embed(ctx: Context) -> None:
    from facestream.rekognition import bounding_box

    def one(path: str, img: LoadedImage) -> None:
        batch = ctx.analyzer.analyze([img.rgb])[0].largest_first()
        embeddings = batch.embeddings
        if embeddings is None:  # no face, or (a bug) a detection-only batch
            if len(batch):
                raise ModelUnavailable(f"model {ctx.analyzer.model_name!r} returned faces without embeddings")
            embeddings = np.zeros((0, 0), np.float32)
        faces = [
            {
                "BoundingBox": bounding_box(batch.boxes[i], batch.image_width, batch.image_height),
                "Confidence": round(float(batch.scores[i]) * 100.0, 5),
                "Embedding": [round(float(v), 7) for v in embeddings[i]],
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
        from facestream.embedders import MODEL_DIMS

        if model not in MODEL_DIMS:
            from facestream.errors import InvalidParameter

            raise InvalidParameter(f"model {model!r}: expected one of {sorted(MODEL_DIMS)}")
        info = st.create_collection(
            a.name, model=model, dim=MODEL_DIMS[model], retention_days=a.retention_days
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
    from facestream.quality import QualityFilter

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


def _thumbnails(ctx: Context) -> ThumbnailStore:
    """Enrolled-face thumbnails: deleted with their faces even when keeping new ones is off."""
    from facestream.thumbnails import ThumbnailStore

    return ThumbnailStore(ctx.settings.state.thumbnails)


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


def register(sub: Subcommands) -> None:
    p = sub.add_parser("detect", help="find faces (DetectFaces)")
    p.add_argument("images", nargs="+")
    p.add_argument("--max-faces", type=int, default=None, help="keep the K largest faces (default: all)")
    add_common_flags(p)
    p.set_defaults(fn=cmd_detect)

    p = sub.add_parser("embed", help="face embeddings, largest face first")
    p.add_argument("images", nargs="+")
    add_common_flags(p)
    p.set_defaults(fn=cmd_embed)

    p = sub.add_parser("compare", help="CompareFaces: the largest source face against every target face")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_MATCH_THRESHOLD,
        help=f"SimilarityThreshold 0-100 (default {DEFAULT_MATCH_THRESHOLD:g})",
    )
    add_common_flags(p)
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
        add_common_flags(q)
        q.set_defaults(fn=cmd_collections)
    q = csub.add_parser("list")
    add_common_flags(q)
    q.set_defaults(fn=cmd_collections)

    p = sub.add_parser("index", help="IndexFaces: add the faces of images to a collection")
    p.add_argument("collection")
    p.add_argument("images", nargs="+")
    p.add_argument("--external-id", help="ExternalImageId for every face (default: the file's stem)")
    p.add_argument("--max-faces", type=int, default=None)
    p.add_argument("--quality-filter", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"], default="AUTO")
    add_common_flags(p)
    p.set_defaults(fn=cmd_index)

    p = sub.add_parser("faces", help="list | delete faces of a collection")
    fsub = p.add_subparsers(dest="action", required=True)
    q = fsub.add_parser("list")
    q.add_argument("collection")
    q.add_argument("--max-results", type=int, default=100)
    q.add_argument("--next-token")
    add_common_flags(q, model=False)
    q.set_defaults(fn=cmd_faces)
    q = fsub.add_parser("delete")
    q.add_argument("collection")
    q.add_argument("face_ids", nargs="+")
    add_common_flags(q, model=False)
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
    add_common_flags(p)
    p.set_defaults(fn=cmd_search)
