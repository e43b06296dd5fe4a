"""Soak: several live streams for a long time; the memory of every Ray actor must stay flat.

Runs ``--streams`` stream processors (the Hamilton clip replayed in a loop at its own pace,
like a camera) against one batched face deployment and the store actor (Milvus Lite).
After ``--warmup-s`` it reads the resident memory (VmRSS) of every live actor of the local
Ray (stream workers, Serve replicas and controller, the store actor), again halfway through
the measurement, and at the end. A leak grows steadily; a cache or allocator warming up
grows and then stops. So an actor is a leak when it still grows in the *second half* by more
than ``max(leak_mb, leak_pct of its RSS at halfway)``; the growth over the whole measurement
is reported too. (Measured: the analysis replica's RSS rises for the first minutes as the
torch CPU allocator and MTCNN's per-size buffers reach the largest batch, then stays flat.)
Also reported: events and frames analysed per stream, drops, and that every processor ran
to the end without failing. Writes ``bench/results/soak.json``.

    python -m bench.soak [--duration-s 600] [--streams 3] [--quick]

tests/faults/test_soak.py runs the same :func:`run_soak` for 2 minutes on the test session's Ray.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.soak")

APP = "facestream-soak"
CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
LIN = "lin-manuel-miranda"


@dataclass(frozen=True)
class SoakLimits:
    """Allowed RSS growth of one actor in the second half of the measurement."""

    leak_mb: float = 32.0
    leak_pct: float = 5.0


def rss_mb(pid: int) -> float | None:
    """Resident set size of a local process in MiB (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def actor_memory() -> dict[str, dict[str, Any]]:
    """Every live actor of the local Ray: ``{actor_id: {name, class, pid, rss_mb}}``.

    The actor table comes from the GCS directly (``ray._private.state``): the state API
    (``ray.util.state``) needs the dashboard, which a local facestream Ray does not start.
    """
    from ray._private import state

    out: dict[str, dict[str, Any]] = {}
    for aid, a in state.actors(actor_state_name="ALIVE").items():
        pid = int(a.get("Pid") or 0)
        rss = rss_mb(pid) if pid else None
        if rss is None:
            continue
        out[aid] = {
            "name": a.get("Name") or "",
            "class": a["ActorClassName"],
            "pid": pid,
            "rss_mb": round(rss, 1),
        }
    return out


def run_soak(
    home: Path,
    faces: Path,
    *,
    duration_s: float,
    warmup_s: float,
    streams: int,
    limits: SoakLimits = SoakLimits(),
    app_name: str = APP,
    face_handle: Any = None,
) -> dict[str, Any]:
    """Run the soak on an initialised local Ray; returns the result (``leaks`` empty = pass).

    ``face_handle``: a running face deployment to use (left running); None deploys
    ``app_name`` and deletes it at the end.
    """
    import ray

    from facestream.audit import Actor, AuditLog
    from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig
    from facestream.imageio import load_image_file
    from pipelines.config import FileSource, JsonlSinkConfig, ProcessorSettings, RuntimeConfig
    from pipelines.gallery import enrol, ensure_collection
    from pipelines.manager import StreamProcessorManager
    from pipelines.runtime import delete_face_service, ensure_face_service
    from pipelines.store_actor import store_actor

    operator = Actor("soak:operator", "admin")
    clip = faces / CLIP
    runtime = RuntimeConfig(
        home=home,
        app_name=app_name,
        media_dirs=(clip.parent,),
        embedding=EmbeddingServiceConfig(
            analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu")),
            max_batch_size=8,
            batch_wait_timeout_s=0.05,
        ),
    )
    face = face_handle if face_handle is not None else ensure_face_service(runtime.embedding, app_name)
    store = store_actor(runtime.resolved_store_uri)
    manager = StreamProcessorManager(runtime, face, store)
    names = [f"soak-{i}" for i in range(streams)]
    try:
        ensure_collection(store, "soak", "dlib-resnet", fresh=True)
        enrol(
            face,
            store,
            "soak",
            [(LIN, load_image_file(clip.parent / f"{LIN}.png"))],
            audit=AuditLog(runtime.resolved_audit_path),
            actor=operator,
        )
        for n in names:
            settings = ProcessorSettings(
                name=n,
                source=FileSource(path=clip, loop=True, realtime=True),
                collection="soak",
                purpose="benchmark: soak",
                analysis_fps=2.0,
                sinks=(JsonlSinkConfig(path=home / f"{n}.jsonl"),),
            )
            manager.create(settings, operator, replace=True)
            manager.start(n, operator)
        t0 = time.monotonic()
        time.sleep(warmup_s)
        before = actor_memory()
        load_before = os.getloadavg()
        status_before = {n: manager.describe(n) for n in names}
        time.sleep(max(0.0, (duration_s - warmup_s) / 2))
        mid = actor_memory()
        time.sleep(max(0.0, (duration_s - warmup_s) / 2))
        after = actor_memory()
        status = {n: manager.describe(n) for n in names}
        elapsed = time.monotonic() - t0
    finally:
        final = {}
        for n in names:
            try:
                final[n] = manager.stop(n, operator)
            except Exception as exc:  # one processor that cannot stop must not hide the rest
                log.warning("stop %s: %s", n, exc)
        manager.shutdown(operator)
        ray.kill(store)
        if face_handle is None:
            delete_face_service(app_name)

    actors = []
    leaks = []
    for aid, b in before.items():
        a = after.get(aid)
        if a is None:
            continue
        growth = a["rss_mb"] - b["rss_mb"]
        m = mid.get(aid, a)
        row = {
            **b,
            "rss_before_mb": b["rss_mb"],
            "rss_mid_mb": m["rss_mb"],
            "rss_after_mb": a["rss_mb"],
            "growth_mb": round(growth, 1),
            "growth_second_half_mb": round(a["rss_mb"] - m["rss_mb"], 1),
        }
        row.pop("rss_mb")
        actors.append(row)
        if a["rss_mb"] - m["rss_mb"] > max(limits.leak_mb, m["rss_mb"] * limits.leak_pct / 100.0):
            leaks.append(row)
    per_stream = {}
    for n in names:
        c0, c1 = status_before[n]["Counters"], status[n]["Counters"]
        per_stream[n] = {
            "status_at_end": status[n]["Status"],
            "analysed_during_measurement": c1["analysed"] - c0["analysed"],
            "events_total": status[n]["Events"],
            "drops": c1.get("drops", {}),
            "reconnects": c1.get("reconnects", 0),
            "final_status": final.get(n, {}).get("Status"),
        }
    return {
        "duration_s": round(elapsed, 1),
        "warmup_s": warmup_s,
        "streams": streams,
        "limits": {"leak_mb": limits.leak_mb, "leak_pct": limits.leak_pct},
        "actors": sorted(actors, key=lambda r: -r["growth_mb"]),
        "leaks": leaks,
        "per_stream": per_stream,
        "loadavg_at_warmup": [round(x, 2) for x in load_before],
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    from bench.common import faces_dir, parser, setup_logging, write_result

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--duration-s", type=float, default=600.0)
    p.add_argument("--warmup-s", type=float, default=120.0)
    p.add_argument("--streams", type=int, default=3)
    a = p.parse_args()
    if a.quick:
        a.duration_s, a.warmup_s = 90.0, 30.0
    setup_logging()

    import ray

    from facestream.localray import init_local_ray

    init_local_ray()
    home = Path(tempfile.mkdtemp(prefix="facestream-soak-"))
    try:
        result = run_soak(home, faces_dir(), duration_s=a.duration_s, warmup_s=a.warmup_s, streams=a.streams)
    finally:
        ray.shutdown()
    worst_half = max((r["rss_after_mb"] / max(r["rss_mid_mb"], 1.0) for r in result["actors"]), default=1.0)
    worst = max((r["rss_after_mb"] / max(r["rss_before_mb"], 1.0) for r in result["actors"]), default=1.0)
    write_result(
        "soak",
        ratios={
            "max_actor_rss_after_over_before": round(worst, 3),
            "max_actor_rss_after_over_mid": round(worst_half, 3),
        },
        targets={
            "max_actor_rss_after_over_mid": f"no actor grows by more than max({SoakLimits.leak_mb} MiB, "
            f"{SoakLimits.leak_pct}%) in the second half of the measurement",
            "max_actor_rss_after_over_before": "reported (includes warm-up of caches and allocators)",
        },
        details=result,
        quick=a.quick,
        command=f"python -m bench.soak --duration-s {a.duration_s:g} --streams {a.streams}",
    )
    for r in result["actors"]:
        print(
            f"{r['class']:<40} {r['rss_before_mb']:>8.1f} -> {r['rss_after_mb']:>8.1f} MiB "
            f"{r['growth_mb']:+.1f}"
        )
    print(f"leaks: {len(result['leaks'])}")
    raise SystemExit(1 if result["leaks"] else 0)


if __name__ == "__main__":
    main()
