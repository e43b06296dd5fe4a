"""The facestream Serve application: the HTTP API deployment in front of the batched
face analysis deployment.

``serve run cluster/serve.yaml`` (``import_path: serve.app:build_app``) and
``facestream serve`` both build it with :func:`build_app` from typed :class:`ApiAppArgs`.
With Milvus Lite the API reaches the face store through the store actor of its URI
(:mod:`pipelines.store_actor`), the one process that opens the ``.db`` file, shared with the
stream processors the API starts; with a Milvus server each replica has its own client
(``ApiConfig.store_access``). The API reaches the analysis replicas through a
DeploymentHandle, the same deployment its stream processors send their frames to.
"""

# No `from __future__ import annotations`: Serve reads build_app's annotation to validate args.

import logging
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serve.config import ApiAppArgs, ApiConfig

log = logging.getLogger(__name__)

API_DEPLOYMENT = "FacestreamAPI"


@serve.ingress()
class FacestreamAPI:
    """One API replica: builds the service in ``__init__``, the ASGI app right after."""

    def __init__(self, config: ApiConfig | dict[str, Any], analysis: DeploymentHandle) -> None:
        from serve.analysis_client import HandleAnalyzer
        from serve.service import ApiService

        self.config = config if isinstance(config, ApiConfig) else ApiConfig.model_validate(config)
        analyzer = HandleAnalyzer(analysis, self.config.limits.analysis_timeout_s)
        streams = _streams_module()
        store = streams.shared_store(self.config) if streams is not None else None
        self.service = ApiService(
            self.config,
            analyzer,
            extra_operations=_extra_operations(streams),
            store=store,
        )
        if streams is not None:
            streams.attach(self.service, analysis)
        log.info("facestream API replica ready (store %s)", self.config.resolved_store_uri)

    def __serve_build_asgi_app__(self) -> Any:
        from serve.http import create_app

        return create_app(self.service)

    def __del__(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.close()
            streams = getattr(service, "streams", None)
            if streams is not None:
                streams.shutdown()


def _extra_operations(streams: Any) -> list[Any]:
    """Stream processors and human review, when the pipelines package is installed; the console's."""
    from serve.console import console_operations

    if streams is None:
        return console_operations()
    from serve.review import review_operations

    return [*streams.stream_operations(), *review_operations(), *console_operations()]


def _streams_module() -> Any:
    """:mod:`serve.streams` (stream processors, match events, the shared store actor), when the
    pipelines package is installed alongside; None otherwise."""
    try:
        from serve import streams
    except ImportError as exc:
        log.warning("stream processors over HTTP are unavailable: %s", exc)
        return None
    return streams


def build_app(args: ApiAppArgs) -> Application:
    """The whole application (API + face analysis) from typed arguments."""
    from pipelines.face_service import deployment as analysis_deployment

    emb = args.embedding
    analysis = analysis_deployment(emb, name=args.embedding_deployment_name).bind(emb)
    dep = args.deployment
    api: Any = serve.deployment(
        FacestreamAPI,
        name=API_DEPLOYMENT,
        num_replicas=dep.num_replicas,
        max_ongoing_requests=dep.max_ongoing_requests,
        ray_actor_options={"num_cpus": dep.num_cpus},
    )
    # The config object itself (not a dump) goes to the replicas: a dump would mask the secrets.
    return api.bind(absolute_paths(args.api), analysis)


def absolute_paths(cfg: ApiConfig) -> ApiConfig:
    """Paths resolved against this process's cwd: replicas may run elsewhere."""
    update: dict[str, Any] = {"home": cfg.home.resolve()}
    if cfg.store_uri is not None and cfg.store_uri.endswith(".db"):
        from pathlib import Path

        update["store_uri"] = str(Path(cfg.store_uri).resolve())
    if cfg.audit_path is not None:
        update["audit_path"] = cfg.audit_path.resolve()
    if cfg.events_path is not None:
        update["events_path"] = cfg.events_path.resolve()
    update["media_dirs"] = tuple(p.resolve() for p in cfg.media_dirs)
    if cfg.auth.keys_path is not None:
        update["auth"] = cfg.auth.model_copy(update={"keys_path": cfg.auth.keys_path.resolve()})
    update["image_roots"] = {k: p.resolve() for k, p in cfg.image_roots.items()}
    return cfg.model_copy(update=update)
