"""The benchmark harness: result files carry ratios, targets, medians and the machine's load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import common
from bench.search import clustered_unit_vectors, exact_top_k, noisy_queries, pick_default, recall_at_k

RESULTS = Path(common.__file__).parent / "results"


def test_write_result_has_ratios_targets_medians_and_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr("sys.argv", ["bench/demo.py", "--quick"])
    out = common.write_result(
        "demo",
        ratios={"serve_efficiency": 0.93456789},
        targets={"serve_efficiency": 0.9},
        medians={"bare_faces_per_s": np.float32(12.5)},  # type: ignore[dict-item]
        details={"rows": np.arange(3)},
        quick=True,
    )
    assert out == tmp_path / "demo.json"
    payload = json.loads(out.read_text())
    assert payload["ratios"] == {"serve_efficiency": 0.9346}
    assert payload["targets"] == {"serve_efficiency": 0.9}
    assert payload["medians"] == {"bare_faces_per_s": 12.5}
    assert payload["details"]["rows"] == [0, 1, 2]
    assert payload["command"] == "python -m bench.demo --quick"
    m = payload["machine"]
    assert len(m["loadavg_start"]) == len(m["loadavg_end"]) == 3
    assert m["python"] and m["torch"]


@pytest.mark.parametrize(
    ("value", "target", "ok"),
    [
        (0.95, 0.9, True),
        (0.85, 0.9, False),
        (12.0, ">= 10", True),
        (9.0, ">= 10 (performance issue)", False),
        (3.0, "<= 2", False),
        (1.0, "faster than before", None),
    ],
)
def test_met(value: float, target: str | float, ok: bool | None) -> None:
    assert common.met(value, target) is ok


def test_percentile() -> None:
    assert common.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert common.percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    assert np.isnan(common.percentile([], 50))


def test_search_ground_truth_and_recall() -> None:
    data = clustered_unit_vectors(5000, 16, clusters=50, spread=0.1, seed=0)
    np.testing.assert_allclose(np.linalg.norm(data, axis=1), 1.0, rtol=1e-5)
    q = noisy_queries(data, 20, noise=0.01, seed=1)
    truth = exact_top_k(data, q, 10, chunk=777)  # chunking must not change the answer
    brute = np.argsort(-(q @ data.T), axis=1)[:, :10]
    np.testing.assert_array_equal(truth, brute)
    assert recall_at_k(truth.tolist(), truth) == 1.0
    half = [row[:5] + [-1] * 5 for row in truth.tolist()]
    assert recall_at_k(half, truth) == 0.5


def test_pick_default_prefers_fast_settings_that_meet_recall() -> None:
    rows = [
        {"M": 16, "efConstruction": 128, "ef": 16, "recall_at_10": 0.80, "p50_ms_batch": 1.0},
        {"M": 16, "efConstruction": 128, "ef": 64, "recall_at_10": 0.97, "p50_ms_batch": 3.0},
        {"M": 32, "efConstruction": 256, "ef": 32, "recall_at_10": 0.96, "p50_ms_batch": 2.5},
    ]
    assert pick_default(rows) == rows[2]
    assert pick_default(rows[:1]) is None


def test_committed_results_carry_ratios_and_targets() -> None:
    files = [p for p in RESULTS.glob("*.json") if "benchmark" in json.loads(p.read_text())]
    assert len(files) >= 5
    for p in files:
        payload = json.loads(p.read_text())
        assert isinstance(payload["ratios"], dict) and payload["ratios"], p.name
        assert isinstance(payload["targets"], dict), p.name
