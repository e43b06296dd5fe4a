"""``facestream review``: human confirmation of stream matches from the command line.

The same store and rules as the API's review operations (:mod:`pipelines.review`). On the
command line a reviewer names themself with ``--reviewer`` (recorded as ``local:<name>``
with the role ``reviewer``); the API identifies reviewers by their access key instead.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from facestream.audit import Actor
from facestream.cli.context import Context, Subcommands, add_common_flags
from facestream.errors import CollectionNotFound, InvalidParameter

if TYPE_CHECKING:
    from pipelines.review import ReviewStore

_REVIEWER = re.compile(r"[A-Za-z0-9_.@\-]{1,64}")


def _store(ctx: Context) -> ReviewStore:
    from pipelines.review import ReviewStore, review_path

    store = ReviewStore(review_path(Path(ctx.settings.home)))
    ctx.stack.callback(store.close)
    return store


def _reviewer(ctx: Context) -> Actor:
    name = ctx.args.reviewer
    if not _REVIEWER.fullmatch(name):
        raise InvalidParameter(f"--reviewer {name!r}: expected 1-64 of [A-Za-z0-9_.@-]")
    return Actor(key_id=f"local:{name}", role="reviewer")


def cmd_policy(ctx: Context) -> None:
    a = ctx.args
    if a.collection not in ctx.store.list_collections():
        raise CollectionNotFound(f"collection {a.collection!r} does not exist")
    store = _store(ctx)
    actor = Actor.local_cli()
    if a.confirmations is not None:
        store.set_policy(a.collection, a.confirmations, by=actor.key_id)
        ctx.audit.append(
            actor=actor,
            operation="PutReviewPolicy",
            inputs={"collection": a.collection, "required_confirmations": a.confirmations},
        )
    from pipelines.review import effective_required

    explicit = store.policy(a.collection)
    required = effective_required(explicit, ctx.store.describe_collection(a.collection).require_confirmation)
    ctx.emit(
        {"CollectionId": a.collection, "RequiredConfirmations": required, "Explicit": explicit is not None},
        f"{a.collection}: {required} confirmation(s) per match",
    )


def cmd_list(ctx: Context) -> None:
    from pipelines.review import Status

    a = ctx.args
    found = _store(ctx).candidates(
        status=Status(a.status) if a.status else None, processor=a.processor, limit=a.max_results
    )
    ctx.audit.append(
        actor=Actor.local_cli(),
        operation="ListMatchCandidates",
        inputs={"status": a.status, "processor": a.processor},
        results={"candidates": len(found)},
    )
    rows = [c.to_json() for c in found]
    human = "\n".join(
        f"{c['EventId']}  {c['Status']:<9} {c['Confirmations']}/{c['RequiredConfirmations']}  "
        f"{c['ExternalImageId']}  {c['Similarity']:.1f}  {c['StreamProcessorName']}"
        for c in rows
    )
    ctx.emit({"Candidates": rows}, human or "no candidates")


def cmd_show(ctx: Context) -> None:
    a = ctx.args
    store = _store(ctx)
    cand = store.get(a.event_id)
    out = cand.to_json()
    if a.crop:
        crop = store.crop(a.event_id)
        if crop is not None:
            Path(a.crop).write_bytes(crop)
            os.chmod(a.crop, 0o600)  # a face crop is biometric data
            out["CropWrittenTo"] = str(a.crop)
    ctx.audit.append(
        actor=Actor.local_cli(),
        operation="GetMatchCandidate",
        inputs={"event_id": a.event_id},
        results={"face_id": cand.face_id, "status": cand.status.value},
    )
    ctx.emit(out, f"{cand.event_id}: {cand.status.value} {cand.external_image_id} {cand.similarity:.1f}")


def _decide(ctx: Context, decision: str) -> None:
    from pipelines.review import Decision

    a = ctx.args
    actor = _reviewer(ctx)
    cand, released = _store(ctx).decide(
        a.event_id, reviewer=actor.key_id, role=actor.role, decision=Decision(decision), reason=a.reason or ""
    )
    ctx.audit.append(
        actor=actor,
        operation="ReviewMatchCandidate",
        inputs={"event_id": a.event_id, "decision": decision, "reason": a.reason or ""},
        results={
            "status": cand.status.value,
            "confirmations": len(cand.confirmations),
            "required": cand.required,
        },
    )
    if released:
        ctx.audit.append(
            actor=actor,
            operation="ReleaseMatchAlert",
            inputs={"event_id": a.event_id, "stream_processor": cand.processor},
            results={"confirmed_by": cand.confirmations},
        )
    ctx.emit(
        cand.to_json(),
        f"{cand.event_id}: {cand.status.value} ({len(cand.confirmations)}/{cand.required} confirmations)"
        + ("; alert released" if released else ""),
    )


def cmd_confirm(ctx: Context) -> None:
    _decide(ctx, "CONFIRM")


def cmd_reject(ctx: Context) -> None:
    _decide(ctx, "REJECT")


def register(sub: Subcommands) -> None:
    p: argparse.ArgumentParser = sub.add_parser("review", help="human confirmation of stream matches")
    rsub = p.add_subparsers(dest="action", required=True)
    q = rsub.add_parser("policy", help="show or set how many reviewers a collection's matches need")
    q.add_argument("collection")
    q.add_argument("--confirmations", type=int, help="distinct reviewers per match, 0-5 (0: none)")
    add_common_flags(q, model=False)
    q.set_defaults(fn=cmd_policy)
    q = rsub.add_parser("list", help="candidate matches")
    q.add_argument("--status", choices=["PENDING", "CONFIRMED", "REJECTED"])
    q.add_argument("--processor", help="only this stream processor's")
    q.add_argument("--max-results", type=int, default=100)
    add_common_flags(q, model=False)
    q.set_defaults(fn=cmd_list)
    q = rsub.add_parser("show", help="one candidate with its decisions")
    q.add_argument("event_id")
    q.add_argument("--crop", help="write the face crop from the stream to this file (JPEG, mode 0600)")
    add_common_flags(q, model=False)
    q.set_defaults(fn=cmd_show)
    for name, fn in (("confirm", cmd_confirm), ("reject", cmd_reject)):
        q = rsub.add_parser(name, help=f"{name} a candidate as one reviewer")
        q.add_argument("event_id")
        q.add_argument("--reviewer", required=True, help="who decides (each reviewer decides once)")
        q.add_argument("--reason", help="why (recorded with the decision)")
        add_common_flags(q, model=False)
        q.set_defaults(fn=fn)
