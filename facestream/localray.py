"""Start or join a Ray that lives on loopback only (tests, the CLI, the demo).

Ray 2.60 turns a node IP of 127.0.0.1 into the machine's "remotely reachable" address, and
its servers then bind that address or the wildcard. Setting
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is Ray's own switch for single-machine operation
(the default on macOS/Windows): the node IP stays 127.0.0.1 and every Ray server binds
loopback. Real clusters start Ray with ``ray start`` from cluster/ray-cluster.yaml instead.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: environment that keeps a locally started Ray (and every process it spawns) on loopback
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def loopback_env() -> dict[str, str]:
    """``os.environ`` plus :data:`LOOPBACK_ENV`, for ``ray start`` subprocesses."""
    return {**os.environ, **LOOPBACK_ENV}


def init_local_ray(*, num_cpus: int | None = None, address: str | None = None, **kwargs: Any) -> Any:
    """``ray.init`` on loopback; ``address`` joins a running local cluster instead of starting one."""
    os.environ.update(LOOPBACK_ENV)
    import ray
    from ray._private import ray_constants

    # Read by Ray at import time: patch it too in case ray was imported before us.
    ray_constants.ENABLE_RAY_CLUSTER = False
    if ray.is_initialized():
        return None
    opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    opts.update(kwargs)
    if address is None:
        opts["_node_ip_address"] = LOOPBACK
        if num_cpus is not None:
            opts["num_cpus"] = num_cpus
    info = ray.init(address=address, **opts)
    ip = getattr(info, "address_info", {}).get("node_ip_address")
    if ip != LOOPBACK:
        log.warning("Ray node IP is %s, not loopback; was it started without LOOPBACK_ENV?", ip)
    return info
