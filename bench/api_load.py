"""Load on the HTTP API: N concurrent clients searching for a fixed time; latency and errors.

Starts its own local Ray (node IP 127.0.0.1) and Serve on a free loopback port, with a
fresh state directory: enrols a small gallery, then runs

1. the baseline: one client searching sequentially (``--baseline-s``),
2. the load: ``--clients`` clients (default 32) searching for ``--duration-s`` (default 60).

Each search is a real SearchFacesByImage (native API, bearer key, purpose header) of one of
a few photographs: analysis batched in the FaceAnalysis deployment, then Milvus Lite.
Writes ``bench/results/api_load.json``: p50/p90/p99/max latency, throughput, error count,
and the batch sizes the analysis replica formed. Everything it starts is stopped at the end.

    python -m bench.api_load [--clients 32] [--duration-s 60] [--quick]
"""

from __future__ import annotations

import base64
import shutil
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.common import faces_dir, parser, print_table, setup_logging, write_result

APP = "facestream-bench"
PURPOSE = "benchmark: bench/api_load.py"
GALLERY = {
    "obama": "face_recognition/tests/test_images/obama.jpg",
    "biden": "face_recognition/tests/test_images/biden.jpg",
    "alex": "face_recognition/examples/alex-lacamoire.png",
    "lin": "face_recognition/examples/lin-manuel-miranda.png",
}
QUERIES = [
    "face_recognition/tests/test_images/obama2.jpg",
    "face_recognition/tests/test_images/obama3.jpg",
    "face_recognition/examples/obama-480p.jpg",
    "face_recognition/examples/biden.jpg",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_clients(
    url: str, headers: dict[str, str], bodies: list[dict[str, Any]], clients: int, duration_s: float
) -> dict[str, Any]:
    """``clients`` threads, each searching back to back until ``duration_s`` has passed."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def client(i: int) -> None:
        session = requests.Session()
        n = i
        while time.monotonic() < deadline:
            body = bodies[n % len(bodies)]
            n += 1
            t0 = time.perf_counter()
            try:
                r = session.post(f"{url}/v1/SearchFacesByImage", json=body, headers=headers, timeout=300)
                ok = r.status_code == 200
                detail = f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    latencies.append(dt)
                else:
                    errors.append(detail)
        session.close()

    t0 = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.monotonic() - t0
    return {
        "clients": clients,
        "duration_s": round(wall, 2),
        "requests": len(latencies) + len(errors),
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "throughput_rps": round(len(latencies) / wall, 3),
        "p50_s": round(_pct(latencies, 0.50), 4),
        "p90_s": round(_pct(latencies, 0.90), 4),
        "p99_s": round(_pct(latencies, 0.99), 4),
        "max_s": round(max(latencies, default=float("nan")), 4),
        "mean_s": round(statistics.fmean(latencies), 4) if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--duration-s", type=float, default=60.0)
    p.add_argument("--baseline-s", type=float, default=15.0)
    a = p.parse_args(argv)
    if a.quick:
        a.duration_s, a.baseline_s = min(a.duration_s, 15.0), min(a.baseline_s, 5.0)
    setup_logging()

    import ray
    from ray import serve

    from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig
    from facestream.localray import init_local_ray
    from facestream.paths import StateHome
    from serve.app import build_app
    from serve.config import ApiAppArgs, ApiConfig, ApiDeploymentConfig
    from serve.keys import KeyStore, load_master_key

    faces = faces_dir()
    home = Path(tempfile.mkdtemp(prefix="facestream-bench-"))
    port = _free_port()
    init_local_ray()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 300})
        ks = KeyStore(StateHome(home).keys_db, load_master_key(home, create=True))
        keys = {role: ks.create(role) for role in ("admin", "indexer", "searcher")}
        args = ApiAppArgs(
            api=ApiConfig(home=home),
            deployment=ApiDeploymentConfig(max_ongoing_requests=64),
            embedding=EmbeddingServiceConfig(
                analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu")),
                max_batch_size=8,
                batch_wait_timeout_s=0.02,
            ),
            embedding_deployment_name="FaceAnalysisBench",
        )
        serve.run(build_app(args), name=APP, route_prefix="/")
        url = f"http://127.0.0.1:{port}"

        def bearer(role: str) -> dict[str, str]:
            k = keys[role]
            return {"Authorization": f"Bearer {k.access_key_id}:{k.secret_access_key}"}

        def b64(rel: str) -> str:
            return base64.b64encode((faces / rel).read_bytes()).decode()

        r = requests.post(
            f"{url}/v1/CreateCollection", json={"CollectionId": "bench"}, headers=bearer("admin"), timeout=300
        )
        r.raise_for_status()
        for ext, rel in GALLERY.items():
            body = {"CollectionId": "bench", "Image": {"Bytes": b64(rel)}, "ExternalImageId": ext}
            requests.post(
                f"{url}/v1/IndexFaces", json=body, headers=bearer("indexer"), timeout=300
            ).raise_for_status()
        bodies = [{"CollectionId": "bench", "Image": {"Bytes": b64(q)}, "MaxFaces": 5} for q in QUERIES]
        headers = {**bearer("searcher"), "X-Facestream-Purpose": PURPOSE}
        run_clients(url, headers, bodies, 2, 3.0)  # warm-up (first batches, thread pools)

        baseline = run_clients(url, headers, bodies, 1, a.baseline_s)
        load = run_clients(url, headers, bodies, a.clients, a.duration_s)
        stats = (
            serve.get_deployment_handle("FaceAnalysisBench", app_name=APP).stats.remote().result(timeout_s=60)
        )
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(home, ignore_errors=True)

    rows = [
        [
            f"{r['clients']} client(s)",
            r["requests"],
            r["errors"],
            r["throughput_rps"],
            r["p50_s"],
            r["p99_s"],
            r["max_s"],
        ]
        for r in (baseline, load)
    ]
    print_table(
        "SearchFacesByImage over HTTP (native API)",
        ["load", "requests", "errors", "req/s", "p50 s", "p99 s", "max s"],
        rows,
    )
    ratio = load["throughput_rps"] / baseline["throughput_rps"] if baseline["throughput_rps"] else 0.0
    out = write_result(
        "api_load",
        ratios={"throughput_vs_1_client": ratio},
        targets={"errors": "0 under load", "throughput_vs_1_client": "> 1 (batching across requests)"},
        details={"baseline": baseline, "load": load, "analysis_batch_sizes": stats.get("batch_sizes", {})},
        quick=a.quick,
    )
    print(f"wrote {out}")
    return 0 if load["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
