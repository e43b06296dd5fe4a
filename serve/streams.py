"""Stream processors and the match-event query over HTTP, and the store the API shares with them.

Installed into the API replica by :mod:`serve.app` (``shared_store``, ``stream_operations``,
``attach``). The replica runs a :class:`pipelines.manager.StreamProcessorManager`: each
processor it starts is a Ray actor sending frames to the same analysis deployment as the API
and searching through the same store actor (:mod:`pipelines.store_actor`), so a processor
started over HTTP searches exactly the collections the API indexes into. Every processor
created over HTTP writes its match records to the shared event store
(``ApiConfig.resolved_events_path``), which ``QueryMatchEvents`` reads.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, cast

from pydantic import ValidationError

from facestream.errors import InvalidParameter, ResourceInUse
from facestream.operations import check_purpose
from facestream.profiles import resolve_profile
from facestream.store import FaceStore
from pipelines.config import (
    EventStoreSinkConfig,
    JsonlSinkConfig,
    KinesisVideoSource,
    ProcessorSettings,
    RuntimeConfig,
    SinkConfig,
    SourceConfig,
    WebhookSinkConfig,
)
from pipelines.event_query import EventFilter, EventQuery
from pipelines.manager import StreamProcessorManager
from pipelines.store_actor import RemoteFaceStore, store_actor
from pipelines.urls import check_webhook_url, describe_source, media_dirs_from_env, source_from_url
from serve import models as m
from serve.config import ApiConfig
from serve.errors import InvalidPaginationToken, NotImplementedYet
from serve.keys import Role
from serve.service import ADMIN, AUDIT, ApiService, Operation, Principal

log = logging.getLogger(__name__)

_KVS_ARN = re.compile(
    r"^arn:aws[a-z\-]*:kinesisvideo:([a-z0-9\-]+):\d{12}:stream/([a-zA-Z0-9_.\-]{1,256})/\d+$"
)
#: Describe and List: viewers and auditors (roles do not nest: an admin manages, a viewer watches)
VIEW_STREAMS = frozenset({Role.VIEWER, Role.AUDITOR})
#: placeholder purpose of a processor created without one (StartStreamProcessor must give one)
_NO_PURPOSE = "(none yet: StartStreamProcessor gives the purpose)"


def shared_store(config: ApiConfig) -> FaceStore | None:
    """The store actor's client when the API must share the store (Milvus Lite); else None."""
    if not config.uses_store_actor:
        return None
    store = RemoteFaceStore(
        config.resolved_store_uri, token=config.store_token, pagination_secret=config.pagination_secret
    )
    log.info("API store access through the store actor of %s", config.resolved_store_uri)
    return store


class StreamsBackend:
    """The stream-processor manager and the event query of one API replica."""

    def __init__(self, config: ApiConfig, analysis: Any) -> None:
        self.config = config
        media = list(config.media_dirs) or media_dirs_from_env([config.state.media])
        self.runtime = RuntimeConfig(
            home=config.home,
            store_uri=config.resolved_store_uri,
            audit_path=config.resolved_audit_path,
            events_path=config.resolved_events_path,
            media_dirs=tuple(media),
        )
        self.manager = StreamProcessorManager(self.runtime, analysis, self._store_handle())
        secret = config.pagination_secret
        self.events = EventQuery(
            config.resolved_events_path, secret.get_secret_value().encode() if secret is not None else None
        )

    def _store_handle(self) -> Any:
        cfg = self.config
        return store_actor(
            cfg.resolved_store_uri, token=cfg.store_token, pagination_secret=cfg.pagination_secret
        )

    def refresh_store(self) -> None:
        """New processors get the live store actor (it is re-created if its creator exited)."""
        self.manager.store = self._store_handle()

    def resume(self) -> None:
        """Start again every processor that was running when the previous replica went away."""
        from facestream.audit import Actor

        actor = Actor(key_id="system:api-resume", role="admin")
        for name in self.manager.registry.names():
            entry = self.manager.registry.get(name)
            if entry["desired"] != "RUNNING":
                continue
            try:
                self.manager.start(name, actor)
            except Exception as exc:  # one bad processor must not keep the API down
                log.error("cannot resume stream processor %s: %s", name, exc, extra={"stream_id": name})

    def shutdown(self) -> None:
        from facestream.audit import Actor

        self.manager.shutdown(Actor(key_id="system:api-shutdown", role="admin"))
        self.events.close()


