"""The kernel's one home each for atomic file writes and SQLite connections."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from facestream.atomic import replacing, write_atomic
from facestream.paths import StateHome
from facestream.sqlite import connect


def test_write_atomic_replaces_and_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_atomic(path, "one")
    write_atomic(path, b"two", mode=0o600, fsync=True)
    assert path.read_text() == "two" and stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(RuntimeError), replacing(path, suffix=".tmp.mp4") as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(".report.json.") and tmp.suffix == ".mp4"
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert path.read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary left


def test_replacing_with_a_mode_is_private_while_written(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    with replacing(path, mode=0o640) as tmp:
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600
        tmp.write_text("{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_connect_applies_the_store_pragmas_and_may_be_shared(tmp_path: Path) -> None:
    db = connect(tmp_path / "a.sqlite3", wal=True, synchronous="FULL")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(db.execute("SELECT 1").fetchone()[0]))
    t.start()
    t.join()
    assert out == [1]
    db.close()
    auto = connect(tmp_path / "b.sqlite3", autocommit=True, shared=False)
    assert auto.isolation_level is None
    assert auto.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    auto.close()


def test_state_home_names_every_file_under_its_root(tmp_path: Path) -> None:
    home = StateHome(tmp_path)
    paths = [
        home.milvus_db,
        home.audit_log,
        home.events_db,
        home.keys_db,
        home.master_key,
        home.review_db,
        home.thumbnails,
        home.evidence,
        home.spool("cam-1"),
        home.preview("cam-1"),
        home.outputs,
        home.media,
        home.processor_registry,
        home.reports,
        home.demo,
        home.index_failures("watch"),
    ]
    assert all(p.is_relative_to(tmp_path) for p in paths) and len(set(paths)) == len(paths)
    assert home.spool("cam-1").parent == home.spool_dir and home.preview("cam-1").parent == home.previews
    assert not os.listdir(tmp_path)  # naming writes nothing
