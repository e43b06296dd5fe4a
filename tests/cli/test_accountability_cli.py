"""`facestream calibrate` and `facestream report errors` on real labelled pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import faces_dir, run_cli

pytestmark = pytest.mark.slow


def _subset(tmp_path: Path) -> Path:
    lines = (faces_dir() / "PAIRS.tsv").read_text().splitlines()
    header, rows = lines[0], [r for r in lines[1:] if not r.split("\t")[5:6] or not r.split("\t")[5]]
    deepface = [r for r in rows if r.count("deepface/tests/unit/dataset") == 2]
    genuine = [r for r in deepface if r.split("\t")[2] == "1"][:40]
    impostor = [r for r in deepface if r.split("\t")[2] == "0"][:80]
    keep = genuine + impostor
    out = tmp_path / "pairs.tsv"
    out.write_text("\n".join([header, *keep]) + "\n")
    return out


def _run(args: list[str], tmp_path: Path) -> tuple[int, str]:
    code, lines, _ = run_cli(args, tmp_path, timeout_s=900)
    return code, "\n".join(json.dumps(line) for line in lines)


def test_calibrate_and_group_report(tmp_path: Path) -> None:
    pairs = _subset(tmp_path)
    root = str(faces_dir())
    code, out = _run(
        ["calibrate", "--pairs", str(pairs), "--images-root", root, "--target-fmr", "0.01", "--json"],
        tmp_path,
    )
    assert code == 0, out
    cal = json.loads(out)
    assert cal["model"] == "dlib-resnet" and cal["pairs"] > 50
    row = cal["calibration"][0]
    assert 0 <= row["threshold"] <= 100 and row["fmr"] <= 0.01

    groups = tmp_path / "groups.tsv"
    ids = {line.split("\t")[3] for line in pairs.read_text().splitlines()[1:]}
    ids |= {line.split("\t")[4] for line in pairs.read_text().splitlines()[1:]}
    groups.write_text(
        "identity\tgroup\n"
        + "".join(f"{name}\t{'A' if i % 2 else 'B'}\n" for i, name in enumerate(sorted(ids)))
    )
    plot = tmp_path / "rates.png"
    code, out = _run(
        [
            "report",
            "errors",
            "--pairs",
            str(pairs),
            "--images-root",
            root,
            "--groups",
            str(groups),
            "--plot",
            str(plot),
            "--json",
        ],
        tmp_path,
    )
    assert code == 0, out
    rep = json.loads(out)
    assert rep["threshold"] == 80.0
    names = {g["group"] for g in rep["groups"]}
    assert {"A", "B"} <= names
    for g in rep["groups"]:
        lo, hi = g["fmr_ci95"]
        assert 0 <= lo <= hi <= 1
        assert g["genuine_pairs"] + g["impostor_pairs"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The public-safety profile refuses a lower threshold: exit 2, nothing computed.
    code, out = _run(
        [
            "report",
            "errors",
            "--pairs",
            str(pairs),
            "--groups",
            str(groups),
            "--profile",
            "public-safety",
            "--threshold",
            "80",
            "--json",
        ],
        tmp_path,
    )
    assert code == 2 and json.loads(out)["error"]["code"] == "InvalidParameterException"
