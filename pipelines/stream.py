"""Run a fleet of stream processors: ``ray job submit -- python -m pipelines.stream --config FILE``.

The config file (YAML or JSON) is a :class:`pipelines.config.FleetConfig`: where state, store
and audit live, the shared face deployment, and the processors. Processors are created (or
updated) in the persisted registry and started; processors that were running when a
previous job on the same home died are resumed too. The job runs until SIGTERM/SIGINT,
``duration_s``, or until every processor has finished (file sources that end).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

from facestream.audit import Actor
from facestream.errors import FacestreamError, InvalidParameter
from pipelines.config import FleetConfig, ProcessorSettings, RuntimeConfig
from pipelines.manager import StreamProcessorManager
from pipelines.runtime import delete_face_service, ensure_face_service, ensure_ray
from pipelines.store_actor import call, store_actor

log = logging.getLogger(__name__)


def load_fleet_config(path: Path) -> FleetConfig:
    """Parse a YAML or JSON fleet file; errors name the file and the bad fields."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidParameter(f"cannot read fleet config {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as exc:
        raise InvalidParameter(f"fleet config {path} is not valid JSON/YAML: {exc}") from None
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidParameter(f"fleet config {path}: {msgs}") from None


def run_fleet(
    runtime: RuntimeConfig,
    processors: Sequence[ProcessorSettings],
    *,
    actor: Actor,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    on_running: Callable[[StreamProcessorManager], None] | None = None,
    resume: bool = True,
) -> dict[str, dict[str, Any]]:
    """Create/start ``processors`` (and resume persisted ones), run, stop; final status by name.

    Returns when every processor finished, ``duration_s`` passed, or ``stop`` was set.
    Unknown collections raise :class:`facestream.errors.CollectionNotFound` before any
    processor starts. Ray is shut down only if this call started it.
    """
    stop = stop or threading.Event()
    started_ray = ensure_ray(runtime.ray_address)
    manager: StreamProcessorManager | None = None
    try:
        face = ensure_face_service(runtime.embedding, runtime.app_name)
        store = store_actor(runtime.resolved_store_uri)
        for p in processors:
            call(store.describe_collection.remote(p.collection), 60)
        manager = StreamProcessorManager(runtime, face, store)
        for p in processors:
            manager.create(p, actor, replace=True)
            manager.start(p.name, actor)
        if resume:
            manager.resume(actor)
        if on_running is not None:
            on_running(manager)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        names = manager.running()
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            finished = manager.wait(names, step)
            if len(finished) == len(names):
                break
            stop.wait(0.05)
        final = {n: manager.describe(n) for n in manager.registry.names() if n in names}
        for n in manager.running():
            final[n] = manager.stop(n, actor)
            # A stop at the end of a run is not an operator's stop: resume it next time.
            manager.registry.update(n, desired="RUNNING" if _live(final[n]) else "STOPPED")
        return final
    finally:
        if manager is not None:
            manager.shutdown(actor)
        if started_ray:
            import ray

            delete_face_service(runtime.app_name)
            ray.shutdown()


def _live(status: dict[str, Any]) -> bool:
    return status.get("StatusMessage") not in ("end of file",) and status.get("Status") != "FAILED"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.stream", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, type=Path, help="fleet config (YAML or JSON)")
    ap.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
    ap.add_argument(
        "--profile",
        choices=["general", "public-safety"],
        help="deployment profile (flag > env FACESTREAM_PROFILE > general); its floor holds for all",
    )
    ap.add_argument("-v", "--verbose", action="count", default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %s: stopping stream processors", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        from facestream.operations import check_threshold
        from facestream.profiles import adopt_configured, apply_profile_flag

        apply_profile_flag(args.profile)
        fleet = load_fleet_config(args.config)
        adopt_configured(fleet.runtime.profile)  # flag > FACESTREAM_PROFILE > config
        for p in fleet.processors:
            check_threshold(p.threshold, f"processor {p.name!r} threshold")
        final = run_fleet(
            fleet.runtime,
            fleet.processors,
            actor=Actor(key_id="job:pipelines.stream", role="operator"),
            duration_s=args.duration_s or fleet.duration_s,
            stop=stop,
        )
    except FacestreamError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2 if exc.http_status < 500 else 1
    for name, status in sorted(final.items()):
        brief = {k: status.get(k) for k in ("Status", "StatusMessage", "Events", "Counters")}
        sys.stdout.write(json.dumps({"Name": name, **brief}) + "\n")
    return 1 if any(s.get("Status") == "FAILED" for s in final.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
