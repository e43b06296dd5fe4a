"""``facestream keys create|list|revoke`` and ``facestream serve``.

Keys live in ``<home>/keys.sqlite``; their secrets are encrypted with the master key
(``FACESTREAM_MASTER_KEY`` or ``<home>/master.key``). A new key's secret is printed once.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facestream.cli.context import Context, Subcommands, add_common_flags

if TYPE_CHECKING:
    from serve.config import ApiAppArgs
    from serve.keys import KeyStore

log = logging.getLogger(__name__)

SERVE_APP_NAME = "facestream"


def _keystore(ctx: Context) -> KeyStore:
    from serve.keys import KeyStore, load_master_key

    state = ctx.settings.state
    return KeyStore(state.keys_db, load_master_key(state.root, create=True))


def cmd_keys(ctx: Context) -> None:
    from facestream.audit import Actor
    from serve.keys import sorted_roles

    a = ctx.args
    ks = _keystore(ctx)
    if a.action == "create":
        new = ks.create(a.role, a.description or "", purpose=a.purpose, expires_days=a.expires_days)
        roles = [r.value for r in sorted_roles(new.roles)]
        ctx.audit.append(
            actor=Actor.local_cli(),
            operation="CreateAccessKey",
            inputs={"roles": roles, "purpose": new.purpose},
            results={"key_id": new.access_key_id, "expires_at_ms": new.expires_at_ms},
        )
        ctx.emit(
            new.to_json(),
            f"AccessKeyId     {new.access_key_id}\nSecretAccessKey {new.secret_access_key}\n"
            f"Roles           {', '.join(roles)}\n"
            + (f"Purpose         {new.purpose}\n" if new.purpose else "")
            + (f"ExpiresAtMs     {new.expires_at_ms}\n" if new.expires_at_ms else "")
            + "(the secret is shown only now; store it safely)",
        )
    elif a.action == "list":
        for k in ks.list():
            info = k.to_json()
            held = ",".join(r.value for r in sorted_roles(k.roles))
            ctx.emit(info, f"{k.access_key_id} {held:<8} {info['Status']} {k.purpose or ''} {k.description}")
    elif a.action == "revoke":
        revoked = ks.revoke(a.key_id)
        ctx.audit.append(actor=Actor.local_cli(), operation="RevokeAccessKey", inputs={"key_id": a.key_id})
        ctx.emit(revoked.to_json(), f"revoked {revoked.access_key_id}")


def app_args_from(ctx: Context, config_file: str | None) -> ApiAppArgs:
    """ApiAppArgs from a JSON/YAML file (if given), with the CLI's store/model settings on top."""
    from facestream.config import EmbeddingServiceConfig
    from serve.config import ApiAppArgs

    base: dict[str, Any] = {}
    if config_file:
        text = Path(config_file).read_text(encoding="utf-8")
        if config_file.endswith((".yaml", ".yml")):
            import yaml

            base = yaml.safe_load(text) or {}
        else:
            base = json.loads(text)
    args = ApiAppArgs.model_validate(base)
    s = ctx.settings
    api = args.api.model_copy(
        update={
            "home": args.api.home if "home" in base.get("api", {}) else s.home,
            "store_uri": args.api.store_uri or s.store_uri,
            "audit_path": args.api.audit_path or s.audit_path,
        }
    )
    emb = args.embedding
    if "embedding" not in base:
        emb = EmbeddingServiceConfig(analyzer=s.analyzer)
    return args.model_copy(update={"api": api, "embedding": emb})


def cmd_serve(ctx: Context) -> None:
    import ray
    from ray import serve

    from facestream.localray import init_local_ray
    from serve.app import build_app

    a = ctx.args
    args = app_args_from(ctx, a.config)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.warning("signal %s: shutting down", signum)
        stop.set()

    init_local_ray(num_cpus=a.num_cpus)
    # After ray.init: Ray installs its own fatal-signal handlers, which would abort on SIGTERM.
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve.start(
            http_options={
                "host": a.host,
                "port": a.port,
                "request_timeout_s": args.api.limits.request_timeout_s,
            }
        )
        try:
            serve.run(build_app(args), name=SERVE_APP_NAME, route_prefix="/")
            sys.stderr.write(f"facestream API serving on http://{a.host}:{a.port} (Ctrl-C to stop)\n")
            sys.stderr.flush()
            while not stop.wait(timeout=1.0):
                pass
        finally:
            serve.shutdown()
    finally:
        ray.shutdown()
        for s, h in previous.items():
            signal.signal(s, h)


def register(sub: Subcommands) -> None:
    p: argparse.ArgumentParser = sub.add_parser("keys", help="create | list | revoke API access keys")
    ksub = p.add_subparsers(dest="action", required=True)
    q = ksub.add_parser("create", help="a new key; its secret is shown once")
    q.add_argument(
        "--role",
        required=True,
        action="append",
        choices=["admin", "indexer", "searcher", "auditor", "viewer", "reviewer"],
        help="a role of the key; repeat for several (--role admin --role indexer)",
    )
    q.add_argument("--description", help="who or what the key is for")
    q.add_argument(
        "--purpose",
        help="bind the key to a purpose (case id or reason): every request it signs is audited with it, "
        "and searches need no purpose header",
    )
    q.add_argument("--expires-days", type=float, help="the key stops working after this many days")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_keys)
    q = ksub.add_parser("list", help="every key with its role and status (never a secret)")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_keys)
    q = ksub.add_parser("revoke", help="revoke a key at once")
    q.add_argument("key_id")
    add_common_flags(q, store=False, model=False)
    q.set_defaults(fn=cmd_keys)

    p = sub.add_parser("serve", help="run the HTTP API (Rekognition protocol + /v1) on Ray Serve")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--config", help="ApiAppArgs as JSON or YAML (the `args:` of cluster/serve.yaml)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray (default: all)")
    add_common_flags(p)
    p.set_defaults(fn=cmd_serve)
