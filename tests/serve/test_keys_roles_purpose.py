"""Role sets, purpose-bound and expiring keys, and the profiles' rules for them (issue 18)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from facestream.errors import InvalidParameter
from facestream.profiles import PROFILES
from serve.keys import KeyStore, Role, load_master_key


def _ks(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.sqlite", load_master_key(tmp_path, create=True))


def test_a_key_holds_several_roles_and_a_purpose(tmp_path: Path) -> None:
    ks = _ks(tmp_path)
    new = ks.create(["searcher", "admin", Role.INDEXER], "sdk", purpose="  case 2026-114 ", expires_days=2)
    assert new.roles == {Role.ADMIN, Role.INDEXER, Role.SEARCHER} and new.role is Role.ADMIN
    assert new.purpose == "case 2026-114"
    assert new.to_json()["Roles"] == ["admin", "indexer", "searcher"]
    info, _ = ks.active_secret(new.access_key_id)  # type: ignore[misc]
    assert info.roles == new.roles and info.purpose == "case 2026-114" and info.active
    assert info.expires_at_ms is not None
    assert 2 * 86_400_000 - 60_000 < info.expires_at_ms - int(time.time() * 1000) <= 2 * 86_400_000
    assert ks.create("reviewer").roles == {Role.REVIEWER}
    assert ks.create("viewer,auditor").roles == {Role.VIEWER, Role.AUDITOR}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"roles": []}, "at least one role"),
        ({"roles": ["searcher", "root"]}, "root"),
        ({"roles": "searcher", "purpose": "a\nb"}, "purpose"),
        ({"roles": "searcher", "purpose": "x" * 501}, "purpose"),
        ({"roles": "searcher", "expires_days": 0}, "expires-days"),
        ({"roles": "searcher", "expires_days": 5000}, "expires-days"),
    ],
)
def test_bad_keys_are_refused(tmp_path: Path, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidParameter, match=match):
        _ks(tmp_path).create(**kwargs)


def test_public_safety_separates_duties_and_binds_searchers(tmp_path: Path) -> None:
    ks = _ks(tmp_path)
    for mixed in (["admin", "indexer"], ["admin", "searcher"], ["admin", "reviewer"]):
        with pytest.raises(InvalidParameter, match="separates duties"):
            ks.create(mixed, purpose="case 1", profile="public-safety")
    with pytest.raises(InvalidParameter, match="purpose on every searcher key"):
        ks.create("searcher", profile="public-safety")
    assert ks.create("searcher", purpose="case 1", profile="public-safety").roles == {Role.SEARCHER}
    assert ks.create(["admin", "auditor"], profile="public-safety").roles == {Role.ADMIN, Role.AUDITOR}
    # general allows both
    assert len(ks.create(["admin", "indexer", "searcher"], profile="general").roles) == 3
    PROFILES["general"].check_key({"admin", "searcher"}, None)
    assert [k.access_key_id for k in ks.list()] == [k.access_key_id for k in ks.list() if k.active]


def test_expired_keys_say_so(tmp_path: Path) -> None:
    ks = _ks(tmp_path)
    new = ks.create("viewer", expires_days=1)
    with sqlite3.connect(tmp_path / "keys.sqlite") as db:
        db.execute("UPDATE keys SET expires_at_ms = 1 WHERE access_key_id = ?", (new.access_key_id,))
    info = ks.get(new.access_key_id)
    assert info is not None and info.expired and not info.active and info.status == "Expired"


def test_a_key_file_of_the_one_role_era_still_works(tmp_path: Path) -> None:
    """Key files made before role sets (one ``role`` column) gain the new columns on open."""
    db = sqlite3.connect(tmp_path / "keys.sqlite")
    db.execute(
        "CREATE TABLE keys (access_key_id TEXT PRIMARY KEY, role TEXT NOT NULL, secret_enc BLOB NOT NULL,"
        " salt BLOB NOT NULL, secret_hash BLOB NOT NULL, created_at_ms INTEGER NOT NULL,"
        " revoked_at_ms INTEGER, description TEXT NOT NULL DEFAULT '')"
    )
    db.execute("INSERT INTO keys VALUES ('FSKOLD', 'indexer', x'00', x'00', x'00', 5, NULL, 'old')")
    db.commit()
    db.close()
    info = _ks(tmp_path).get("FSKOLD")
    assert info is not None and info.roles == {Role.INDEXER} and info.purpose is None and info.active
