"""``facestream stream`` (one processor on a local Ray) and ``facestream stream-processors``.

Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from facestream.cli.context import Context, Subcommands, add_common_flags, add_profile_flag
from facestream.errors import InvalidParameter

if TYPE_CHECKING:
    from pipelines.config import ProcessorSettings, RuntimeConfig


def _processor_settings(a: argparse.Namespace, name: str, events_path: Path) -> ProcessorSettings:
    from pydantic import ValidationError

    from pipelines.config import EventStoreSinkConfig, JsonlSinkConfig, ProcessorSettings
    from pipelines.urls import source_from_url

    source = source_from_url(a.source, rtsp_transport=a.rtsp_transport, loop=a.loop, realtime=a.realtime)
    try:
        return ProcessorSettings(
            name=name,
            source=source,
            collection=a.collection,
            purpose=a.purpose,
            threshold=a.threshold,
            analysis_fps=a.fps,
            keyframes_only=a.keyframes_only,
            # The shared event store too, so the API's QueryMatchEvents sees CLI runs as well.
            sinks=(JsonlSinkConfig(path=Path(a.events)), EventStoreSinkConfig(path=events_path)),
        )
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidParameter(msgs) from None


def runtime_from(ctx: Context) -> RuntimeConfig:
    from facestream.config import EmbeddingServiceConfig
    from pipelines.config import RuntimeConfig
    from pipelines.urls import media_dirs_from_env

    s = ctx.settings
    return RuntimeConfig(
        home=s.home,
        store_uri=s.store_uri,
        audit_path=s.audit_path,
        media_dirs=tuple(media_dirs_from_env([Path.cwd(), s.home])),
        embedding=EmbeddingServiceConfig(analyzer=s.analyzer),
    )


def cmd_stream(ctx: Context) -> None:
    from facestream.audit import Actor
    from facestream.operations import check_purpose, check_threshold
    from pipelines.config import FileSource
    from pipelines.stream import run_fleet
    from pipelines.urls import check_source

    a = ctx.args
    from facestream.profiles import resolve_profile

    check_purpose(a.purpose)  # refused before anything starts
    # The profile's default when no --threshold; its floor refuses a lower one (exit 2).
    a.threshold = check_threshold(resolve_profile().threshold(a.threshold), "FaceMatchThreshold")
    name = a.name or f"cli-{secrets.token_hex(4)}"
    runtime = runtime_from(ctx)
    settings = _processor_settings(a, name, runtime.resolved_events_path)
    if isinstance(settings.source, FileSource):
        # A file the operator names on their own command line is their choice to read: it is
        # allowed for this run (the API keeps the media-directory rule for remote callers).
        named = Path(settings.source.path).expanduser().resolve()
        runtime = runtime.model_copy(update={"media_dirs": (*runtime.media_dirs, named)})
    check_source(settings.source, list(runtime.media_dirs))
    events_file = Path(a.events)
    try:
        final = run_fleet(
            runtime, [settings], actor=Actor.local_cli(), duration_s=a.duration_s, resume=False
        )[name]
    finally:
        # The events file exists after every run: empty when nothing matched.
        events_file.parent.mkdir(parents=True, exist_ok=True)
        events_file.touch(exist_ok=True)
    summary = {
        "Name": name,
        "Status": final.get("Status"),
        "StatusMessage": final.get("StatusMessage"),
        "Events": final.get("Events", 0),
        "Counters": final.get("Counters", {}),
        "EventsFile": str(a.events),
    }
    ctx.emit(
        summary,
        f"{name}: {summary['Status']} ({summary['StatusMessage']}); {summary['Events']} match record(s) "
        f"written to {a.events}",
    )
    if final.get("Status") == "FAILED":
        ctx.status = max(ctx.status, 1)


def cmd_processors(ctx: Context) -> None:
    from pipelines.manager import ProcessorRegistry, public_settings

    a = ctx.args
    reg = ProcessorRegistry(ctx.settings.state.processor_registry)
    if a.action == "list":
        rows = []
        for n in reg.names():
            e = reg.get(n)
            rows.append({"Name": n, "Status": e["last_status"].get("Status"), "Desired": e["desired"]})
        ctx.emit(
            {"StreamProcessors": rows}, "\n".join(f"{r['Name']} {r['Status']}" for r in rows) or "(none)"
        )
    elif a.action == "describe":
        e = reg.get(a.name)
        out = {
            "Name": a.name,
            **e["last_status"],
            "Desired": e["desired"],
            "Settings": public_settings(reg.settings(a.name)),
        }
        ctx.emit(out, f"{a.name}: {out.get('Status')} ({out.get('StatusMessage')})")
    elif a.action == "delete":
        reg.get(a.name)
        reg.remove(a.name)
        from facestream.audit import Actor

        ctx.audit.append(actor=Actor.local_cli(), operation="DeleteStreamProcessor", inputs={"name": a.name})
        ctx.emit({"StatusCode": 200}, f"deleted {a.name}")


def register(sub: Subcommands) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "stream", help="search one live stream or video file against a collection (local Ray)"
    )
    p.add_argument(
        "source",
        help="rtsp(s)://, http(s):// (HLS), tcp:// or udp:// (MPEG-TS), or a file path (a file named "
        "here is read wherever it lies: the operator chose it)",
    )
    p.add_argument("--collection", required=True, help="collection (watchlist) to search")
    p.add_argument(
        "--events",
        required=True,
        help="write match records here as JSON lines (exists after every run, empty without a match)",
    )
    p.add_argument(
        "--purpose", required=True, help="why this stream is searched (case id or reason); audited"
    )
    p.add_argument(
        "--duration-s", type=float, default=None, help="stop after N seconds (default: until the file ends)"
    )
    p.add_argument("--fps", type=float, default=5.0, help="analysis frames per second (default 5)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="FaceMatchThreshold 0-100 (default: the profile's, 80 general / 99 public-safety)",
    )
    add_profile_flag(p)
    p.add_argument("--keyframes-only", action="store_true", help="analyse key frames only")
    p.add_argument("--rtsp-transport", choices=["tcp", "udp"], default="tcp")
    p.add_argument("--loop", action="store_true", help="file sources: start again at the end")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="file sources: replay at the file's pace, dropping like a live camera",
    )
    p.add_argument("--name", help="processor name (default: cli-<random>)")
    add_common_flags(p)
    p.set_defaults(fn=cmd_stream)

    p = sub.add_parser("stream-processors", help="list | describe | delete persisted stream processors")
    psub = p.add_subparsers(dest="action", required=True)
    q = psub.add_parser("list")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_processors)
    for action in ("describe", "delete"):
        q = psub.add_parser(action)
        q.add_argument("name")
        add_common_flags(q, store=False, model=False)
        q.set_defaults(fn=cmd_processors)
