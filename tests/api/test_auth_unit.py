"""SigV4 verification against botocore's own signer, and the key store (no Ray, no HTTP)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from facestream.errors import InvalidParameter
from serve.errors import InvalidSignature, MissingAuthentication, UnrecognizedClient
from serve.keys import KeyStore, KeyStoreError, Role, load_master_key
from serve.sigv4 import SignedRequest, verify

KEY_ID, SECRET = "FSKTESTKEY0000000001", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-abcde"
NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def signed(
    body: bytes = b"{}",
    when: dt.datetime = NOW,
    secret: str = SECRET,
    service: str = "rekognition",
    extra: dict[str, str] | None = None,
) -> SignedRequest:
    req = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8123/",
        data=body,
        headers={
            "X-Amz-Target": "RekognitionService.ListCollections",
            "Content-Type": "application/x-amz-json-1.1",
            **(extra or {}),
        },
    )
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: when.replace(tzinfo=None)  # type: ignore[assignment]
    try:
        botocore.auth.SigV4Auth(Credentials(KEY_ID, secret), service, "us-east-1").add_auth(req)
    finally:
        botocore.auth.get_current_datetime = original
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in req.headers.items()]
    headers.append(("host", "127.0.0.1:8123"))
    return SignedRequest("POST", "/", "", headers, body)


def check(req: SignedRequest, now: dt.datetime = NOW, seen: set[str] | None = None) -> str:
    seen = set() if seen is None else seen

    def remember(sig: str) -> bool:
        if sig in seen:
            return False
        seen.add(sig)
        return True

    return verify(
        req,
        service="rekognition",
        lookup_secret=lambda k: SECRET if k == KEY_ID else None,
        remember=remember,
        max_skew_s=300,
        now=now,
    ).access_key_id


def test_botocore_signature_verifies() -> None:
    assert check(signed()) == KEY_ID
    assert check(signed(extra={"X-Facestream-Purpose": "case 1"})) == KEY_ID


@pytest.mark.parametrize(
    ("make", "now", "error", "words"),
    [
        (lambda: signed(secret="wrong" * 8), NOW, InvalidSignature, "does not match"),
        (signed, NOW + dt.timedelta(minutes=6), InvalidSignature, "expired"),
        (signed, NOW - dt.timedelta(minutes=6), InvalidSignature, "expired"),
        (lambda: signed(service="s3"), NOW, InvalidSignature, "service"),
        (
            lambda: SignedRequest("POST", "/", "", [("host", "x")], b"{}"),
            NOW,
            MissingAuthentication,
            "missing",
        ),
        (
            lambda: SignedRequest("POST", "/", "", [("authorization", "Basic abc")], b""),
            NOW,
            InvalidSignature,
            "",
        ),
    ],
)
def test_refusals(make, now, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as e:
        check(make(), now)
    assert e.value.http_status == 401 and words in e.value.message


def test_tampered_body_and_headers() -> None:
    req = signed(b'{"MaxResults": 1}')
    with pytest.raises(InvalidSignature):
        check(SignedRequest(req.method, req.path, req.query, req.headers, b'{"MaxResults": 2}'))
    headers = [
        (k, "RekognitionService.DeleteCollection" if k.lower() == "x-amz-target" else v)
        for k, v in req.headers
    ]
    with pytest.raises(InvalidSignature):
        check(SignedRequest(req.method, req.path, req.query, headers, req.body))


def test_replay_is_refused_and_unknown_key_is_unrecognised() -> None:
    seen: set[str] = set()
    req = signed()
    check(req, seen=seen)
    with pytest.raises(InvalidSignature, match="already used"):
        check(req, seen=seen)
    unknown = SignedRequest(
        req.method,
        req.path,
        req.query,
        [(k, v.replace(KEY_ID, "FSKOTHERKEY000000001")) for k, v in req.headers],
        req.body,
    )
    with pytest.raises(UnrecognizedClient):
        check(unknown)


def test_keystore_roundtrip_encrypted_and_revocation(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys.sqlite", load_master_key(tmp_path, create=True))
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    new = ks.create(Role.SEARCHER, "alice")
    assert new.secret_access_key not in repr(new)
    assert new.secret_access_key.encode() not in (tmp_path / "keys.sqlite").read_bytes()
    info, secret = ks.active_secret(new.access_key_id)  # type: ignore[misc]
    assert secret == new.secret_access_key and info.role is Role.SEARCHER
    assert ks.verify_bearer(new.access_key_id, new.secret_access_key) is not None
    assert ks.verify_bearer(new.access_key_id, new.secret_access_key + "x") is None
    assert ks.remember_signature("abc", 60_000) and not ks.remember_signature("abc", 60_000)
    ks.revoke(new.access_key_id)
    assert ks.active_secret(new.access_key_id) is None
    assert ks.verify_bearer(new.access_key_id, new.secret_access_key) is None
    assert [k.active for k in ks.list()] == [False]
    with pytest.raises(InvalidParameter):
        ks.create("superuser")
    # Another master key cannot read the secrets.
    other = tmp_path / "other"
    other.mkdir()
    ks2 = KeyStore(tmp_path / "keys.sqlite", load_master_key(other, create=True))
    new2 = ks.create(Role.VIEWER)
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        ks2.active_secret(new2.access_key_id)
