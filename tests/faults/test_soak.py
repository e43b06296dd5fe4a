"""A 2-minute soak of three live streams (bench/soak.py's code): no actor's memory grows.

The 10-minute run is ``python -m bench.soak`` (bench/results/soak.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.soak import SoakLimits, run_soak
from tests.helpers import faces_dir

pytestmark = pytest.mark.slow


def test_two_minute_soak_memory_flat(fault_env: dict[str, Any], tmp_path: Path) -> None:
    result = run_soak(
        tmp_path,
        faces_dir(),
        duration_s=120.0,
        warmup_s=40.0,
        streams=3,
        limits=SoakLimits(),
        face_handle=fault_env["face"],
    )
    classes = {a["class"] for a in result["actors"]}
    assert "StreamWorker" in classes or any("Stream" in c for c in classes), classes
    assert len(result["actors"]) >= 5, result["actors"]  # 3 workers, replica, store, controller...
    assert not result["leaks"], result["leaks"]
    for name, s in result["per_stream"].items():
        assert s["status_at_end"] == "RUNNING", (name, s)
        assert s["analysed_during_measurement"] > 0, (name, s)
        assert s["events_total"] > 0, (name, s)  # Lin-Manuel is found on every loop