def attach(service: ApiService, analysis: Any) -> None:
    """Give ``service`` its stream backend and resume persisted processors."""
    backend = StreamsBackend(service.config, analysis)
    service.streams = backend
    backend.resume()


def _backend(s: ApiService) -> StreamsBackend:
    if s.streams is None:
        raise NotImplementedYet("stream processors are not available in this deployment")
    return cast(StreamsBackend, s.streams)


# ── request -> settings ──────────────────────────────────────────────────────────────────


def _source(inp: m.StreamInputModel) -> SourceConfig:
    url = inp.Url if inp.Url is not None else cast(m.KinesisVideoStreamModel, inp.KinesisVideoStream).Arn
    kvs = _KVS_ARN.match(url)
    if kvs is not None:
        return KinesisVideoSource(region=kvs.group(1), stream_name=kvs.group(2))
    return source_from_url(url, rtsp_transport=inp.RtspTransport, loop=inp.Loop, realtime=inp.Realtime)


def _sinks(b: StreamsBackend, out: m.StreamOutputModel, name: str) -> tuple[SinkConfig, ...]:
    if out.KinesisDataStream is not None:
        raise InvalidParameter(
            "Output.KinesisDataStream is not supported: match records go to the event store "
            "(QueryMatchEvents), Output.S3Destination (JSON lines) or Output.Webhook"
        )
    sinks: list[SinkConfig] = [EventStoreSinkConfig(path=b.runtime.resolved_events_path)]
    if out.S3Destination is not None:
        dest = out.S3Destination
        prefix = dest.KeyPrefix or ""
        if ".." in prefix.split("/") or prefix.startswith("/"):
            raise InvalidParameter(f"Output.S3Destination.KeyPrefix {prefix!r} must stay inside the bucket")
        path = b.config.state.outputs / dest.Bucket / f"{prefix}{name}.jsonl"
        sinks.append(JsonlSinkConfig(path=path))
    if out.Webhook is not None:
        check_webhook_url(out.Webhook.Url, b.config.webhook_hosts)
        sinks.append(WebhookSinkConfig(url=out.Webhook.Url, bearer_token=out.Webhook.BearerToken))
    return tuple(sinks)


def _settings_error(exc: ValidationError) -> InvalidParameter:
    msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
    return InvalidParameter(msgs)


def _arn(s: ApiService, name: str) -> str:
    """The processor's ARN, Rekognition-shaped (``ApiConfig.arn``)."""
    a = s.config.arn
    return f"arn:{a.partition}:rekognition:{a.region}:{a.account}:streamprocessor/{name}"


def _public(s: ApiService, b: StreamsBackend, name: str) -> dict[str, Any]:
    """DescribeStreamProcessor's answer: Rekognition's fields plus ``Facestream`` details (the
    Rekognition protocol strips those). The source is in ``Facestream.Source`` only: Rekognition's
    ``Input`` holds a Kinesis Video stream ARN, which a file, RTSP or HLS source has not, and the
    account of a given ARN is not kept."""
    b.manager.reap_finished(name)
    d = b.manager.describe(name)
    entry = b.manager.registry.get(name)
    settings = b.manager.registry.settings(name)
    sinks = [s.kind for s in settings.sinks]
    out: dict[str, Any] = {
        "Name": name,
        "StreamProcessorArn": _arn(s, name),
        "Status": d.get("Status", "STOPPED"),
        "StatusMessage": d.get("StatusMessage", ""),
        "CreationTimestamp": d["CreationTimestamp"],
        "LastUpdateTimestamp": entry.get("updated_ms", entry["created_ms"]) / 1000.0,
        "Output": {"FacestreamSinks": sinks},
        "Settings": {
            "FaceSearch": {"CollectionId": settings.collection, "FaceMatchThreshold": settings.threshold}
        },
        "Facestream": {
            "Source": describe_source(settings.source),
            "Purpose": settings.purpose,
            "Desired": d.get("Desired"),
            "PreviewIntervalSeconds": settings.preview_interval_s,
            "EvidenceFrames": settings.evidence_frames,
            **{
                k: d[k]
                for k in (
                    "Events",
                    "Faces",
                    "Searches",
                    "TracksStarted",
                    "Counters",
                    "Delivered",
                    "SinkErrors",
                )
                if k in d
            },
        },
    }
    return out


