"""``facestream models list|fetch``: which embedding models exist and getting their weights.

``fetch`` is the one code path that downloads anything, run by an operator on a machine with
network access; serving replicas only ever read verified local files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facestream.cli.context import Context, Subcommands, add_common_flags
from facestream.errors import InvalidParameter


def cmd_models(ctx: Context) -> None:
    from facestream.embedders import MODEL_DIMS

    a = ctx.args
    if a.action == "list":
        rows = [{"model": name, "dim": dim} for name, dim in MODEL_DIMS.items()]
        for r in rows:
            ctx.emit(r, f"{r['model']}  {r['dim']}-d")
        return
    if a.name != "facenet-vggface2":
        raise InvalidParameter(
            f"model {a.name!r} needs no download (dlib-resnet's weights ship in face_recognition_models)"
            if a.name == "dlib-resnet"
            else f"unknown model {a.name!r}; expected one of {sorted(MODEL_DIMS)}"
        )
    from models.embedders.facenet import WEIGHTS_SHA256, fetch_weights

    path = fetch_weights(Path(a.dest) if a.dest else None)
    ctx.emit({"model": a.name, "path": str(path), "sha256": WEIGHTS_SHA256}, f"{a.name}: {path}")


def register(sub: Subcommands) -> None:
    p: argparse.ArgumentParser = sub.add_parser("models", help="list embedding models | fetch their weights")
    msub = p.add_subparsers(dest="action", required=True)
    q = msub.add_parser("list")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_models)
    q = msub.add_parser("fetch", help="download and verify weights (needs network access)")
    q.add_argument("name", help="facenet-vggface2")
    q.add_argument("--dest", help="directory (default: the facestream cache, FACESTREAM_CACHE_DIR)")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_models)
