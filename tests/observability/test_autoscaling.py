"""Serve autoscaling of the FaceAnalysis deployment on a three-node Ray started with ``ray start``.

Every node runs on 127.0.0.1 with one CPU (see tests/local_cluster.py); the deployment asks for
one CPU per replica, so three replicas need all three nodes. A driver in its own process loads
the deployment until the replica count rises, stops, and waits until it falls back to one.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import face
from tests.local_cluster import LocalRayCluster

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

DRIVER = Path(__file__).with_name("autoscale_driver.py")
ROOT = Path(__file__).resolve().parents[2]


def test_face_deployment_scales_up_under_load_and_back_down(
    local_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    env = {**local_cluster.env, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--address",
            local_cluster.address,
            "--image",
            str(face("face_recognition/examples/obama_small.jpg")),
            "--out",
            str(tmp_path / "summary.json"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    log.info("autoscaling: %s", summary)
    timeline = summary["timeline"]
    assert timeline[0]["running"] == 1, timeline
    assert summary["peak"] >= 2, timeline  # scaled up under load
    assert summary["nodes_used"] >= 2, timeline  # replicas placed on more than one node
    assert summary["final"] == 1, timeline  # and back down once the load stopped