# ── handlers ─────────────────────────────────────────────────────────────────────────────


def _create(
    s: ApiService, r: m.CreateStreamProcessorRequest, p: Principal, purpose: str | None
) -> dict[str, Any]:
    b = _backend(s)
    if r.Settings.ConnectedHome is not None or r.Settings.FaceSearch is None:
        raise InvalidParameter(
            "Settings.FaceSearch is required; ConnectedHome (label detection) is not supported"
        )
    for field in ("NotificationChannel", "RegionsOfInterest"):
        if getattr(r, field):
            raise InvalidParameter(f"{field} is not supported by facestream stream processors")
    fs = r.Settings.FaceSearch
    s.store.describe_collection(fs.CollectionId)  # unknown collection: ResourceNotFound now
    if r.Name in b.manager.registry.names():
        raise ResourceInUse(f"stream processor {r.Name!r} already exists")
    given = r.Purpose or purpose
    try:
        settings = ProcessorSettings(
            name=r.Name,
            source=_source(r.Input),
            collection=fs.CollectionId,
            purpose=check_purpose(given) if given else _NO_PURPOSE,
            # The deployment profile's default and floor (public-safety: 99) hold here too.
            threshold=resolve_profile().threshold(fs.FaceMatchThreshold),
            max_matches=r.MaxMatches,
            analysis_fps=r.AnalysisFps,
            sinks=_sinks(b, r.Output, r.Name),
            preview_interval_s=r.PreviewIntervalSeconds,
            evidence_frames=r.EvidenceFrames,
        )
        b.manager.create(settings, p.actor)
    except ValidationError as exc:
        raise _settings_error(exc) from None
    except (ValueError, OSError) as exc:
        # A URL urllib cannot split, a path the OS will not resolve: bad input, not a crash.
        raise InvalidParameter(f"Input: not a usable source ({type(exc).__name__})") from None
    return {"StreamProcessorArn": _arn(s, r.Name)}


def _start(
    s: ApiService, r: m.StartStreamProcessorRequest, p: Principal, purpose: str | None
) -> dict[str, Any]:
    b = _backend(s)
    if r.StartSelector is not None or r.StopSelector is not None:
        raise InvalidParameter("StartSelector and StopSelector are not supported; use StopStreamProcessor")
    why = check_purpose(r.Purpose or purpose)  # 400 PurposeRequiredException before anything else
    b.manager.registry.settings(r.Name)  # unknown: ResourceNotFound
    b.manager.reap_finished(r.Name)
    if b.manager.is_active(r.Name):
        raise ResourceInUse(f"stream processor {r.Name!r} is already running")
    b.refresh_store()
    status = b.manager.start(r.Name, p.actor, purpose=why)
    session = f"{r.Name}:{int(time.time() * 1000)}"
    return {"SessionId": session, "FacestreamStatus": status.get("Status")}


def _stop(s: ApiService, r: m.StreamProcessorNameRequest, p: Principal, _: str | None) -> dict[str, Any]:
    b = _backend(s)
    b.manager.registry.get(r.Name)
    b.manager.stop(r.Name, p.actor)
    return {}


def _describe(s: ApiService, r: m.StreamProcessorNameRequest, p: Principal, _: str | None) -> dict[str, Any]:
    return _public(s, _backend(s), r.Name)


def _list(s: ApiService, r: m.ListStreamProcessorsRequest, p: Principal, _: str | None) -> dict[str, Any]:
    b = _backend(s)
    b.manager.reap_finished()
    names = b.manager.registry.names()
    start = 0
    if r.NextToken is not None:
        if r.NextToken not in names:
            raise InvalidPaginationToken("NextToken does not name a stream processor (it was deleted?)")
        start = names.index(r.NextToken)
    size = r.MaxResults or 1000
    page = names[start : start + size]
    out: dict[str, Any] = {
        "StreamProcessors": [{"Name": n, "Status": b.manager.describe(n).get("Status")} for n in page]
    }
    if start + size < len(names):
        out["NextToken"] = names[start + size]
    return out


