"""``facestream events list|export``: match events by person, processor or collection, and their
redacted evidence (frames and clips, every other face blurred; :mod:`pipelines.evidence`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from facestream.audit import Actor
from facestream.cli.context import Context, Subcommands, add_common_flags
from facestream.errors import InvalidParameter, ResourceNotFound
from facestream.paths import StateHome
from pipelines.evidence import EvidenceStore, check_event_id, evidence_root, export_clip, find_event


def _reference_embedding(ctx: Context, face_id: str, collection: str | None) -> np.ndarray | None:
    """The matched stored face's vector (None when it was deleted since)."""
    names = [collection] if collection else ctx.store.list_collections()
    for name in names:
        try:
            faces = ctx.store.get_faces(name, [face_id], with_embeddings=True)
        except ResourceNotFound:
            continue
        if faces and faces[0].embedding is not None:
            v = np.asarray(faces[0].embedding, dtype=np.float32)
            return v / max(float(np.linalg.norm(v)), 1e-12)
    return None


def cmd_export(ctx: Context) -> None:
    from facestream.operations import check_purpose

    a = ctx.args
    purpose = check_purpose(a.purpose)  # refused before anything is read
    event_id = check_event_id(a.event_id)
    if a.frame is None and a.clip is None:
        raise InvalidParameter("say what to export: --frame OUT.jpg and/or --clip OUT.mp4")
    home: Path = ctx.settings.home
    rec = find_event(home, StateHome(home).events_db, event_id)
    stream = rec["InputInformation"]["Stream"]
    face = rec["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"]
    out: dict[str, Any] = {"EventId": event_id}
    if a.frame is not None:
        store = EvidenceStore(evidence_root(home))
        try:
            data = store.get(event_id)
        finally:
            store.close()
        if data is None:
            raise ResourceNotFound(
                f"no evidence frame is kept for event {event_id!r} (the processor's evidence_frames "
                "setting was off, or retention removed it)"
            )
        Path(a.frame).write_bytes(data)
        out["Frame"] = str(a.frame)
    if a.clip is not None:
        source, collection = _file_source(home, stream["Name"], a.source)
        ref = _reference_embedding(ctx, face["FaceId"], collection)
        rep = export_clip(
            ctx.analyzer,
            source,
            Path(a.clip),
            offset_s=float(stream["FrameOffsetInSeconds"]),
            seconds=a.seconds,
            reference=ref,
            model=ctx.analyzer.model_name,
        )
        out["Clip"] = {"Path": str(a.clip), **rep.to_dict(), "MatchedFaceKnown": ref is not None}
    ctx.audit.append(
        actor=Actor.local_cli(),
        operation="ExportEventMedia",
        purpose=purpose,
        inputs={
            "event_id": event_id,
            "frame": a.frame is not None,
            "clip_seconds": a.seconds if a.clip is not None else None,
        },
        results={"face_id": face.get("FaceId"), "clip_frames": out.get("Clip", {}).get("Frames")},
    )
    ctx.emit(out, f"exported {event_id}: " + ", ".join(k for k in ("Frame", "Clip") if k in out))


def _file_source(home: Path, processor: str, given: str | None) -> tuple[Path, str | None]:
    """The video file a processor read (from the registry), or ``--source``; and its collection."""
    collection: str | None = None
    path: Path | None = Path(given) if given else None
    reg_path = StateHome(home).processor_registry
    if reg_path.exists():
        from pipelines.manager import ProcessorRegistry

        try:
            settings = ProcessorRegistry(reg_path).settings(processor)
        except ResourceNotFound:
            settings = None
        if settings is not None:
            collection = settings.collection
            from pipelines.config import FileSource

            if path is None and isinstance(settings.source, FileSource):
                path = Path(settings.source.path)
    if path is None:
        raise InvalidParameter(
            f"processor {processor!r} did not read a video file known here; give the file with --source"
        )
    if not path.is_file():
        raise InvalidParameter(f"source video {path} does not exist")
    return path, collection


def cmd_list(ctx: Context) -> None:
    """Match events by person, processor or collection (a subject access request starts here)."""
    from facestream.operations import check_purpose
    from pipelines.event_query import EventFilter, EventQuery

    a = ctx.args
    purpose = check_purpose(a.purpose)
    flt = EventFilter(
        processor=a.processor,
        collection=a.collection,
        external_image_id=a.external_id,
        face_id=a.face_id,
        start_ts=a.since,
    )
    q = EventQuery(ctx.settings.state.events_db)
    try:
        events, _ = q.query(flt, max_results=a.limit)
    finally:
        q.close()
    ctx.audit.append(
        actor=Actor.local_cli(),
        operation="QueryMatchEvents",
        purpose=purpose,
        inputs={k: v for k, v in flt.__dict__.items() if v is not None},
        results={"events": len(events)},
    )
    ctx.emit(
        {"Events": events},
        "\n".join(
            f"{e['EventId']} {e['InputInformation']['Stream']['Name']} "
            f"{e['FaceSearchResponse'][0]['MatchedFaces'][0]['Face'].get('ExternalImageId')}"
            for e in events
        )
        or "(none)",
    )


def register(sub: Subcommands) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "events", help="match events: list them, export redacted evidence"
    )
    esub = p.add_subparsers(dest="action", required=True)
    q = esub.add_parser("list", help="events (latest revision) by person, processor or collection")
    q.add_argument("--external-id", help="events that matched this ExternalImageId")
    q.add_argument("--face-id", help="events that matched this FaceId")
    q.add_argument("--processor", help="events of this stream processor")
    q.add_argument("--collection", help="events of processors searching this collection")
    q.add_argument("--since", type=float, help="ServerTimestamp at or after (epoch s)")
    q.add_argument("--limit", type=int, default=1000, help="at most this many (1-1000)")
    q.add_argument("--purpose", required=True, help="why these events are read (e.g. the request id)")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_list)
    q = esub.add_parser(
        "export", help="an event's frame (--frame) or a clip around it (--clip), other faces blurred"
    )
    q.add_argument("event_id")
    q.add_argument("--frame", help="write the event's stored redacted frame here (JPEG)")
    q.add_argument("--clip", help="write a redacted clip around the event here (H.264 MP4; file sources)")
    q.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    q.add_argument("--source", help="the video file, when the processor is not in the registry")
    q.add_argument("--purpose", required=True, help="why this evidence is exported (case id); audited")
    add_common_flags(q)
    q.set_defaults(fn=cmd_export)
