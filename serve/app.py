"""The facestream Serve application: the HTTP API deployment in front of the batched
face analysis deployment.

``serve run cluster/serve.yaml`` (``import_path: serve.app:build_app``) and
``facestream serve`` both build it with :func:`build_app` from typed :class:`ApiAppArgs`.
The API replica owns the face store (one replica for Milvus Lite: only one process may
open a ``.db`` file) and reaches the analysis replicas through a DeploymentHandle, the same
deployment stream jobs send their frames to (look it up by ``embedding_deployment_name``).
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
        self.service = ApiService(self.config, analyzer, extra_operations=_stream_operations())
        log.info("facestream API replica ready (store %s)", self.config.resolved_store_uri)

    def __serve_build_asgi_app__(self) -> Any:
        from serve.http import create_app

        return create_app(self.service)

    def __del__(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.close()


def _stream_operations() -> list[Any]:
    """Stream-processor and match-event operations, when the pipelines package provides them."""
    try:
        from serve.streams import stream_operations
    except ImportError:
        return []
    ops: list[Any] = stream_operations()
    return ops


def build_app(args: ApiAppArgs) -> Application:
    """The whole application (API + face analysis) from typed arguments."""
    from serve.embedding import deployment as analysis_deployment

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
    if cfg.auth.keys_path is not None:
        update["auth"] = cfg.auth.model_copy(update={"keys_path": cfg.auth.keys_path.resolve()})
    update["image_roots"] = {k: p.resolve() for k, p in cfg.image_roots.items()}
    return cfg.model_copy(update=update)
