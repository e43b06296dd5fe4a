"""Ray, the shared face deployment and the store actor, started once per driver."""

from __future__ import annotations

import logging
import os
from typing import Any

from facestream.config import EmbeddingServiceConfig

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def ensure_ray(address: str | None = None) -> bool:
    """Connect to Ray (given address, ``RAY_ADDRESS`` inside a job) or start a local one.

    A local Ray binds 127.0.0.1 only. Returns True when this call started/connected Ray (the
    caller then owns ``ray.shutdown()``), False when Ray was already initialised.
    """
    import ray

    from facestream.localray import init_local_ray

    if ray.is_initialized():
        return False
    addr = address or os.environ.get("RAY_ADDRESS")
    if addr:
        ray.init(address=addr, configure_logging=False, log_to_driver=False)
    else:
        init_local_ray()
    return True


def ensure_face_service(config: EmbeddingServiceConfig, app_name: str) -> Any:
    """DeploymentHandle of the batched face deployment, deploying it if the app is absent.

    Serve is started without an HTTP proxy when this call starts it: streams talk to the
    deployment through handles only (the HTTP API, if any, starts its own proxy).
    """
    from ray import serve
    from ray.serve.config import ProxyLocation

    from pipelines.face_service import deployment

    try:
        handle = serve.get_app_handle(app_name)
        log.info("using running Serve app %s", app_name)
        return handle
    except Exception:  # noqa: S110 - "not running" comes as several exception types
        pass
    serve.start(proxy_location=ProxyLocation.Disabled)
    log.info("deploying face analysis app %s", app_name)
    return serve.run(
        deployment(config).bind(config.model_dump(mode="json")), name=app_name, route_prefix=None
    )


def delete_face_service(app_name: str) -> None:
    from ray import serve

    try:
        serve.delete(app_name)
    except Exception as exc:  # Serve already gone: nothing to delete
        log.debug("serve.delete(%s): %s", app_name, exc)
