"""Deployment profiles, the similarity scale, Wilson intervals, per-group rates, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from facestream.errors import InvalidParameter
from facestream.evaluation import Pair, kfold_accuracy, roc_auc, tar_at_far, threshold_at_fmr
from facestream.fairness import calibrate, group_error_rates, wilson
from facestream.profiles import resolve_profile
from facestream.similarity import cosine_to_similarity, similarity_to_cosine


@pytest.mark.parametrize(
    ("profile", "requested", "expected"),
    [
        ("general", None, 80.0),
        ("general", 60.0, 60.0),
        ("public-safety", None, 99.0),
        ("public-safety", 99.5, 99.5),
    ],
)
def test_profile_thresholds(profile: str, requested: float | None, expected: float) -> None:
    assert resolve_profile(profile).threshold(requested) == expected


@pytest.mark.parametrize(
    ("profile", "requested"), [("public-safety", 80.0), ("general", -1.0), ("general", 101.0)]
)
def test_profile_refuses_lower_thresholds(profile: str, requested: float) -> None:
    with pytest.raises(InvalidParameter):
        resolve_profile(profile).threshold(requested)


def test_profile_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESTREAM_PROFILE", "public-safety")
    assert resolve_profile().name == "public-safety"
    assert resolve_profile("general").name == "general"
    monkeypatch.setenv("FACESTREAM_PROFILE", "lax")
    with pytest.raises(InvalidParameter, match="expected one of"):
        resolve_profile()


def test_similarity_scale_is_monotone_and_invertible() -> None:
    cos = np.linspace(-1, 1, 2001)
    sims = cosine_to_similarity("dlib-resnet", cos)
    assert np.all(np.diff(sims) >= 0) and sims[0] == 0 and sims[-1] == 100
    for s in (0.0, 50.0, 80.0, 99.0, 100.0):
        assert (
            abs(float(cosine_to_similarity("dlib-resnet", similarity_to_cosine("dlib-resnet", s))) - s) < 1e-9
        )
    with pytest.raises(InvalidParameter):
        cosine_to_similarity("no-such-model", 0.5)


def test_wilson_interval() -> None:
    lo, hi = wilson(0, 100)
    assert lo < 1e-12 and 0.03 < hi < 0.04  # the "rule of three" neighbourhood
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9
    assert wilson(0, 0) == (0.0, 1.0)


def _pairs() -> tuple[list[Pair], np.ndarray]:
    pairs = [
        Pair("a1", "a2", True, "ann", "ann"),
        Pair("b1", "b2", True, "bob", "bob"),
        Pair("a1", "c1", False, "ann", "cat"),
        Pair("b1", "d1", False, "bob", "dan"),
        Pair("a1", "b1", False, "ann", "bob"),
    ]
    sims = np.array([95.0, 70.0, 85.0, 10.0, 20.0])
    return pairs, sims


def test_group_error_rates() -> None:
    pairs, sims = _pairs()
    groups = {"ann": "g1", "cat": "g1", "bob": "g2", "dan": "g2"}
    rates = {r.group: r for r in group_error_rates(pairs, sims, groups, threshold=80.0)}
    assert set(rates) == {"g1", "g2", "cross-group"}
    assert rates["g1"].false_matches == 1 and rates["g1"].fmr == 1.0  # ann vs cat at 85
    assert rates["g2"].false_non_matches == 1 and rates["g2"].fnmr == 1.0  # bob pair at 70
    assert rates["cross-group"].impostor_pairs == 1 and rates["cross-group"].fmr == 0.0


def test_calibration_and_metrics() -> None:
    rng = np.random.default_rng(1)
    same = np.array([True] * 200 + [False] * 2000)
    scores = np.concatenate([rng.normal(90, 4, 200), rng.normal(40, 10, 2000)])
    res = calibrate(scores, same, 1e-3)
    assert res["fmr"] <= 1e-3 and not res["resolution_limited"]
    assert calibrate(scores[:210], same[:210], 1e-3)["resolution_limited"]
    thr = threshold_at_fmr(scores, same, 0.0)
    assert np.all(scores[~same] < thr)
    assert kfold_accuracy(scores, same)[0] > 0.99
    assert roc_auc(scores, same) > 0.99
    assert tar_at_far(scores, same, 1e-2) > 0.9
    with pytest.raises(InvalidParameter):
        calibrate(scores, same, 1.5)


def test_operations_enforce_the_profile_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    from facestream.operations import check_threshold

    assert check_threshold(80.0) == 80.0
    monkeypatch.setenv("FACESTREAM_PROFILE", "public-safety")
    with pytest.raises(InvalidParameter, match="public-safety"):
        check_threshold(80.0, "FaceMatchThreshold")
    assert check_threshold(99.5) == 99.5
