"""A three-node Ray on 127.0.0.1 started with ``ray start`` (see tests/local_cluster.py),
shared by the autoscaling and job-submission tests and stopped by PID at session end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local_cluster import LocalRayCluster


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalRayCluster]:
    c = LocalRayCluster(head_cpus=1, worker_cpus=(1, 1))
    c.start()
    try:
        yield c
    finally:
        c.stop()
        left = [
            p
            for p in c.stopped_pids
            if Path(f"/proc/{p}/cmdline").exists() and Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert not left, f"Ray processes left running: {left}"
