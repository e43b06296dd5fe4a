"""``ray job submit`` against a ``ray start --head`` on 127.0.0.1 (token auth on): the gallery
indexing job enrols Lin-Manuel Miranda, then the stream job finds him in the Hamilton clip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.helpers import face
from tests.local_cluster import RAY, LocalRayCluster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def submit(cluster: LocalRayCluster, args: list[str], timeout_s: float) -> tuple[str, str]:
    """Run ``python ARGS`` as a Ray job; (final status, job logs)."""
    job_id = f"facestream-test-{uuid.uuid4().hex[:8]}"
    runtime_env = {"env_vars": {"PYTHONPATH": str(ROOT)}}
    res = subprocess.run(
        [
            RAY,
            "job",
            "submit",
            f"--address={cluster.dashboard_url}",
            f"--submission-id={job_id}",
            f"--runtime-env-json={json.dumps(runtime_env)}",
            "--",
            sys.executable,
            *" ".join(args).split(),
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    out = res.stdout + res.stderr
    ok = res.returncode == 0 and f"Job '{job_id}' succeeded" in out
    return ("SUCCEEDED" if ok else f"exit {res.returncode}"), out


def test_index_gallery_and_stream_jobs(local_cluster: LocalRayCluster, tmp_path: Path) -> None:
    clip = face("face_recognition/examples/short_hamilton_clip.mp4")
    home = tmp_path / "home"
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(clip.parent / "lin-manuel-miranda.png", gallery / "lin-manuel-miranda.png")

    state, logs = submit(
        local_cluster,
        [
            "-m pipelines.index_gallery --collection hamilton --create --device cpu -v",
            f"--source {gallery} --home {home}",
        ],
        240,
    )
    assert state == "SUCCEEDED", logs[-4000:]
    summary = json.loads(next(x for x in logs.splitlines() if x.startswith('{"collection"')))
    assert summary["faces_indexed"] == 1 and summary["failed_images"] == 0

    fleet = {
        "runtime": {
            "home": str(home),
            "media_dirs": [str(clip.parent)],
            "app_name": "job-faces",
            "embedding": {"analyzer": {"device": {"device": "cpu"}}, "batch_wait_timeout_s": 0.05},
        },
        "processors": [
            {
                "name": "job-file",
                "source": {"kind": "file", "path": str(clip)},
                "collection": "hamilton",
                "purpose": "test: ray job submit",
                "sinks": [{"kind": "jsonl", "path": str(home / "job-file.jsonl")}],
            }
        ],
        "duration_s": 150,
    }
    config = tmp_path / "fleet.yaml"
    config.write_text(yaml.safe_dump(fleet))
    state, logs = submit(local_cluster, [f"-m pipelines.stream --config {config} -v"], 240)
    assert state == "SUCCEEDED", logs[-4000:]
    events = [json.loads(x) for x in (home / "job-file.jsonl").read_text().splitlines()]
    matched = {e["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"]["ExternalImageId"] for e in events}
    assert matched == {"lin-manuel-miranda"}, logs[-3000:]
