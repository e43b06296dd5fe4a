"""``facestream keys create``: role sets (reviewer included), purpose-bound and expiring keys,
and the public-safety profile's refusals (issue 18), as a real subprocess."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers import run_cli


def test_keys_create_role_sets_purpose_and_expiry(tmp_path: Path) -> None:
    code, lines, err = run_cli(
        [
            "keys", "create", "--role", "searcher", "--role", "admin", "--role", "indexer",
            "--purpose", "case 2026-114", "--expires-days", "30", "--json",
        ],
        tmp_path,
    )  # fmt: skip
    assert code == 0, err
    (key,) = lines
    assert key["Roles"] == ["admin", "indexer", "searcher"] and key["Purpose"] == "case 2026-114"
    days = (key["ExpiresAtMs"] - time.time() * 1000) / 86_400_000
    assert 29.9 < days <= 30
    code, lines, err = run_cli(["keys", "create", "--role", "reviewer", "--json"], tmp_path)
    assert code == 0 and lines[0]["Roles"] == ["reviewer"], err
    code, lines, _ = run_cli(["keys", "list", "--json"], tmp_path)
    assert [k["Roles"] for k in lines] == [["admin", "indexer", "searcher"], ["reviewer"]]
    assert all("SecretAccessKey" not in k for k in lines)
    code, lines, _ = run_cli(["audit", "list", "--operation", "CreateAccessKey", "--json"], tmp_path)
    assert lines[0]["inputs"]["roles"] == ["admin", "indexer", "searcher"]
    assert lines[0]["inputs"]["purpose"] == "case 2026-114"


def test_public_safety_refuses_mixed_duties_and_unbound_searchers(tmp_path: Path) -> None:
    env = {"FACESTREAM_PROFILE": "public-safety"}
    code, _, err = run_cli(
        ["keys", "create", "--role", "admin", "--role", "searcher", "--purpose", "case 1"], tmp_path, env=env
    )
    assert code == 2 and "separates duties" in err, err
    code, _, err = run_cli(["keys", "create", "--role", "searcher"], tmp_path, env=env)
    assert code == 2 and "purpose on every searcher key" in err, err
    code, lines, err = run_cli(
        ["keys", "create", "--role", "searcher", "--purpose", "case 1", "--json"], tmp_path, env=env
    )
    assert code == 0 and lines[0]["Purpose"] == "case 1", err
