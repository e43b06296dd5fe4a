"""Stream affinity as the face deployment scales: 1, 2 and 3 replicas, the same streams.

Each stream is a Ray actor with its own DeploymentHandle (as a stream worker has), sending the
hamilton clip sampled at 5 fps (each stream starting at a different frame, looping) with at most
2 frames in flight and its name as ``stream_key``. The streams first run ``--warmup-s`` unmeasured
(they start together, so the router's first placement settles: see ``pipelines/face_router.py``),
then ``--frames`` each are measured: the difference of every replica's ``stats()`` before and after
gives the frames it served per stream and its fast-path counts (``models/fastdetect.py``):

* ``home_replica_share``: over all streams, the share of a stream's frames served by the replica
  that served most of them (1.0: every stream stayed on one replica), worst point of 2-3 replicas;
* ``fast_path_share``: reused + refined frames / all keyed frames (the rest are full detections);
  ``fast_path_share_3_replicas_vs_1`` compares 3 replicas with 1 (same streams, same frames).

A point with Serve's default routing (``stream_affinity: false``) at 3 replicas shows what
affinity prevents. First, the routing choice: the stream-affinity router against Serve's model
multiplexing with the stream key as the model id, on a dummy deployment (30 ms of waiting per
request, 12 streams, 2 in flight each), by home-replica share.

Runs on the loopback multi-node cluster of ``tests/local_cluster.py`` (a head and two worker
nodes, 1 CPU each, all on 127.0.0.1) unless ``--local`` (one local Ray).

    python -m bench.scale [--quick] [--local] [--streams 6] [--frames 40] [--warmup-s 15]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, faces_dir, parser, print_ratios, print_table, setup_logging, write_result

log = logging.getLogger("bench.scale")

FPS = 5.0
CLIP = "face_recognition/examples/short_hamilton_clip.mp4"


def clip_frames(path: Path, fps: float) -> list[np.ndarray]:
    import av

    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        next_t = 0.0
        for f in c.decode(video=0):
            if f.time is None or f.time + 1e-6 < next_t:
                continue
            out.append(f.to_ndarray(format="rgb24"))
            next_t += 1.0 / fps
    return out


def _home_shares(per_stream: dict[str, collections.Counter[str]]) -> dict[str, float]:
    return {k: c.most_common(1)[0][1] / sum(c.values()) for k, c in per_stream.items() if c}


# -- the routing choice (dummy work) ----------------------------------------------------------


def routing_choice(streams: int = 12, frames: int = 30, replicas: tuple[int, ...] = (2, 3)) -> dict[str, Any]:
    """Home-replica share of the stream-affinity router vs model multiplexing (dummy deployment)."""
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    from pipelines.face_router import StreamAffinityRouter

    @serve.deployment
    class Multiplexed:
        def __init__(self) -> None:
            self.rid = serve.get_replica_context().replica_id.unique_id

        @serve.multiplexed(max_num_models_per_replica=256)
        async def state(self, model_id: str) -> dict[str, Any]:
            return {}

        async def analyze(self, frame: bytes, stream_key: str | None = None) -> str:
            await self.state(serve.get_multiplexed_model_id())
            await asyncio.sleep(0.03)
            return str(self.rid)

    @serve.deployment
    class Routed:
        def __init__(self) -> None:
            self.rid = serve.get_replica_context().replica_id.unique_id

        async def analyze(self, frame: bytes, stream_key: str | None = None) -> str:
            await asyncio.sleep(0.03)
            return str(self.rid)

    async def stream(handle: Any, key: str, mux: bool, out: list[str]) -> None:
        gate = asyncio.Semaphore(2)

        async def one() -> None:
            async with gate:
                h = handle.options(multiplexed_model_id=key) if mux else handle
                out.append(await h.analyze.remote(b"x", stream_key=key))

        await asyncio.gather(*[one() for _ in range(frames)])

    async def run_all(handle: Any, mux: bool) -> dict[str, list[str]]:
        got: dict[str, list[str]] = {f"cam-{i}": [] for i in range(streams)}
        await asyncio.gather(*[stream(handle, k, mux, v) for k, v in got.items()])
        return got

    result: dict[str, Any] = {}
    opts: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0.01}, "max_ongoing_requests": 32}
    for kind, cls, extra in (
        ("multiplex", Multiplexed, {}),
        (
            "router",
            Routed,
            {"request_router_config": RequestRouterConfig(request_router_class=StreamAffinityRouter)},
        ),
    ):
        for n in replicas:
            app = f"bench-routing-{kind}"
            handle = serve.run(
                cls.options(num_replicas=n, **opts, **extra).bind(), name=app, route_prefix=None
            )
            time.sleep(3)  # the handle learns the replica set asynchronously
            got = asyncio.run(run_all(handle, kind == "multiplex"))
            serve.delete(app)
            shares = _home_shares({k: collections.Counter(v) for k, v in got.items()})
            first5 = [len(set(v[:5])) for v in got.values()]
            result[f"{kind}_{n}"] = {
                "home_share_mean": statistics.mean(shares.values()),
                "home_share_min": min(shares.values()),
                "replicas_in_first_5_frames_max": max(first5),
                "frames_per_replica": sorted(
                    collections.Counter(r for v in got.values() for r in v).values()
                ),
            }
            log.info("routing choice %s, %d replicas: %s", kind, n, result[f"{kind}_{n}"])
    return result


# -- the face deployment at 1, 2, 3 replicas --------------------------------------------------


def _sender_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class StreamSender:
        """One stream: its own handle (as a stream worker has), frames in order, 2 in flight."""

        def __init__(self, app: str) -> None:
            from ray import serve

            self.handle = serve.get_app_handle(app)

        def warm(self, replicas: int, timeout_s: float) -> int:
            """Call stats() (no stream key: load-balanced) until this handle has reached
            ``replicas`` replicas: affinity holds for a given replica set."""
            seen: set[str] = set()
            deadline = time.monotonic() + timeout_s
            while len(seen) < replicas and time.monotonic() < deadline:
                resp = [self.handle.stats.remote() for _ in range(4)]
                seen.update(r.result(timeout_s=timeout_s)["replica"] for r in resp)
            return len(seen)

        def run(
            self,
            key: str,
            frames: list[np.ndarray],
            start: int,
            count: int | None,
            seconds: float | None = None,
        ) -> dict[str, Any]:
            """``count`` frames, or as many as fit in ``seconds``, from clip frame ``start`` on."""
            t0 = time.perf_counter()
            pending: collections.deque[Any] = collections.deque()
            faces = 0
            i = 0
            while (count is None or i < count) and (seconds is None or time.perf_counter() - t0 < seconds):
                frame = frames[(start + i) % len(frames)]
                pending.append(self.handle.analyze.remote(frame, stream_key=key))
                i += 1
                if len(pending) >= 2:
                    faces += len(pending.popleft().result(timeout_s=600))
            while pending:
                faces += len(pending.popleft().result(timeout_s=600))
            return {"stream": key, "frames": i, "faces": faces, "wall_s": time.perf_counter() - t0}

    return StreamSender


def _all_stats(handle: Any, replicas: int, timeout_s: float = 300.0) -> dict[str, dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < replicas:
        if time.monotonic() > deadline:
            raise RuntimeError(f"stats from {len(seen)} of {replicas} replicas after {timeout_s:g} s")
        for r in [handle.stats.remote() for _ in range(4)]:
            s = r.result(timeout_s=timeout_s)
            seen[s["replica"]] = s
    return seen


def scale_point(
    frames_ref: Any,
    n_replicas: int,
    streams: int,
    frames: int,
    clip_len: int,
    *,
    affinity: bool,
    warm_s: float,
) -> dict[str, Any]:
    import ray
    from ray import serve

    from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig
    from pipelines.face_service import deployment

    cfg = EmbeddingServiceConfig(
        analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu", torch_threads=1)),
        min_replicas=n_replicas,
        max_replicas=n_replicas,
        num_cpus=0.5,
        max_batch_size=8,
        batch_wait_timeout_s=0.02,
        stream_affinity=affinity,
    )
    app = f"bench-scale-{n_replicas}{'' if affinity else '-lb'}"
    t0 = time.perf_counter()
    handle = serve.run(
        deployment(cfg, name="FaceAnalysis").bind(cfg.model_dump(mode="json")), name=app, route_prefix=None
    )
    start_s = time.perf_counter() - t0
    try:
        sender_cls = _sender_class()
        senders = [sender_cls.remote(app) for _ in range(streams)]
        warmed = ray.get([s.warm.remote(n_replicas, 300.0) for s in senders])
        keys = [f"cam-{i}" for i in range(streams)]
        starts = [(i * clip_len) // streams for i in range(streams)]
        # Warm-up: streams start together, the router's first placement settles (a new stream
        # reconsiders once the replicas' active-stream counts include the others), fast-path state
        # builds up. Only what follows is measured: the steady state.
        warm = ray.get(
            [
                s.run.remote(k, frames_ref, st, None, warm_s)
                for s, k, st in zip(senders, keys, starts, strict=True)
            ]
        )
        before = _all_stats(handle, n_replicas)
        t1 = time.perf_counter()
        runs = ray.get(
            [
                s.run.remote(k, frames_ref, st + w["frames"], frames)
                for s, k, st, w in zip(senders, keys, starts, warm, strict=True)
            ]
        )
        wall_s = time.perf_counter() - t1
        after = _all_stats(handle, n_replicas)
    finally:
        serve.delete(app)
    per_stream: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in keys}
    det: collections.Counter[str] = collections.Counter()
    for rid, s in after.items():
        b = before.get(rid, {"stream_frames": {}, "stream_detect": {}})
        for k, n in s["stream_frames"].items():
            if k in per_stream and n > b["stream_frames"].get(k, 0):
                per_stream[k][rid] += n - b["stream_frames"].get(k, 0)
        for field in ("full", "refined", "reused"):
            det[field] += s["stream_detect"][field] - b["stream_detect"].get(field, 0)
    # the whole run, warm-up included (how many streams moved while settling)
    whole: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in keys}
    for rid, s in after.items():
        for k, n in s["stream_frames"].items():
            if k in whole:
                whole[k][rid] += n
    shares = _home_shares(per_stream)
    total = det["full"] + det["refined"] + det["reused"]
    return {
        "replicas": n_replicas,
        "affinity": affinity,
        "streams": streams,
        "frames_per_stream": frames,
        "deploy_s": start_s,
        "wall_s": wall_s,
        "analysed_fps": streams * frames / wall_s,
        "senders_reached_all_replicas": min(warmed) == n_replicas,
        "home_replica_share_mean": statistics.mean(shares.values()),
        "home_replica_share_min": min(shares.values()),
        "replicas_per_stream_max": max(len(c) for c in per_stream.values()),
        "warmup_s": warm_s,
        "warmup_frames": sum(w["frames"] for w in warm),
        "streams_moved_during_warmup": sum(1 for c in whole.values() if len(c) > 1),
        "fast_path_share": (det["refined"] + det["reused"]) / max(1, total),
        "detections": dict(det),
        "precision": sorted({str(s["precision"]) for s in after.values()}),
        "replica_nodes": sorted(str(s["node"])[:8] for s in after.values()),
        "frames_per_replica": sorted(sum(c[rid] for c in per_stream.values()) for rid in after),
        "faces": sum(r["faces"] for r in runs),
    }


def _user_args() -> list[str]:
    """This command's arguments without the internal ``--address``."""
    argv = sys.argv[1:]
    if "--address" in argv:
        i = argv.index("--address")
        argv = argv[:i] + argv[i + 2 :]
    return argv


