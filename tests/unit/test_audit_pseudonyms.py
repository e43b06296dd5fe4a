"""Subject identifiers in the audit log are keyed pseudonyms; erasure shreds their secret and
the chain still verifies (issue 18 item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facestream.audit import Actor, AuditLog, audit_context
from facestream.errors import InvalidParameter
from facestream.subjects import PSEUDONYM_RE

ACTOR = Actor("FSKTEST", "admin", ("admin", "indexer"))


def test_subjects_are_pseudonymised_resolvable_then_shredded(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(
        actor=ACTOR, operation="IndexFaces", inputs={"external_image_id": "jane-doe", "collection": "c"}
    )
    log.append(
        actor=ACTOR,
        operation="SearchUsers",
        results={"matches": [{"user_id": "jane.d", "similarity": 99.1}], "own_user": "bob"},
    )
    log.append(actor=ACTOR, operation="IndexFaces", inputs={"external_image_id": "jane-doe"})
    text = (tmp_path / "audit.jsonl").read_text()
    assert "jane-doe" not in text and "jane.d" not in text and "bob" not in text
    entries = list(log.entries())
    psn = entries[0]["inputs"]["external_image_id"]
    assert PSEUDONYM_RE.match(psn) and entries[2]["inputs"]["external_image_id"] == psn
    assert entries[0]["actor"] == {"key_id": "FSKTEST", "role": "admin", "roles": ["admin", "indexer"]}
    user_psn = entries[1]["results"]["matches"][0]["user_id"]
    assert user_psn != psn and log.subjects.resolve(user_psn) == ("user_id", "jane.d")
    assert log.subjects.resolve(psn) == ("external_image_id", "jane-doe")
    assert log.pseudonym("external_image_id", "jane-doe") == psn
    assert log.pseudonym("external_image_id", "nobody") is None  # asking creates nothing

    assert log.shred_subject("external_image_id", "jane-doe")
    assert log.subjects.resolve(psn) is None
    assert log.pseudonym("external_image_id", "jane-doe") is None
    assert log.verify().ok and log.verify().entries == 3
    assert b"jane-doe" not in log.subjects.path.read_bytes()
    # The same name indexed again gets a new secret: old entries stay unlinkable.
    log.append(actor=ACTOR, operation="IndexFaces", inputs={"external_image_id": "jane-doe"})
    assert list(log.entries())[-1]["inputs"]["external_image_id"] != psn
    assert log.subjects.resolve(user_psn) == ("user_id", "jane.d")  # others untouched
    with pytest.raises(InvalidParameter):
        log.subjects.resolve("jane-doe")


def test_purpose_bound_key_context(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    with audit_context(purpose="case 7", purpose_header="follow-up 3"):
        log.append(actor=ACTOR, operation="IndexFaces")
        log.append(actor=ACTOR, operation="SearchFaces", purpose="case 7")
    log.append(actor=ACTOR, operation="ListFaces")
    e = list(log.entries())
    assert [x["purpose"] for x in e] == ["case 7", "case 7", None]
    assert [x.get("purpose_header") for x in e] == ["follow-up 3", "follow-up 3", None]
    assert log.verify().ok
    assert json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])["purpose"] == "case 7"
