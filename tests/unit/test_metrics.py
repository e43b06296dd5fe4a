"""Metric definitions: names, units, bounded labels; recording outside Ray."""

from __future__ import annotations

import re

import prometheus_client
import pytest

from facestream import metrics

UNIT_SUFFIXES = ("_total", "_seconds", "_size", "_depth", "_status", "_per_frame")


def test_definitions_are_well_formed() -> None:
    names = [d.name for d in metrics.DEFINITIONS]
    assert len(names) == len(set(names))
    for d in metrics.DEFINITIONS:
        assert re.fullmatch(r"facestream_[a-z_]+", d.name), d.name
        assert d.name.endswith(UNIT_SUFFIXES), f"{d.name}: unit or kind missing from the name"
        assert (d.kind == "counter") == d.name.endswith("_total"), d.name
        assert (d.kind == "histogram") == bool(d.buckets), d.name
        # No unbounded identifiers as labels.
        assert not set(d.labels) & {"face_id", "external_image_id", "url", "source", "track_id"}, d.name


def test_recording_outside_ray_goes_to_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other tests of the same session may have started Ray in this process.
    monkeypatch.setattr(metrics, "_backend", lambda: "prometheus")
    metrics.inc("facestream_stream_frames_dropped_total", stream="cam-1", reason="inference_busy")
    metrics.inc("facestream_stream_frames_dropped_total", 2, stream="cam-1", reason="inference_busy")
    metrics.observe("facestream_search_seconds", 0.02, collection="watchlist")
    metrics.set_gauge("facestream_sink_spool_depth", 7, sink="webhook")
    reg = prometheus_client.REGISTRY
    assert (
        reg.get_sample_value(
            "facestream_stream_frames_dropped_total", {"stream": "cam-1", "reason": "inference_busy"}
        )
        == 3.0
    )
    assert reg.get_sample_value("facestream_search_seconds_count", {"collection": "watchlist"}) == 1.0
    assert reg.get_sample_value("facestream_sink_spool_depth", {"sink": "webhook"}) == 7.0


def test_wrong_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        metrics.inc("facestream_searches_total", face_id="123")


def test_every_metric_is_documented_in_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [d.name for d in metrics.DEFINITIONS if f"`{d.name}`" not in readme]
    assert not missing, f"undocumented metrics: {missing}"
