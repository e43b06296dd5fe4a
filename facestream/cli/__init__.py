"""The ``facestream`` command line.

``--json`` output is a stable contract: one JSON object per line on stdout, logs on stderr.
Exit status: 0 success; 2 bad input (unreadable image, unknown collection, missing purpose,
invalid value) — other images of the same call still get their answers; 1 when a dependency
failed (store unavailable, model missing).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack

from facestream.cli import (
    accountability,
    api,
    audit,
    demo,
    events,
    faces,
    models,
    privacy,
    review,
    streams,
    video,
)
from facestream.cli.context import EXIT_FAILED, Context, Subcommands, exit_code
from facestream.errors import FacestreamError

log = logging.getLogger("facestream.cli")

#: every command group's ``register``, in the order ``facestream --help`` lists them. Their
#: modules stay light at import time (Ray, Serve and torch load only when a command runs).
_GROUPS: tuple[Callable[[Subcommands], None], ...] = (
    faces.register,
    demo.register,
    audit.register,
    models.register,
    privacy.register,
    accountability.register,
    review.register,
    events.register,
    api.register,
    streams.register,
    video.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facestream", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in _GROUPS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with ExitStack() as stack:
        ctx: Context | None = None
        try:
            if getattr(args, "profile_flag", False):
                from facestream.profiles import apply_profile_flag

                apply_profile_flag(args.profile)
            ctx = Context(args, stack)
            args.fn(ctx)
            return ctx.status
        except FacestreamError as exc:
            if ctx is not None:
                exc = ctx.explain(exc)
            if getattr(args, "json", False):
                sys.stdout.write(json.dumps({"error": exc.to_dict()}) + "\n")
            else:
                sys.stderr.write(f"error: {exc.message}\n")
            return exit_code(exc)
    return EXIT_FAILED  # pragma: no cover - ExitStack does not swallow
