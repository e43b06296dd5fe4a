"""``facestream demo``: the whole path on the embedded defaults with no outside input.

The gallery is scikit-image's ``astronaut`` (NASA's public-domain portrait of Eileen
Collins). Probes are altered copies of it (mirrored, shrunk, rotated, darkened) and a
scene with no enrolled face; each is searched against the gallery and the matches printed.
``--gallery DIR`` enrols every image of a folder (ExternalImageId = file stem) instead.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from facestream.audit import Actor
from facestream.errors import CollectionExists, FacestreamError
from facestream.imageio import LoadedImage, decode_image, load_image_file

log = logging.getLogger(__name__)

DEMO_COLLECTION = "demo-watchlist"


def _encode(arr: np.ndarray) -> LoadedImage:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return decode_image(buf.getvalue(), name="demo")


def demo_probes() -> list[tuple[str, np.ndarray]]:
    """Altered copies of the astronaut and one scene without her."""
    from skimage import data

    astro = data.astronaut()
    img = Image.fromarray(astro)
    return [
        ("astronaut-mirrored", np.asarray(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))),
        ("astronaut-half-size", np.asarray(img.resize((256, 256), Image.Resampling.LANCZOS))),
        (
            "astronaut-rotated-12deg",
            np.asarray(img.rotate(12, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))),
        ),
        ("astronaut-darker", np.asarray(ImageEnhance.Brightness(img).enhance(0.55))),
        ("cat-no-face", np.asarray(Image.fromarray(data.chelsea()))),
    ]


def _gallery(ctx: Any) -> list[tuple[str, LoadedImage]]:
    if ctx.args.gallery:
        paths = sorted(
            p
            for p in Path(ctx.args.gallery).iterdir()
            if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
        )
        return [(p.stem, load_image_file(p)) for p in paths]
    from skimage import data

    return [("eileen-collins", _encode(data.astronaut()))]


def run_demo(ctx: Any) -> None:
    """Enrol the gallery, search the probes, print what was found (JSON lines with --json)."""
    from models.embedders import MODEL_DIMS

    actor = Actor.local_cli()
    purpose = ctx.args.purpose
    store = ctx.store
    model = ctx.analyzer.model_name
    try:
        store.create_collection(DEMO_COLLECTION, model=model, dim=MODEL_DIMS[model])
    except CollectionExists:
        # A previous demo run: start from a clean watchlist so the output is the same every time.
        store.delete_collection(DEMO_COLLECTION)
        store.create_collection(DEMO_COLLECTION, model=model, dim=MODEL_DIMS[model])
    for ext_id, img in _gallery(ctx):
        out = ctx.ops.index_faces(DEMO_COLLECTION, img, actor=actor, external_image_id=ext_id, max_faces=1)
        _say(
            ctx,
            {"event": "indexed", "ExternalImageId": ext_id, "faces": len(out["FaceRecords"])},
            f"enrolled {ext_id}: {len(out['FaceRecords'])} face",
        )
    for name, arr in demo_probes():
        try:
            res = ctx.ops.search_faces_by_image(
                DEMO_COLLECTION, _encode(arr), actor=actor, purpose=purpose, threshold=80.0, max_faces=3
            )
        except FacestreamError as exc:
            _say(ctx, {"event": "searched", "probe": name, "error": exc.to_dict()}, f"{name}: {exc.message}")
            continue
        matches = [
            {"ExternalImageId": m["Face"]["ExternalImageId"], "Similarity": m["Similarity"]}
            for m in res["FaceMatches"]
        ]
        human = ", ".join(f"{m['ExternalImageId']} ({m['Similarity']:.1f}%)" for m in matches) or "no match"
        _say(ctx, {"event": "searched", "probe": name, "matches": matches}, f"{name}: {human}")
    _say(
        ctx,
        {"event": "audit", "entries": ctx.audit.verify().entries, "log": str(ctx.audit.path)},
        f"audit log {ctx.audit.path}: {ctx.audit.verify().entries} entries, chain intact",
    )


def _say(ctx: Any, obj: dict[str, Any], human: str) -> None:
    sys.stdout.write((json.dumps(obj) if ctx.args.json else human) + "\n")
    sys.stdout.flush()
