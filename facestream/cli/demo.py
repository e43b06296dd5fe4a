"""``facestream demo``: the whole stream path on the embedded defaults with no outside input.

The watchlist is scikit-image's ``astronaut`` (NASA's public-domain portrait of Eileen
Collins). The stream is a short video made from it: the portrait drifting and zooming across
a 640x360 frame, then scikit-image's cat (no face). It is written with PyAV under
``<home>/demo/`` and run through a stream processor exactly as a camera would be: local Ray,
decode actor, the batched Serve face deployment, tracking, Milvus Lite search through the
store actor, match records to a JSON-lines sink, the audit log.

``--gallery DIR`` enrols every image of a folder (ExternalImageId = file stem) instead, and
``--source URL`` searches that stream or file instead of the generated clip.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facestream.audit import Actor
from facestream.cli.context import Context, Subcommands, add_common_flags, add_profile_flag
from facestream.cli.streams import runtime_from
from facestream.errors import InvalidParameter
from facestream.imageio import LoadedImage, load_image_file

if TYPE_CHECKING:
    from pipelines.config import ProcessorSettings, RuntimeConfig

log = logging.getLogger(__name__)

DEMO_COLLECTION = "demo-watchlist"
_FPS = 15
_SIZE = (640, 360)


def demo_clip(path: Path, seconds_face: float = 3.0, seconds_cat: float = 1.0) -> Path:
    """Write the demo video (H.264 MP4, 640x360, 15 fps) to ``path`` and return it."""
    import av
    from PIL import Image
    from skimage import data

    astro = Image.fromarray(data.astronaut())
    cat = Image.fromarray(data.chelsea())
    w, h = _SIZE
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=_FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        n_face, n_cat = int(seconds_face * _FPS), int(seconds_cat * _FPS)
        for i in range(n_face + n_cat):
            canvas = Image.new("RGB", _SIZE, (40, 48, 60))
            if i < n_face:
                side = int(220 + 80 * i / max(1, n_face - 1))  # zooming in
                tile = astro.resize((side, side))
                x = int(20 + (w - side - 40) * i / max(1, n_face - 1))  # drifting right
                canvas.paste(tile, (x, (h - side) // 2 if side < h else 0))
            else:
                canvas.paste(cat.resize((int(h * cat.width / cat.height), h)), (0, 0))
            frame = av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _gallery(gallery: str | None) -> list[tuple[str, LoadedImage]]:
    if gallery:
        d = Path(gallery)
        if not d.is_dir():
            raise InvalidParameter(f"--gallery {gallery}: not a directory")
        paths = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        if not paths:
            raise InvalidParameter(f"--gallery {gallery}: no .jpg/.jpeg/.png/.webp images")
        return [(p.stem, load_image_file(p)) for p in paths]
    import io

    from PIL import Image
    from skimage import data

    from facestream.imageio import decode_image

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return [("eileen-collins", decode_image(buf.getvalue(), name="astronaut"))]


def run_demo(ctx: Context) -> None:
    """Enrol the gallery, run one stream processor over the clip, print its match events."""
    from facestream.operations import check_purpose
    from pipelines.config import JsonlSinkConfig, ProcessorSettings
    from pipelines.gallery import enrol, ensure_collection
    from pipelines.urls import check_source, source_from_url

    a = ctx.args
    purpose = check_purpose(a.purpose)
    actor = Actor.local_cli()
    gallery = _gallery(a.gallery)
    runtime = runtime_from(ctx)
    demo_dir = runtime.state.demo.resolve()
    if a.source:
        source = source_from_url(a.source)
    else:
        source = source_from_url(str(demo_clip(demo_dir / "astronaut.mp4")))
        runtime = runtime.model_copy(update={"media_dirs": (*runtime.media_dirs, demo_dir)})
    check_source(source, list(runtime.media_dirs))
    events_path = demo_dir / "events.jsonl"
    events_path.unlink(missing_ok=True)
    from facestream.profiles import resolve_profile

    settings = ProcessorSettings(
        name="demo",
        source=source,
        collection=DEMO_COLLECTION,
        purpose=purpose,
        # `--profile`/FACESTREAM_PROFILE: public-safety matches at 99, not 80.
        threshold=resolve_profile().default_threshold,
        sinks=(JsonlSinkConfig(path=events_path),),
    )

    def enrol_gallery() -> None:
        # Runs inside the fleet's Ray session: the store actor is the only Milvus Lite owner.
        from pipelines.runtime import ensure_face_service
        from pipelines.store_actor import store_actor

        face = ensure_face_service(runtime.embedding, runtime.app_name)
        store = store_actor(runtime.resolved_store_uri)
        model = str(face.model_name.remote().result(timeout_s=120))
        # A clean watchlist every run, so the output is the same every time.
        ensure_collection(store, DEMO_COLLECTION, model, fresh=True)
        from facestream.thumbnails import ThumbnailStore

        thumbs = ThumbnailStore(ctx.settings.state.thumbnails)
        counts = enrol(face, store, DEMO_COLLECTION, gallery, audit=ctx.audit, actor=actor, thumbnails=thumbs)
        for label, n in counts.items():
            _say(
                ctx, {"event": "indexed", "ExternalImageId": label, "faces": n}, f"enrolled {label}: {n} face"
            )

    final = _run(runtime, settings, actor, enrol_gallery, a.duration_s)
    records = [json.loads(x) for x in events_path.read_text().splitlines()] if events_path.exists() else []
    for r in records:
        m = r["FaceSearchResponse"][0]["MatchedFaces"][0]
        stream = r["InputInformation"]["Stream"]
        obj = {
            "event": "match",
            "ExternalImageId": m["Face"].get("ExternalImageId"),
            "Similarity": m["Similarity"],
            "FrameOffsetInSeconds": stream["FrameOffsetInSeconds"],
            "TrackId": r["TrackId"],
            "Revision": r["Revision"],
            "record": r,
        }
        _say(
            ctx,
            obj,
            f"match: {obj['ExternalImageId']} ({m['Similarity']:.1f}%) at "
            f"{stream['FrameOffsetInSeconds']:.2f}s, track {r['TrackId']} rev {r['Revision']}",
        )
    counters = final.get("Counters", {})
    _say(
        ctx,
        {
            "event": "stream",
            "Status": final.get("Status"),
            "StatusMessage": final.get("StatusMessage"),
            "Counters": counters,
            "events_file": str(events_path),
        },
        f"stream {final.get('Status')} ({final.get('StatusMessage')}): {counters.get('analysed', 0)} frames "
        f"analysed, {len(records)} match record(s) in {events_path}",
    )
    verified = ctx.audit.verify()
    _say(
        ctx,
        {"event": "audit", "entries": verified.entries, "ok": verified.ok, "log": str(ctx.audit.path)},
        f"audit log {ctx.audit.path}: {verified.entries} entries, "
        + ("chain intact" if verified.ok else f"BROKEN at {verified.first_bad_seq}"),
    )


def _run(
    runtime: RuntimeConfig,
    settings: ProcessorSettings,
    actor: Actor,
    before: Callable[[], None],
    duration_s: float | None,
) -> dict[str, Any]:
    """One Ray session: enrol the gallery (``before``), then run the processor to its end."""
    from pipelines.runtime import ensure_ray
    from pipelines.stream import run_fleet

    started = ensure_ray(runtime.ray_address)
    try:
        before()
        final: dict[str, Any] = run_fleet(
            runtime, [settings], actor=actor, duration_s=duration_s, resume=False
        )["demo"]
        return final
    finally:
        if started:
            import ray

            from pipelines.runtime import delete_face_service

            delete_face_service(runtime.app_name)
            ray.shutdown()


def _say(ctx: Context, obj: dict[str, Any], human: str) -> None:
    sys.stdout.write((json.dumps(obj) if ctx.args.json else human) + "\n")
    sys.stdout.flush()


def register(sub: Subcommands) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="the whole path on the embedded defaults, no outside input"
    )
    p.add_argument("--purpose", required=True, help="why this demo search is made; audited")
    p.add_argument("--gallery", help="a folder of reference photos (default: scikit-image's astronaut)")
    add_profile_flag(p)
    add_common_flags(p)
    p.add_argument("--source", help="a stream URL or video file instead of the generated clip")
    p.add_argument("--duration-s", type=float, default=None, help="stop a live --source after N s")
    p.set_defaults(fn=run_demo)
