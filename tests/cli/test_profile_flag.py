"""``--profile``: flag > FACESTREAM_PROFILE > config > general; public-safety refuses 80 (exit 2).

Each refusal happens before any model, store or Ray starts. One case of each entry point runs
as a real process (its exit status is the contract); the rest call ``facestream.cli.main``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facestream.cli import main
from facestream.profiles import adopt_configured, apply_profile_flag, resolve_profile
from tests.helpers import REPO, run_cli

FLOOR = "below the floor"


SEARCH = ["search", "watch", "nobody.jpg", "--purpose", "case 1", "--threshold", "80"]
STREAM = ["stream", "clip.mp4", "--collection", "watch", "--events", "e.jsonl", "--purpose", "case 1"]


def test_public_safety_flag_refuses_80_as_a_process(tmp_path: Path) -> None:
    code, _, err = run_cli([*SEARCH, "--profile", "public-safety"], tmp_path)
    assert code == 2 and FLOOR in err and "public-safety" in err


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ([*STREAM, "--threshold", "80", "--profile", "public-safety"], None),
        (SEARCH, "public-safety"),
        ([*STREAM, "--threshold", "80"], "public-safety"),
    ],
    ids=["stream-flag", "search-env", "stream-env"],
)
def test_public_safety_refuses_80(
    args: list[str],
    env: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _isolate(monkeypatch, tmp_path, env)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert FLOOR in err and "public-safety" in err


def test_flag_wins_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # general lets 80 through; the stream then fails on its own account (no such file).
    _isolate(monkeypatch, tmp_path, "public-safety")
    assert main([*STREAM, "--threshold", "80", "--profile", "general"]) == 2
    err = capsys.readouterr().err
    assert FLOOR not in err and "clip.mp4" in err


def _isolate(monkeypatch: pytest.MonkeyPatch, home: Path, profile: str | None) -> None:
    """State under ``home``; FACESTREAM_PROFILE as given (restored afterwards: --profile sets it)."""
    monkeypatch.setenv("FACESTREAM_HOME", str(home))
    monkeypatch.delenv("FACESTREAM_STORE", raising=False)
    if profile is None:
        monkeypatch.delenv("FACESTREAM_PROFILE", raising=False)
    else:
        monkeypatch.setenv("FACESTREAM_PROFILE", profile)


def test_profile_flag_is_on_demo_and_checked(tmp_path: Path) -> None:
    code, _, err = run_cli(["demo", "--purpose", "x", "--profile", "lenient"], tmp_path)
    assert code == 2 and "invalid choice" in err


def _fleet_job_at_80(
    tmp_path: Path, runtime: dict[str, str], *flags: str
) -> subprocess.CompletedProcess[str]:
    """``python -m pipelines.stream`` (a real process, no FACESTREAM_PROFILE) on one processor
    asking for threshold 80."""
    fleet = {
        "runtime": runtime,
        "processors": [
            {
                "name": "p1",
                "source": {"kind": "file", "path": str(tmp_path / "clip.mp4")},
                "collection": "watch",
                "purpose": "case 1",
                "threshold": 80,
            }
        ],
    }
    cfg = tmp_path / "fleet.json"
    cfg.write_text(json.dumps(fleet))
    env = {k: v for k, v in os.environ.items() if k != "FACESTREAM_PROFILE"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.stream", "--config", str(cfg), *flags],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_fleet_job_profile_flag_refuses_80(tmp_path: Path) -> None:
    proc = _fleet_job_at_80(tmp_path, {"home": str(tmp_path)}, "--profile", "public-safety")
    assert proc.returncode == 2 and FLOOR in proc.stderr and "Traceback" not in proc.stderr


def test_precedence_flag_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACESTREAM_PROFILE", raising=False)
    assert resolve_profile().name == "general"
    assert resolve_profile(configured="public-safety").name == "public-safety"
    monkeypatch.setenv("FACESTREAM_PROFILE", "general")
    assert resolve_profile(configured="public-safety").name == "general"  # env > config
    assert resolve_profile("public-safety", configured="general").name == "public-safety"  # flag > env
    assert apply_profile_flag("public-safety").default_threshold == 99.0
    assert os.environ["FACESTREAM_PROFILE"] == "public-safety"
    assert resolve_profile().threshold(None) == 99.0


def test_config_profile_applies_unless_the_environment_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESTREAM_PROFILE", "general")
    assert adopt_configured("public-safety").name == "general"  # env > config
    monkeypatch.delenv("FACESTREAM_PROFILE")
    assert adopt_configured(None).name == "general"
    assert adopt_configured("public-safety").name == "public-safety"
    assert os.environ["FACESTREAM_PROFILE"] == "public-safety"  # for the Ray workers it starts too


def test_fleet_job_config_profile_refuses_80(tmp_path: Path) -> None:
    proc = _fleet_job_at_80(tmp_path, {"home": str(tmp_path), "profile": "public-safety"})
    assert proc.returncode == 2 and FLOOR in proc.stderr and "Traceback" not in proc.stderr
