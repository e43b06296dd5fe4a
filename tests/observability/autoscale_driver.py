"""Driver for test_autoscaling: deploy FaceAnalysis with fast autoscaling on a running Ray, load
it until it scales up, stop, wait until it scales down; write a JSON summary to --out.

Run as ``python tests/observability/autoscale_driver.py --address 127.0.0.1:PORT`` with the
cluster's environment (token). A separate process because a pytest session may already hold a
local Ray (``tests.ray_fixtures.ray_local``) and a driver connects to one Ray at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("autoscale_driver")

APP = "autoscale"
NAME = "FaceAnalysis"


def replicas(address: str) -> tuple[int, dict[str, str]]:
    """RUNNING replicas of the deployment, and node id by replica actor."""
    from ray import serve
    from ray.util.state import list_actors

    app = serve.status().applications.get(APP)
    running = 0
    if app is not None and NAME in app.deployments:
        running = sum(
            n for st, n in app.deployments[NAME].replica_states.items() if str(st).endswith("RUNNING")
        )
    nodes = {
        str(a.actor_id): str(a.node_id)
        for a in list_actors(
            address=address, filters=[("state", "=", "ALIVE")], timeout=30, raise_on_missing_output=False
        )
        if str(a.class_name).startswith(f"ServeReplica:{APP}:{NAME}")
    }
    return running, nodes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--image", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path, help="JSON summary goes here")
    ap.add_argument("--max-replicas", type=int, default=3)
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--up-timeout-s", type=float, default=120.0)
    ap.add_argument("--down-timeout-s", type=float, default=90.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    import ray
    from ray import serve
    from ray.serve.config import ProxyLocation

    from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig
    from facestream.imageio import load_image_file
    from facestream.localray import init_local_ray
    from pipelines.face_service import deployment

    init_local_ray(address=args.address)
    config = EmbeddingServiceConfig(
        analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu")),
        max_batch_size=1,
        num_cpus=1,
        min_replicas=1,
        max_replicas=args.max_replicas,
        target_ongoing_requests=1,
        max_ongoing_requests=4,
    )
    dep = deployment(config).options(
        autoscaling_config={
            "min_replicas": config.min_replicas,
            "max_replicas": config.max_replicas,
            "target_ongoing_requests": config.target_ongoing_requests,
            "upscale_delay_s": 1.0,
            "downscale_delay_s": 5.0,
            "metrics_interval_s": 1.0,
            "look_back_period_s": 3.0,
        }
    )
    timeline: list[dict[str, Any]] = []
    t0 = time.monotonic()
    nodes_seen: set[str] = set()

    def sample(phase: str) -> int:
        n, nodes = replicas(args.address)
        nodes_seen.update(nodes.values())
        timeline.append(
            {
                "t_s": round(time.monotonic() - t0, 1),
                "phase": phase,
                "running": n,
                "nodes": len(set(nodes.values())),
            }
        )
        return n

    try:
        serve.start(proxy_location=ProxyLocation.Disabled)
        handle = serve.run(dep.bind(config.model_dump(mode="json")), name=APP, route_prefix=None)
        rgb = load_image_file(args.image).rgb
        handle.analyze.remote(rgb).result(timeout_s=120)
        sample("idle")
        stop = threading.Event()
        done = [0]

        def load() -> None:
            while not stop.is_set():
                try:
                    handle.analyze.remote(rgb).result(timeout_s=120)
                    done[0] += 1
                except Exception as exc:  # keep loading; report what failed
                    log.warning("request failed: %s", type(exc).__name__)

        workers = [threading.Thread(target=load, daemon=True) for _ in range(args.in_flight)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + args.up_timeout_s
        peak = 0
        while time.monotonic() < deadline:
            peak = max(peak, sample("load"))
            if peak >= args.max_replicas:
                break
            time.sleep(2.0)
        stop.set()
        for w in workers:
            w.join(timeout=130)
        log.info("load stopped after %s requests; peak %s replicas", done[0], peak)
        deadline = time.monotonic() + args.down_timeout_s
        final = peak
        while time.monotonic() < deadline:
            final = sample("after")
            if final <= config.min_replicas:
                break
            time.sleep(2.0)
        out = {
            "peak": peak,
            "final": final,
            "requests": done[0],
            "nodes_used": len(nodes_seen),
            "timeline": timeline,
        }
        args.out.write_text(json.dumps(out))
        return 0
    finally:
        try:
            serve.delete(APP)
            serve.shutdown()
        finally:
            ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
