"""Vector search at gallery scale: Milvus Lite (FLAT) vs the Milvus server (HNSW grid) vs exact numpy.

Generates N clustered 128-d unit vectors (never stored), and queries that are noisy copies of
gallery vectors (a face seen again). For each backend and setting: latency of one search call
(p50/p99) for a single query and for a tick's batch of queries, and recall@10 against exact
numpy search. The server runs an HNSW grid over (M, efConstruction) x ef on one collection
(the index is rebuilt in place) and the best setting meeting the recall goal becomes the store's
default (facestream/store/config.py).

    python -m bench.search [--quick]        # --quick: 20k vectors, a smaller grid
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import parser, percentile, print_ratios, print_table, setup_logging, write_result

log = logging.getLogger("bench.search")

DIM = 128
TOP_K = 10
RECALL_GOAL = 0.95
#: per-dimension gaussian spread of a cluster (cosine to its centre ~0.83, like one person's faces)
SPREAD = 0.06
#: per-dimension noise of a query around the gallery vector it re-finds (cosine ~0.97)
QUERY_NOISE = 0.02
_COLLECTION = "bench_search"


def clustered_unit_vectors(n: int, dim: int, *, clusters: int, spread: float, seed: int) -> np.ndarray:
    """``n`` unit vectors around ``clusters`` random centres (faces of one person cluster)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for i in range(0, n, step):
        m = min(step, n - i)
        x = centres[rng.integers(0, clusters, m)] + spread * rng.standard_normal((m, dim), dtype=np.float32)
        out[i : i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def noisy_queries(data: np.ndarray, q: int, *, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = data[rng.integers(0, len(data), q)] + noise * rng.standard_normal(
        (q, data.shape[1]), dtype=np.float32
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100_000) -> np.ndarray:
    """(q, k) ids of the k largest inner products (cosine on unit vectors), best first."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(data), chunk):
        s = queries @ data[start : start + chunk].T
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, idx, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, idx + start], axis=1)
        top = np.argsort(-cand_s, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, top, axis=1)
        best_i = np.take_along_axis(cand_i, top, axis=1)
    return best_i


def recall_at_k(found: list[list[int]], truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = sum(len(set(f[:k]) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def time_calls(
    search: Callable[[np.ndarray], list[list[int]]], queries: np.ndarray, batch: int, max_calls: int
) -> tuple[list[float], list[list[int]]]:
    """Latency of each call searching ``batch`` queries at once, and every call's ids."""
    search(queries[:batch])  # warm-up
    lat: list[float] = []
    found: list[list[int]] = []
    for start in range(0, min(len(queries), batch * max_calls), batch):
        chunk = queries[start : start + batch]
        t0 = time.perf_counter()
        ids = search(chunk)
        lat.append(time.perf_counter() - t0)
        found.extend(ids)
    return lat, found


def measure(
    label: str,
    search: Callable[[np.ndarray], list[list[int]]],
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    tick_batch: int,
    single_calls: int,
) -> dict[str, Any]:
    lat1, found1 = time_calls(search, queries, 1, single_calls)
    latb, foundb = time_calls(search, queries, tick_batch, len(queries) // tick_batch)
    rec = recall_at_k(foundb, truth[: len(foundb)])
    res = {
        "label": label,
        "p50_ms_1": 1000 * percentile(lat1, 50),
        "p99_ms_1": 1000 * percentile(lat1, 99),
        "p50_ms_batch": 1000 * percentile(latb, 50),
        "p99_ms_batch": 1000 * percentile(latb, 99),
        "batch": tick_batch,
        "qps_batched": tick_batch / percentile(latb, 50),
        "qps_single": 1 / percentile(lat1, 50),
        "recall_at_10": rec,
        "recall_at_10_single": recall_at_k(found1, truth[: len(found1)]),
    }
    log.info(
        "%s: p50 %.2f ms (1 query), %.2f ms (%d queries), recall@10 %.4f",
        label,
        res["p50_ms_1"],
        res["p50_ms_batch"],
        tick_batch,
        rec,
    )
    return res


def _insert(client: Any, data: np.ndarray, batch: int = 20_000) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(data), batch):
        rows = [{"id": start + i, "vector": v} for i, v in enumerate(data[start : start + batch].tolist())]
        client.insert(_COLLECTION, rows)
    return time.perf_counter() - t0


def _schema(client: Any) -> Any:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    return schema


def _searcher(client: Any, params: dict[str, Any]) -> Callable[[np.ndarray], list[list[int]]]:
    def search(q: np.ndarray) -> list[list[int]]:
        res = client.search(
            _COLLECTION, data=q.tolist(), anns_field="vector", limit=TOP_K, search_params=params, timeout=600
        )
        return [[int(h["id"]) for h in hits] for hits in res]

    return search


def bench_lite(
    workdir: Path,
    data: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    tick_batch: int,
    single: int,
    max_batches: int,
) -> dict[str, Any]:
    from pymilvus import MilvusClient

    client = MilvusClient(str(workdir / "lite.db"))
    try:
        params = client.prepare_index_params()
        # The store's Lite index (facestream/store/milvus.py): FLAT, exact.
        params.add_index("vector", index_type="FLAT", metric_type="COSINE")
        client.create_collection(_COLLECTION, schema=_schema(client), index_params=params)
        ins = _insert(client, data)
        t0 = time.perf_counter()
        # Unflushed (growing) data is searched without its index: 10x slower in Lite.
        client.flush(_COLLECTION)
        client.load_collection(_COLLECTION)
        load_s = time.perf_counter() - t0
        log.info("Milvus Lite: inserted %d in %.1f s", len(data), ins)
        res = measure(
            "Milvus Lite FLAT",
            _searcher(client, {"metric_type": "COSINE"}),
            queries[: tick_batch * max_batches],
            truth,
            tick_batch=tick_batch,
            single_calls=single,
        )
        res.update(insert_s=ins, flush_load_s=load_s)
        return res
    finally:
        client.close()


def _wait_index(client: Any, n: int, timeout_s: float = 3600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = client.describe_index(_COLLECTION, "vector")
        if int(info.get("indexed_rows", 0)) >= n and int(info.get("pending_index_rows", 0)) == 0:
            return
        if info.get("state") == "Failed":
            raise RuntimeError(f"index build failed: {info}")
        time.sleep(1.0)
    raise TimeoutError("HNSW build did not finish")


def bench_server(
    workdir: Path,
    data: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    grid: list[tuple[int, int]],
    efs: list[int],
    tick_batch: int,
    single: int,
) -> list[dict[str, Any]]:
    from pymilvus import MilvusClient

    from facestream.store.embedded_server import EmbeddedMilvusServer

    server = EmbeddedMilvusServer(workdir / "milvus", start_timeout_s=600)
    server.start()
    out: list[dict[str, Any]] = []
    try:
        client = MilvusClient(server.uri, timeout=600)
        client.create_collection(_COLLECTION, schema=_schema(client))
        ins = _insert(client, data)
        client.flush(_COLLECTION)
        log.info("Milvus server: inserted and flushed %d in %.1f s", len(data), ins)
        for m, efc in grid:
            client.release_collection(_COLLECTION)
            if client.list_indexes(_COLLECTION):
                client.drop_index(_COLLECTION, "vector")
            params = client.prepare_index_params()
            params.add_index(
                "vector", index_type="HNSW", metric_type="COSINE", params={"M": m, "efConstruction": efc}
            )
            t0 = time.perf_counter()
            client.create_index(_COLLECTION, params)
            _wait_index(client, len(data))
            client.load_collection(_COLLECTION, timeout=3600)
            build_s = time.perf_counter() - t0
            log.info("HNSW M=%d efConstruction=%d built and loaded in %.1f s", m, efc, build_s)
            for ef in efs:
                res = measure(
                    f"server HNSW M={m} efC={efc} ef={ef}",
                    _searcher(client, {"metric_type": "COSINE", "params": {"ef": ef}}),
                    queries,
                    truth,
                    tick_batch=tick_batch,
                    single_calls=single,
                )
                res.update(M=m, efConstruction=efc, ef=ef, build_s=build_s, insert_s=ins)
                out.append(res)
        client.close()
    finally:
        server.stop()
        server.cleanup()
    return out


def bench_numpy(
    data: np.ndarray, queries: np.ndarray, truth: np.ndarray, tick_batch: int, single: int
) -> dict[str, Any]:
    def search(q: np.ndarray) -> list[list[int]]:
        return exact_top_k(data, q, TOP_K).tolist()

    return measure(
        "exact numpy (brute force)", search, queries, truth, tick_batch=tick_batch, single_calls=single
    )


def pick_default(server: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Fastest batched setting whose recall@10 meets the goal (ties: smaller ef, smaller M)."""
    ok = [r for r in server if r["recall_at_10"] >= RECALL_GOAL]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["p50_ms_batch"], r["ef"], r["M"]))


def main() -> None:
    setup_logging()
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="gallery size (default 1,000,000; --quick 20,000)")
    p.add_argument("--skip-server", action="store_true", help="Lite and numpy only")
    args = p.parse_args()
    n = args.n or (20_000 if args.quick else 1_000_000)
    q_count = 256 if args.quick else 1024
    tick_batch = 16
    single = 20 if args.quick else 200
    grid = [(16, 128)] if args.quick else [(8, 64), (16, 128)]
    efs = [16, 64] if args.quick else [16, 32, 64, 128, 256]

    t0 = time.perf_counter()
    data = clustered_unit_vectors(n, DIM, clusters=max(100, n // 100), spread=SPREAD, seed=1)
    queries = noisy_queries(data, q_count, noise=QUERY_NOISE, seed=2)
    truth = exact_top_k(data, queries, TOP_K)
    log.info(
        "generated %d vectors and exact top-%d of %d queries in %.1f s",
        n,
        TOP_K,
        q_count,
        time.perf_counter() - t0,
    )

    rows: list[dict[str, Any]] = [bench_numpy(data, queries, truth, tick_batch, min(single, 50))]
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        # Lite is brute force and slow at this size: fewer calls.
        rows.append(
            bench_lite(
                Path(tmp), data, queries, truth, tick_batch=tick_batch, single=min(single, 30), max_batches=16
            )
        )
        server = (
            []
            if args.skip_server
            else bench_server(
                Path(tmp), data, queries, truth, grid=grid, efs=efs, tick_batch=tick_batch, single=single
            )
        )
    rows += server
    print_table(
        f"Search over {n:,} clustered 128-d unit vectors, top-{TOP_K} (latency per call)",
        [
            "backend",
            "p50 ms 1q",
            "p99 ms 1q",
            f"p50 ms {tick_batch}q",
            f"p99 ms {tick_batch}q",
            "q/s batched",
            "recall@10",
        ],
        [
            [
                r["label"],
                r["p50_ms_1"],
                r["p99_ms_1"],
                r["p50_ms_batch"],
                r["p99_ms_batch"],
                r["qps_batched"],
                r["recall_at_10"],
            ]
            for r in rows
        ],
    )
    lite = rows[1]
    best = pick_default(server)
    ratios: dict[str, float] = {
        "lite_batch_speedup": lite["qps_batched"] / lite["qps_single"],
    }
    medians: dict[str, float] = {
        "lite_p50_ms_1": lite["p50_ms_1"],
        "lite_p99_ms_1": lite["p99_ms_1"],
        "lite_recall_at_10": lite["recall_at_10"],
        "numpy_p50_ms_1": rows[0]["p50_ms_1"],
    }
    if best is not None:
        ratios["server_hnsw_recall_at_10"] = best["recall_at_10"]
        ratios["server_vs_lite_latency_1q"] = lite["p50_ms_1"] / best["p50_ms_1"]
        ratios["server_vs_lite_qps_batched"] = best["qps_batched"] / lite["qps_batched"]
        ratios["server_batch_speedup"] = best["qps_batched"] / best["qps_single"]
        medians.update(
            server_p50_ms_1=best["p50_ms_1"],
            server_p99_ms_1=best["p99_ms_1"],
            server_p50_ms_batch=best["p50_ms_batch"],
            server_p99_ms_batch=best["p99_ms_batch"],
        )
    targets: dict[str, str | float] = {
        "server_hnsw_recall_at_10": RECALL_GOAL,
        "server_vs_lite_latency_1q": ">= 1 (HNSW beats brute force at this size)",
        "server_batch_speedup": ">= 1 (a tick's searches in one call)",
    }
    print_ratios(ratios, targets)
    out = write_result(
        "search",
        ratios=ratios,
        targets=targets,
        medians=medians,
        details={
            "n": n,
            "queries": q_count,
            "tick_batch": tick_batch,
            "data": f"n/100 centres, per-dim spread {SPREAD}; query = gallery vector + {QUERY_NOISE} noise",
            "recall_goal": RECALL_GOAL,
            "chosen_default": None if best is None else {k: best[k] for k in ("M", "efConstruction", "ef")},
            "rows": rows,
        },
        quick=args.quick,
    )
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
