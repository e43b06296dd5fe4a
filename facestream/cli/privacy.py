"""``facestream retention enforce`` and ``facestream erase`` (also ``facestream privacy erase``):
deleting biometric data when due or asked."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from facestream.audit import Actor
from facestream.cli.context import Context, Subcommands, add_common_flags

if TYPE_CHECKING:
    from pipelines.sinks import EventStore


def _events(ctx: Context) -> EventStore | None:
    """The deployment's match-event store (``<home>/events.sqlite3``), if it exists."""
    from pipelines.sinks import EventStore

    path = ctx.settings.state.events_db
    return EventStore(path) if path.exists() else None


def cmd_retention(ctx: Context) -> None:
    from pipelines.erasure import enforce_retention

    rep = enforce_retention(
        ctx.store,
        ctx.audit,
        Actor.local_cli(),
        now_ms=ctx.args.now_ms,
        events=_events(ctx),
        events_retention_days=ctx.args.events_retention_days,
        home=ctx.settings.home,
    ).to_dict()
    human = "\n".join(f"{c}: {n} expired face(s) deleted" for c, n in rep["deleted_faces"].items()) or (
        "no collection has a retention period"
    )
    ctx.emit(rep, human)


def cmd_erase(ctx: Context) -> None:
    from pipelines.erasure import erase_person

    a = ctx.args
    out = erase_person(
        ctx.store,
        ctx.audit,
        Actor.local_cli(),
        purpose=a.purpose,
        external_image_id=a.external_id,
        user_id=a.user_id,
        collections=a.collection,
        home=ctx.settings.home,  # events, spools, JSON-lines sinks, evidence, thumbnails, candidates
        jsonl_paths=[Path(p) for p in a.jsonl or ()],
    )
    ctx.emit(
        out,
        f"erased {out['Total']} face(s) {out['DeletedFaces']}, {out['DeletedEvents']} event(s), "
        f"{out['DeletedSpooledRecords']} spooled record(s), {out['DeletedJsonlLines']} JSON line(s), "
        f"{out['DeletedEvidenceFrames']} evidence frame(s), {out['DeletedThumbnails']} thumbnail(s), "
        f"{out['DeletedCandidates']} review candidate(s)",
    )


def register(sub: Subcommands) -> None:
    p: argparse.ArgumentParser = sub.add_parser("retention", help="enforce per-collection retention")
    rsub = p.add_subparsers(dest="action", required=True)
    q = rsub.add_parser("enforce", help="delete faces older than their collection's retention period")
    q.add_argument("--now-ms", type=int, help="the time to enforce at (epoch ms; default: now)")
    q.add_argument("--events-retention-days", type=int, help="also delete match events older than this")
    add_common_flags(q, model=False)
    q.set_defaults(fn=cmd_retention)

    p = sub.add_parser("erase", help="delete everything stored of one person (subject erasure request)")
    _erase_args(p)
    p = sub.add_parser("privacy", help="privacy requests: erase (the same as `facestream erase`)")
    psub = p.add_subparsers(dest="action", required=True)
    _erase_args(psub.add_parser("erase", help="delete everything stored of one person"))


def _erase_args(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--external-id", help="the person's ExternalImageId")
    who.add_argument("--user-id", help="the person's UserId")
    p.add_argument("--collection", action="append", help="only this collection (repeatable; default: all)")
    p.add_argument(
        "--jsonl",
        action="append",
        help="also a JSON-lines sink file facestream does not know of (repeatable)",
    )
    p.add_argument("--purpose", required=True, help="why (e.g. the erasure request's reference); audited")
    add_common_flags(p, model=False)
    p.set_defaults(fn=cmd_erase)