def _delete(s: ApiService, r: m.StreamProcessorNameRequest, p: Principal, _: str | None) -> dict[str, Any]:
    b = _backend(s)
    b.manager.registry.get(r.Name)
    b.manager.reap_finished(r.Name)
    if b.manager.is_active(r.Name):
        raise ResourceInUse(f"stream processor {r.Name!r} is running; stop it first")
    b.manager.delete(r.Name, p.actor)
    return {}


def _update(s: ApiService, r: m.UpdateStreamProcessorRequest, p: Principal, _: str | None) -> dict[str, Any]:
    b = _backend(s)
    settings = b.manager.registry.settings(r.Name)
    upd = r.SettingsForUpdate
    if upd is not None and upd.ConnectedHomeForUpdate is not None:
        raise InvalidParameter(
            "SettingsForUpdate.ConnectedHomeForUpdate is not supported (no label detection)"
        )
    if r.RegionsOfInterestForUpdate:
        raise InvalidParameter("RegionsOfInterestForUpdate is not supported")
    b.manager.reap_finished(r.Name)
    if b.manager.is_active(r.Name):
        raise ResourceInUse(f"stream processor {r.Name!r} is running; stop it before updating")
    changes: dict[str, Any] = {}
    fs = upd.FaceSearchForUpdate if upd is not None else None
    if fs is not None and fs.CollectionId is not None:
        s.store.describe_collection(fs.CollectionId)
        changes["collection"] = fs.CollectionId
    if fs is not None and fs.FaceMatchThreshold is not None:
        changes["threshold"] = resolve_profile().threshold(fs.FaceMatchThreshold)
    if changes:
        new = ProcessorSettings.model_validate({**settings.model_dump(), **changes})
        b.manager.create(new, p.actor, replace=True)
        b.manager.registry.update(r.Name, updated_ms=int(time.time() * 1000))
    return {}


def _query_events(s: ApiService, r: m.QueryMatchEventsRequest, p: Principal, _: str | None) -> dict[str, Any]:
    b = _backend(s)
    if r.StartTimestamp is not None and r.EndTimestamp is not None and r.StartTimestamp > r.EndTimestamp:
        raise InvalidParameter("StartTimestamp is after EndTimestamp")
    flt = EventFilter(
        processor=r.StreamProcessorName,
        collection=r.CollectionId,
        external_image_id=r.ExternalImageId,
        face_id=r.FaceId,
        start_ts=r.StartTimestamp,
        end_ts=r.EndTimestamp,
        min_similarity=r.MinSimilarity,
    )
    try:
        events, token = b.events.query(flt, max_results=r.MaxResults, next_token=r.NextToken)
    except InvalidParameter as exc:
        if "NextToken" in exc.message:
            raise InvalidPaginationToken(exc.message) from None
        raise
    s.audit.append(
        actor=p.actor,
        operation="QueryMatchEvents",
        inputs={k: v for k, v in r.model_dump(exclude={"NextToken"}).items() if v is not None},
        results={"events": len(events)},
    )
    out: dict[str, Any] = {"Events": events}
    if token is not None:
        out["NextToken"] = token
    return out


def stream_operations() -> list[Operation]:
    return [
        Operation("CreateStreamProcessor", m.CreateStreamProcessorRequest, ADMIN, _create),
        Operation(
            "StartStreamProcessor",
            m.StartStreamProcessorRequest,
            ADMIN,
            _start,
            summary="Start a stream processor; needs a purpose (header or Purpose field), audited",
        ),
        Operation("StopStreamProcessor", m.StreamProcessorNameRequest, ADMIN, _stop),
        Operation("DescribeStreamProcessor", m.StreamProcessorNameRequest, VIEW_STREAMS, _describe),
        Operation("ListStreamProcessors", m.ListStreamProcessorsRequest, VIEW_STREAMS, _list),
        Operation("DeleteStreamProcessor", m.StreamProcessorNameRequest, ADMIN, _delete),
        Operation("UpdateStreamProcessor", m.UpdateStreamProcessorRequest, ADMIN, _update),
        Operation(
            "QueryMatchEvents",
            m.QueryMatchEventsRequest,
            AUDIT,
            _query_events,
            summary="Match events of every processor by processor, time, collection, external id",
        ),
    ]


__all__ = ["StreamsBackend", "attach", "shared_store", "stream_operations"]
