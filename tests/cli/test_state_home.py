"""One state home per operator (issue 18 item 5): the default does not depend on the working
directory, commands that only read images write nothing, and a missing collection or store
says so, naming the collection and the state home. Real subprocesses of the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facestream.paths import StateHome, default_home
from facestream.settings import resolve_settings
from tests.helpers import face

OBAMA = "face_recognition/tests/test_images/obama.jpg"
TWO = "face_recognition/examples/two_people.jpg"


def _cli(args: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[int, list[dict], str]:
    full = {
        k: v for k, v in os.environ.items() if k not in ("FACESTREAM_HOME", "FACESTREAM_STORE", "RAY_ADDRESS")
    }
    full.update({"FACESTREAM_DEVICE": "cpu", **env})
    proc = subprocess.run(
        [sys.executable, "-m", "facestream.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=600,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines() if x.strip()], proc.stderr


def test_default_home_is_the_users_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACESTREAM_HOME", str(tmp_path / "explicit"))
    assert default_home() == tmp_path / "explicit"
    monkeypatch.delenv("FACESTREAM_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "facestream"
    settings = resolve_settings()
    assert settings.home == tmp_path / "xdg" / "facestream"
    assert settings.store_uri == str(tmp_path / "xdg" / "facestream" / "milvus.db")
    assert settings.audit_path == StateHome(settings.home).audit_log
    # Relative XDG_DATA_HOME is ignored (XDG base-directory specification); so is an empty one.
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for xdg in ("relative/data", ""):
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
        assert default_home() == tmp_path / "user" / ".local" / "share" / "facestream"
    assert not (tmp_path / "var").exists()


def test_one_store_whatever_the_working_directory(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    env = {"XDG_DATA_HOME": str(xdg)}
    create = ["collections", "create", "watch", "--model", "dlib-resnet", "--json"]
    code, _, err = _cli(create, cwd=a, env=env)
    assert code == 0, err
    code, lines, err = _cli(["collections", "list", "--json"], cwd=b, env=env)
    assert code == 0, err
    assert [c for line in lines for c in line.get("CollectionIds", [])] == ["watch"], lines
    home = xdg / "facestream"
    assert (home / "milvus.db").exists() and (home / "audit.jsonl").exists()
    assert [list(p.iterdir()) for p in (a, b)] == [[], []]


@pytest.mark.slow
def test_reading_commands_write_nothing_and_a_missing_store_says_so(tmp_path: Path) -> None:
    home, cwd = tmp_path / "never-used", tmp_path / "cwd"
    cwd.mkdir()
    env = {"FACESTREAM_HOME": str(home)}
    code, lines, err = _cli(["detect", str(face(OBAMA)), "--json"], cwd=cwd, env=env)
    assert code == 0 and len(lines[0]["FaceDetails"]) == 1, err
    code, lines, err = _cli(["compare", str(face(OBAMA)), str(face(TWO)), "--json"], cwd=cwd, env=env)
    assert code == 0, err
    code, lines, err = _cli(["collections", "list", "--json"], cwd=cwd, env=env)
    assert code == 0, err
    code, lines, _ = _cli(
        ["search", "watch", str(face(OBAMA)), "--purpose", "case 1", "--json"], cwd=cwd, env=env
    )
    assert code == 2
    error = lines[-1]["error"]
    assert error["code"] == "ResourceNotFoundException"
    assert "'watch'" in error["message"] and str(home) in error["message"], error
    assert "no face store" in error["message"] and "not exists" not in error["message"], error
    code, _, err = _cli(["collections", "describe", "watch"], cwd=cwd, env=env)
    assert code == 2 and f"state home {home}" in err, err
    assert not home.exists(), sorted(str(p) for p in home.rglob("*"))
    assert not any(cwd.iterdir()), sorted(str(p) for p in cwd.rglob("*"))
