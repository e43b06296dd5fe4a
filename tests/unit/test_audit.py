"""The audit log is append-only and tamper-evident, across processes and restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from facestream.audit import Actor, AuditLog

ACTOR = Actor(key_id="AKTEST", role="searcher")


def _fill(path: Path, n: int) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append(
            actor=ACTOR,
            operation="SearchFacesByImage",
            purpose=f"case {i}",
            inputs={"image_sha256": "ab" * 32},
            results={"matches": [["f", 99.1]]},
        )
    return log


def test_chain_verifies_and_survives_reopen(tmp_path: Path) -> None:
    _fill(tmp_path / "a.jsonl", 5)
    log = AuditLog(tmp_path / "a.jsonl")  # a "restart"
    log.append(actor=ACTOR, operation="IndexFaces")
    res = log.verify()
    assert res.ok and res.entries == 6
    assert [e["seq"] for e in log.entries()] == list(range(6))


@pytest.mark.parametrize(
    ("mutate", "bad"),
    [
        (lambda lines: lines.__setitem__(2, lines[2].replace("case 2", "case 9")), 2),
        (lambda lines: lines.pop(1), 1),
        (lambda lines: lines.insert(3, lines[3]), 4),
        (lambda lines: lines.__setitem__(4, "{not json"), 4),
    ],
    ids=["edited", "deleted", "duplicated", "garbage"],
)
def test_tampering_is_found_and_named(tmp_path: Path, mutate: object, bad: int) -> None:
    log = _fill(tmp_path / "a.jsonl", 6)
    lines = log.path.read_text().splitlines()
    mutate(lines)  # type: ignore[operator]
    log.path.write_text("\n".join(lines) + "\n")
    res = log.verify()
    assert not res.ok and res.first_bad_seq == bad


def test_query_filters(tmp_path: Path) -> None:
    log = _fill(tmp_path / "a.jsonl", 4)
    log.append(actor=Actor("AKOTHER", "indexer"), operation="IndexFaces", now_ms=10)
    assert len(log.query(operation="IndexFaces")) == 1
    assert len(log.query(key_id="AKTEST")) == 4
    assert [e["purpose"] for e in log.query(purpose="case 3")] == ["case 3"]
    assert len(log.query(until_ms=10)) == 1
    assert len(log.query(limit=2)) == 2


def _append_many(path: str) -> None:
    _fill(Path(path), 25)


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with ProcessPoolExecutor(max_workers=3) as pool:
        list(pool.map(_append_many, [str(path)] * 3))
    res = AuditLog(path).verify()
    assert res.ok and res.entries == 75


def test_cli_verify_exit_status(tmp_path: Path) -> None:
    log = _fill(tmp_path / "audit.jsonl", 3)
    env = {"FACESTREAM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "facestream.cli", "audit", "verify", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["entries"] == 3
    lines = log.path.read_text().splitlines()
    lines[1] = lines[1].replace("case 1", "case X")
    log.path.write_text("\n".join(lines) + "\n")
    bad = subprocess.run(
        [sys.executable, "-m", "facestream.cli", "audit", "verify", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode != 0
    assert json.loads(bad.stdout.splitlines()[0])["first_bad_seq"] == 1
    listed = subprocess.run(
        [sys.executable, "-m", "facestream.cli", "audit", "list", "--json", "--limit", "2"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert len(listed.stdout.splitlines()) == 2
