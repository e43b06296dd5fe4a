"""``facestream audit verify|list|resolve``: read and check the audit trail; resolve pseudonyms."""

from __future__ import annotations

import argparse

from facestream.cli.context import Context, Subcommands, add_common_flags
from facestream.errors import AuditIntegrityError


def cmd_audit(ctx: Context) -> None:
    a = ctx.args
    audit = ctx.audit
    if a.action == "verify":
        res = audit.verify()
        obj = {"ok": res.ok, "entries": res.entries, "first_bad_seq": res.first_bad_seq, "reason": res.reason}
        human = (
            f"audit log {audit.path}: {res.entries} entries, chain intact"
            if res.ok
            else f"audit log {audit.path}: TAMPERED at entry {res.first_bad_seq}: {res.reason}"
        )
        ctx.emit(obj, human)
        if not res.ok:
            raise AuditIntegrityError(f"audit chain broken at entry {res.first_bad_seq}: {res.reason}")
    elif a.action == "resolve":
        from facestream.audit import Actor
        from facestream.errors import ResourceNotFound

        if a.pseudonym:
            found = audit.subjects.resolve(a.pseudonym)
            psn: str | None = a.pseudonym
        else:
            kind, value = ("external_image_id", a.external_id) if a.external_id else ("user_id", a.user_id)
            psn = audit.pseudonym(kind, value)
            found = (kind, value) if psn is not None else None
        audit.append(
            actor=Actor.local_cli(),
            operation="ResolveAuditSubject",
            inputs={"pseudonym": a.pseudonym} if a.pseudonym else {},
            results={"pseudonym": psn, "found": found is not None},
        )
        if found is None:
            raise ResourceNotFound(
                "no live subject: never named in the audit log, or erased (secret shredded)"
            )
        ctx.emit({"Pseudonym": psn, "Kind": found[0], "Value": found[1]}, f"{psn} = {found[0]} {found[1]}")
    elif a.action == "list":
        rows = audit.query(
            operation=a.operation,
            key_id=a.key_id,
            purpose=a.purpose,
            since_ms=a.since_ms,
            until_ms=a.until_ms,
            limit=a.limit,
        )
        for e in rows:
            who = e["actor"]["key_id"]
            ctx.emit(e, f"{e['seq']:>6} {e['ts_ms']} {who} {e['operation']} {e.get('purpose') or ''}")


def register(sub: Subcommands) -> None:
    p: argparse.ArgumentParser = sub.add_parser("audit", help="verify | list | resolve the audit trail")
    asub = p.add_subparsers(dest="action", required=True)
    q = asub.add_parser("verify", help="recompute the hash chain; non-zero exit names the first bad entry")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_audit)
    q = asub.add_parser(
        "resolve",
        help="who an entry's pseudonym (psn_...) stands for, or a person's pseudonym (needs the "
        "subject secrets file beside the log; erased people resolve to nothing)",
    )
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("pseudonym", nargs="?", help="a psn_... value from an audit entry")
    who.add_argument("--external-id", help="the pseudonym of this ExternalImageId")
    who.add_argument("--user-id", help="the pseudonym of this UserId")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_audit)
    q = asub.add_parser("list", help="entries, oldest first, with filters")
    q.add_argument("--operation")
    q.add_argument("--key-id")
    q.add_argument("--purpose", help="entries whose purpose contains this text")
    q.add_argument("--since-ms", type=int)
    q.add_argument("--until-ms", type=int)
    q.add_argument("--limit", type=int)
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_audit)
