"""What every command of the ``facestream`` command line shares: the typed :class:`Context`
of one invocation, the exit codes and the common flags."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias

from facestream.audit import AuditLog
from facestream.embedders import MODEL_NAMES
from facestream.errors import CollectionNotFound, FacestreamError
from facestream.imageio import LoadedImage, load_image_file
from facestream.settings import Settings, resolve_settings

if TYPE_CHECKING:
    from facestream.operations import FaceOperations
    from facestream.store import FaceStore
    from models.analyzer import FaceAnalyzer

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

#: the ``facestream`` parser's subcommands, which every command group's ``register`` adds to
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def exit_code(exc: FacestreamError) -> int:
    return EXIT_BAD_INPUT if exc.http_status < 500 else EXIT_FAILED


class Context:
    """Lazily built pieces for one CLI invocation (the model loads only when needed)."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.settings: Settings = resolve_settings(
            store=getattr(args, "store", None),
            model=getattr(args, "model", None),
            device=getattr(args, "device", None),
            weights=getattr(args, "weights", None),
        )
        self.status = EXIT_OK

    @cached_property
    def analyzer(self) -> FaceAnalyzer:
        from models.analyzer import FaceAnalyzer

        return FaceAnalyzer(self.settings.analyzer)

    @cached_property
    def store(self) -> FaceStore:
        from facestream.store import MilvusFaceStore, StoreConfig

        store = MilvusFaceStore(StoreConfig(uri=self.settings.store_uri))
        self.stack.callback(store.close)
        return store

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.settings.audit_path)

    @cached_property
    def ops(self) -> FaceOperations:
        from facestream.operations import FaceOperations

        ops = FaceOperations(self.analyzer, self.store, self.audit)
        ops.attach_thumbnails(self.settings.home)
        return ops

    def emit(self, obj: dict[str, Any], human: str | None = None) -> None:
        if self.args.json or human is None:
            sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(human + "\n")
        sys.stdout.flush()

    def explain(self, exc: FacestreamError) -> FacestreamError:
        """``exc`` as the operator should read it: a missing collection names the state home it
        was looked for in (another home, or ``FACESTREAM_HOME``, may hold it)."""
        if isinstance(exc, CollectionNotFound):
            return CollectionNotFound(f"{exc.message} (state home {self.settings.home})")
        return exc

    def fail(self, exc: FacestreamError, **where: Any) -> None:
        exc = self.explain(exc)
        self.status = max(self.status, exit_code(exc))
        if self.args.json:
            self.emit({**where, "error": exc.to_dict()})
        else:
            place = " ".join(f"{v}" for v in where.values())
            sys.stderr.write(f"error: {place + ': ' if place else ''}{exc.message}\n")

    def per_image(self, paths: Sequence[str], fn: Callable[[str, LoadedImage], None]) -> None:
        """Run ``fn`` for each readable image; a bad one is reported and the rest go on."""
        for p in paths:
            try:
                fn(p, load_image_file(p))
            except FacestreamError as exc:
                self.fail(exc, image=p)


def add_common_flags(p: argparse.ArgumentParser, *, store: bool = True, model: bool = True) -> None:
    """``--json``, and where the command uses them the store and model flags."""
    p.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    if store:
        p.add_argument("--store", help="Milvus Lite path or http://127.0.0.1:19530 (env FACESTREAM_STORE)")
    if model:
        p.add_argument("--model", choices=MODEL_NAMES, help="embedding model")
        p.add_argument("--device", help="auto, cpu, cuda or cuda:N (env FACESTREAM_DEVICE)")
        p.add_argument("--weights", help="local weights file for the model")


def add_profile_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        choices=["general", "public-safety"],
        help="deployment profile: threshold default and floor (flag > env FACESTREAM_PROFILE > general)",
    )
    p.set_defaults(profile_flag=True)