def _run_on_loopback_cluster() -> int:
    """Start the loopback 3-node cluster, run this benchmark's driver on it in a process with the
    cluster's environment, stop the cluster by the PIDs it started. Returns the driver's status."""
    from tests.local_cluster import LocalRayCluster

    cluster = LocalRayCluster(head_cpus=1, worker_cpus=(1, 1)).start()
    try:
        env = {**cluster.env, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "bench.scale", *_user_args(), "--address", cluster.address]
        return subprocess.run(cmd, env=env, cwd=REPO, check=False).returncode
    finally:
        cluster.stop()


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument(
        "--local", action="store_true", help="one local Ray instead of the loopback 3-node cluster"
    )
    ap.add_argument("--address", default=None, help=argparse.SUPPRESS)  # internal: the cluster's driver
    ap.add_argument("--why-local", default=None, help="recorded in the result: why --local was used")
    ap.add_argument("--streams", type=int, default=6)
    ap.add_argument("--frames", type=int, default=40, help="measured frames per stream per point")
    ap.add_argument("--warmup-s", type=float, default=15.0, help="unmeasured seconds of streaming first")
    args = ap.parse_args()
    setup_logging()
    streams = 3 if args.quick else args.streams
    frames = 12 if args.quick else args.frames
    warm_s = 5.0 if args.quick else args.warmup_s
    clip = clip_frames(faces_dir() / CLIP, FPS)

    import ray
    from ray import serve

    if args.local:
        from facestream.localray import init_local_ray

        init_local_ray(num_cpus=3)
        where = "local Ray (one node, 3 logical CPUs)"
    elif args.address is None:
        raise SystemExit(_run_on_loopback_cluster())
    else:
        # A driver started by _run_on_loopback_cluster with the cluster's environment (token
        # auth, loopback) from its first line: Ray reads both when it is imported.
        ray.init(address=args.address, configure_logging=False, log_to_driver=False)
        where = "loopback cluster: head + 2 worker nodes, 1 CPU each, 127.0.0.1"
    try:
        from ray.serve.config import ProxyLocation

        serve.start(proxy_location=ProxyLocation.Disabled)
        choice = routing_choice(frames=10 if args.quick else 30)
        frames_ref = ray.put(clip)
        points = [
            scale_point(frames_ref, n, streams, frames, len(clip), affinity=True, warm_s=warm_s)
            for n in (1, 2, 3)
        ]
        points.append(scale_point(frames_ref, 3, streams, frames, len(clip), affinity=False, warm_s=warm_s))
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()

    print_table(
        f"{streams} streams x {frames} frames of the 640x360 clip at {FPS:g} fps ({where})",
        [
            "replicas",
            "affinity",
            "home share mean",
            "home share min",
            "replicas/stream max",
            "fast-path share",
            "frames/replica",
            "analysed fps",
        ],
        [
            [
                p["replicas"],
                p["affinity"],
                p["home_replica_share_mean"],
                p["home_replica_share_min"],
                p["replicas_per_stream_max"],
                p["fast_path_share"],
                p["frames_per_replica"],
                p["analysed_fps"],
            ]
            for p in points
        ],
    )
    print_table(
        "routing choice (dummy deployment, 12 streams, 2 in flight): home-replica share",
        ["variant", "mean", "min", "replicas in first 5 frames (max)", "frames/replica"],
        [
            [
                k,
                v["home_share_mean"],
                v["home_share_min"],
                v["replicas_in_first_5_frames_max"],
                v["frames_per_replica"],
            ]
            for k, v in choice.items()
        ],
    )
    aff = {p["replicas"]: p for p in points if p["affinity"]}
    lb3 = next(p for p in points if not p["affinity"])
    ratios = {
        "home_replica_share": min(aff[2]["home_replica_share_mean"], aff[3]["home_replica_share_mean"]),
        "fast_path_share_3_replicas_vs_1": aff[3]["fast_path_share"] / max(1e-9, aff[1]["fast_path_share"]),
        "fast_path_share_3_replicas_vs_1_without_affinity": lb3["fast_path_share"]
        / max(1e-9, aff[1]["fast_path_share"]),
        "home_replica_share_without_affinity_3": lb3["home_replica_share_mean"],
        "affinity_router_vs_multiplex_home_share": choice["router_3"]["home_share_mean"]
        / max(1e-9, choice["multiplex_3"]["home_share_mean"]),
    }
    targets: dict[str, str | float] = {
        "home_replica_share": ">= 0.95",
        "fast_path_share_3_replicas_vs_1": ">= 0.9",
        "affinity_router_vs_multiplex_home_share": ">= 1",
    }
    print_ratios(ratios, targets)
    out = write_result(
        "scale",
        ratios=ratios,
        targets=targets,
        medians={
            "fast_path_share_1": aff[1]["fast_path_share"],
            "fast_path_share_3": aff[3]["fast_path_share"],
            "fast_path_share_3_without_affinity": lb3["fast_path_share"],
        },
        details={
            "where": where,
            "why_local": args.why_local,
            "points": points,
            "routing_choice": choice,
            "clip_frames": len(clip),
        },
        quick=args.quick,
        command=" ".join(["python -m bench.scale", *_user_args()]),
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
