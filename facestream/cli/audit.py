"""``facestream audit verify|list``: read and check the audit trail."""

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
    p: argparse.ArgumentParser = sub.add_parser("audit", help="verify | list the audit trail")
    asub = p.add_subparsers(dest="action", required=True)
    q = asub.add_parser("verify", help="recompute the hash chain; non-zero exit names the first bad entry")
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
