"""``facestream review``: policy, list, show, confirm/reject as distinct reviewers, exit statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from facestream.audit import AuditLog
from pipelines.review import ReviewStore, review_path
from pipelines.sinks import Spool
from tests.helpers import run_cli
from tests.pipelines.test_review import record

pytestmark = pytest.mark.slow


def test_review_cli_end_to_end(tmp_path: Path) -> None:
    code, out, _ = run_cli(["collections", "create", "watch", "--json"], tmp_path)
    assert code == 0, out
    code, out, _ = run_cli(["review", "policy", "watch", "--confirmations", "2", "--json"], tmp_path)
    assert code == 0 and out[-1]["RequiredConfirmations"] == 2
    code, _, err = run_cli(["review", "policy", "nope", "--json"], tmp_path)
    assert code == 2
    code, _, err = run_cli(["review", "policy", "watch", "--confirmations", "7"], tmp_path)
    assert code == 2 and "0..5" in err

    spool = tmp_path / "spool" / "cam1.sqlite3"
    store = ReviewStore(review_path(tmp_path))
    store.submit(record(), collection="watch", required=2, sinks=["s"], spool=spool, crop_jpeg=b"\xff\xd8x")
    store.submit(
        record(eid="ev2", track="t2"),
        collection="watch",
        required=2,
        sinks=["s"],
        spool=spool,
        crop_jpeg=None,
    )
    store.close()

    code, out, _ = run_cli(["review", "list", "--status", "PENDING", "--json"], tmp_path)
    assert code == 0 and [c["EventId"] for c in out[-1]["Candidates"]] == ["ev1", "ev2"]
    crop = tmp_path / "crop.jpg"
    code, out, _ = run_cli(["review", "show", "ev1", "--crop", str(crop), "--json"], tmp_path)
    assert code == 0 and crop.read_bytes() == b"\xff\xd8x" and (crop.stat().st_mode & 0o777) == 0o600
    assert run_cli(["review", "confirm", "ev1", "--reviewer", "ana", "--json"], tmp_path)[0] == 0
    code, _, err = run_cli(["review", "confirm", "ev1", "--reviewer", "ana"], tmp_path)
    assert code == 2 and "already decided" in err
    code, _, err = run_cli(["review", "confirm", "ev1", "--reviewer", "bad name!"], tmp_path)
    assert code == 2
    code, out, _ = run_cli(["review", "confirm", "ev1", "--reviewer", "ben", "--json"], tmp_path)
    assert code == 0 and out[-1]["Status"] == "CONFIRMED" and out[-1]["Released"]
    code, out, _ = run_cli(
        ["review", "reject", "ev2", "--reviewer", "ana", "--reason", "not her", "--json"], tmp_path
    )
    assert code == 0 and out[-1]["Status"] == "REJECTED"
    assert run_cli(["review", "show", "missing"], tmp_path)[0] == 2

    sp = Spool(spool)
    assert [(r["EventId"], r["Review"]["ConfirmedBy"]) for r in sp.pending("s", 10)] == [
        ("ev1", ["local:ana", "local:ben"])
    ]
    sp.close()
    audit = AuditLog(tmp_path / "audit.jsonl")
    assert [e["actor"]["key_id"] for e in audit.query(operation="ReviewMatchCandidate")] == [
        "local:ana",
        "local:ben",
        "local:ana",
    ]
    assert len(audit.query(operation="ReleaseMatchAlert")) == 1
    assert audit.verify().ok
