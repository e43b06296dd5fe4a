"""Stream processors: create / start / stop / describe / list / delete, persisted.

The registry (``<home>/stream_processors.json``, mode 0600: it holds camera URLs with their
passwords) keeps each processor's settings and whether it should be running. A manager
started again on the same home (a restarted job) resumes every processor that was running.
Each running processor is one Ray actor (:func:`pipelines.worker.spawn`); they share one
face deployment and one store actor.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from facestream.atomic import replacing
from facestream.audit import Actor, AuditLog
from facestream.errors import CollectionExists, InvalidParameter, ResourceNotFound, StreamUnavailable
from pipelines.config import ProcessorSettings, RuntimeConfig
from pipelines.event_query import close_run, record_run
from pipelines.urls import check_source, describe_source, media_dirs_from_env
from pipelines.worker import WorkerContext, preview_path, spawn

log = logging.getLogger(__name__)

RUNNING, STOPPED = "RUNNING", "STOPPED"
#: how long a processor's actor may not answer (restarting) before wait() counts it as ended
_ACTOR_LOST_S = 60.0


def _reveal(obj: Any) -> Any:
    """A settings dump with secrets in clear text (for the 0600 registry only)."""
    if isinstance(obj, SecretStr):
        return obj.get_secret_value()
    if isinstance(obj, dict):
        return {k: _reveal(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_reveal(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def public_settings(settings: ProcessorSettings) -> dict[str, Any]:
    """Settings as shown to users: secrets masked, the source described without credentials."""
    out: dict[str, Any] = settings.model_dump(mode="json")
    out["source"] = {"kind": settings.source.kind, "display": describe_source(settings.source)}
    return out


class ProcessorRegistry:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        lock_path = self.path.with_suffix(".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                data = self._read()
                yield data
                self._write(data)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": 1, "processors": {}}
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def _write(self, data: dict[str, Any]) -> None:
        with replacing(self.path, mode=0o600, fsync=True) as tmp, tmp.open("w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)

    def put(self, settings: ProcessorSettings, *, desired: str, created_by: Actor, replace: bool) -> None:
        with self._locked() as data:
            procs = data["processors"]
            if settings.name in procs and not replace:
                raise CollectionExists(f"stream processor {settings.name!r} already exists")
            prev = procs.get(settings.name, {})
            procs[settings.name] = {
                "settings": _reveal(settings.model_dump(mode="python")),
                "desired": desired,
                "created_ms": prev.get("created_ms", int(time.time() * 1000)),
                "created_by": {"key_id": created_by.key_id, "role": created_by.role},
                "last_status": prev.get("last_status", {"Status": STOPPED, "StatusMessage": "created"}),
            }

    def update(self, name: str, **fields: Any) -> None:
        with self._locked() as data:
            if name in data["processors"]:
                data["processors"][name].update(fields)

    def remove(self, name: str) -> None:
        with self._locked() as data:
            data["processors"].pop(name, None)

    def get(self, name: str) -> dict[str, Any]:
        entry = self._read()["processors"].get(name)
        if entry is None:
            raise ResourceNotFound(f"stream processor {name!r} does not exist")
        return dict(entry)

    def settings(self, name: str) -> ProcessorSettings:
        return ProcessorSettings.model_validate(self.get(name)["settings"])

    def names(self) -> list[str]:
        return sorted(self._read()["processors"])


class StreamProcessorManager:
    """Owns the processors' actors in this driver; state persists in the registry."""

    def __init__(self, runtime: RuntimeConfig, face_handle: Any, store: Any) -> None:
        self.runtime = runtime
        self.face = face_handle
        self.store = store
        self.registry = ProcessorRegistry(runtime.state.processor_registry)
        #: how long a new processor's actor may take to be placed and started
        self.start_timeout_s = 60.0
        self.audit = AuditLog(runtime.resolved_audit_path)
        self.media_dirs = list(runtime.media_dirs) or media_dirs_from_env([Path.cwd(), runtime.home])
        self._actors: dict[str, Any] = {}

    def create(self, settings: ProcessorSettings, actor: Actor, *, replace: bool = False) -> dict[str, Any]:
        check_source(settings.source, self.media_dirs)
        if settings.name in self._actors:
            raise InvalidParameter(f"stream processor {settings.name!r} is running; stop it first")
        self.registry.put(settings, desired=STOPPED, created_by=actor, replace=replace)
        self.audit.append(
            actor=actor,
            operation="CreateStreamProcessor",
            purpose=settings.purpose,
            inputs={"name": settings.name, "settings": public_settings(settings)},
        )
        return self.describe(settings.name)

    def start(self, name: str, actor: Actor, *, purpose: str | None = None) -> dict[str, Any]:
        """Start ``name``; a processor whose actor already finished (file over) starts again.

        ``purpose`` (the HTTP API's StartStreamProcessor) replaces the stored one, and the
        starter becomes the identity its matches are audited under.
        """
        self.reap_finished(name)
        if name in self._actors:
            return self.describe(name)
        if purpose is not None:
            settings = self.registry.settings(name).model_copy(update={"purpose": purpose})
            self.registry.update(
                name,
                settings=_reveal(settings.model_dump(mode="python")),
                started_by={"key_id": actor.key_id, "role": actor.role},
            )
        settings = self.registry.settings(name)
        entry = self.registry.get(name)
        creator = entry.get("started_by") or entry["created_by"]
        ctx = WorkerContext(
            home=self.runtime.home.resolve(),
            audit_path=self.runtime.resolved_audit_path.resolve(),
            media_dirs=tuple(d.resolve() for d in self.media_dirs),
            actor_key_id=str(creator["key_id"]),
            actor_role=str(creator["role"]),
            actor_env=tuple(sorted(self.runtime.actor_env_vars.items())),
        )
        # Audited before the first frame is read: a stream is an ongoing identification.
        self.audit.append(
            actor=actor,
            operation="StartStreamProcessor",
            purpose=settings.purpose,
            inputs={
                "name": name,
                "source": describe_source(settings.source),
                "collection": settings.collection,
                "threshold": settings.threshold,
            },
        )
        # Which collection this run searches: what the event query's CollectionId filter reads.
        record_run(self.runtime.resolved_events_path, name, settings.collection)
        handle = spawn(settings, self.face, self.store, ctx)
        self._actors[name] = handle
        import ray

        try:
            status = ray.get(handle.start.remote(), timeout=self.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            # Most often: no CPU left on the cluster for the decode actor's reservation.
            self._actors.pop(name, None)
            ray.kill(handle)
            raise StreamUnavailable(
                f"stream processor {name!r} did not start within {self.start_timeout_s:.0f} s: the "
                f"cluster has no room for its decode actor (it reserves {settings.actor_num_cpus} CPU); "
                "add nodes or lower actor_num_cpus"
            ) from None
        self.registry.update(name, desired=RUNNING, last_status=_brief(status))
        return dict(status)

    def stop(self, name: str, actor: Actor, timeout_s: float = 60.0) -> dict[str, Any]:
        import ray

        self.registry.get(name)  # unknown name: ResourceNotFound
        handle = self._actors.pop(name, None)
        status: dict[str, Any] = {"Name": name, "Status": STOPPED, "StatusMessage": "not running"}
        if handle is not None:
            try:
                status = ray.get(handle.stop.remote(timeout_s), timeout=timeout_s + 10)
            finally:
                _kill(handle, name)
        self.registry.update(name, desired=STOPPED, last_status=_brief(status), last_counters=_counts(status))
        close_run(self.runtime.resolved_events_path, name)
        self.audit.append(
            actor=actor,
            operation="StopStreamProcessor",
            inputs={"name": name},
            results={"status": status.get("Status"), "events": status.get("Events", 0)},
        )
        return status

    def describe(self, name: str) -> dict[str, Any]:
        import ray

        entry = self.registry.get(name)
        settings = ProcessorSettings.model_validate(entry["settings"])
        out: dict[str, Any] = {
            "Name": name,
            "Settings": public_settings(settings),
            "CreationTimestamp": entry["created_ms"] / 1000.0,
            "Desired": entry["desired"],
        }
        handle = self._actors.get(name)
        if handle is not None:
            try:
                out.update(ray.get(handle.status.remote(), timeout=30))
                return out
            except Exception as exc:  # the actor died: report what we knew last
                out.update(
                    {"Status": "FAILED", "StatusMessage": f"processor actor lost: {type(exc).__name__}"}
                )
                return out
        out.update({k: v for k, v in (entry.get("last_counters") or {}).items() if v is not None})
        out.update(entry["last_status"])
        return out

    def list_all(self) -> list[dict[str, Any]]:
        return [{"Name": n, "Status": self.describe(n)["Status"]} for n in self.registry.names()]

    def delete(self, name: str, actor: Actor) -> None:
        if name in self._actors:
            self.stop(name, actor)
        self.registry.get(name)
        self.registry.remove(name)
        # Its console preview (blurred, but still a frame of the scene) goes with it.
        preview_path(self.runtime.home, name).unlink(missing_ok=True)
        self.audit.append(actor=actor, operation="DeleteStreamProcessor", inputs={"name": name})

    def resume(self, actor: Actor) -> list[str]:
        """Start every processor whose persisted state says it should run."""
        started = []
        for name in self.registry.names():
            if self.registry.get(name)["desired"] == RUNNING and name not in self._actors:
                log.info("resuming stream processor %s", name, extra={"stream_id": name})
                self.start(name, actor)
                started.append(name)
        return started

    def running(self) -> list[str]:
        return sorted(self._actors)

    def is_active(self, name: str) -> bool:
        """True while ``name`` has an actor that has not finished (starting, running, stopping)."""
        import ray

        handle = self._actors.get(name)
        if handle is None:
            return False
        try:
            return not bool(ray.get(handle.wait.remote(0.0), timeout=30))
        except Exception:  # the actor died: not active
            return False

    def reap_finished(self, name: str | None = None) -> list[str]:
        """Release the actors of processors that ended by themselves (file over, failed).

        Their last status goes to the registry with ``desired = STOPPED`` (a restarted driver
        must not run a finished file again). Returns the names released.
        """
        import ray

        done = []
        for n in [name] if name is not None else list(self._actors):
            handle = self._actors.get(n)
            if handle is None or self.is_active(n):
                continue
            try:
                status = ray.get(handle.status.remote(), timeout=30)
            except Exception as exc:  # the actor died
                status = {"Status": "FAILED", "StatusMessage": f"processor actor lost: {type(exc).__name__}"}
            self._actors.pop(n, None)
            _kill(handle, n)
            self.registry.update(
                n, desired=STOPPED, last_status=_brief(status), last_counters=_counts(status)
            )
            close_run(self.runtime.resolved_events_path, n)
            done.append(n)
        return done

    def handle(self, name: str) -> Any:
        return self._actors[name]

    def wait(self, names: list[str], timeout_s: float) -> list[str]:
        """Wait until the named processors finish (or ``timeout_s``); returns those finished."""
        import ray

        deadline = time.monotonic() + timeout_s
        finished: list[str] = []
        for n in names:
            h = self._actors.get(n)
            if h is None:
                finished.append(n)
                continue
            lost_since: float | None = None
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    ended = ray.get(h.wait.remote(min(left, 5.0)), timeout=min(left, 5.0) + 30)
                except ray.exceptions.RayActorError:
                    # Restarting in a new process (max_restarts) answers again soon; gone for
                    # good after _ACTOR_LOST_S is as finished as it will ever be.
                    lost_since = lost_since or time.monotonic()
                    if time.monotonic() - lost_since > _ACTOR_LOST_S:
                        finished.append(n)
                        break
                    time.sleep(1.0)
                    continue
                lost_since = None
                if ended:
                    finished.append(n)
                    # It ended by itself (file over, or failed): a resumed job must not rerun it.
                    status = ray.get(h.status.remote(), timeout=30)
                    self.registry.update(n, desired=STOPPED, last_status=_brief(status))
                    break
        return finished

    def shutdown(self, actor: Actor, timeout_s: float = 60.0) -> None:
        """Stop every running processor of this driver, keeping their desired state for resume."""
        import ray

        for name in list(self._actors):
            handle = self._actors.pop(name)
            try:
                status = ray.get(handle.stop.remote(timeout_s), timeout=timeout_s + 10)
                self.registry.update(name, last_status=_brief(status))
            finally:
                ray.kill(handle)


def _kill(handle: Any, name: str, timeout_s: float = 15.0) -> None:
    """Kill a processor's actor and wait until its name is free (a restart reuses the name)."""
    import ray

    ray.kill(handle)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(f"facestream-stream-{name}")
        except ValueError:
            return
        time.sleep(0.1)
    log.warning("actor of stream processor %s still registered after %.0fs", name, timeout_s)


def _counts(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status.get(k) for k in ("Events", "Faces", "Searches", "TracksStarted", "Counters")}


def _brief(status: dict[str, Any]) -> dict[str, Any]:
    return {"Status": status.get("Status"), "StatusMessage": status.get("StatusMessage")}
