"""Security basics: keys at rest, constant-time comparison, secrets out of logs and URLs."""

from __future__ import annotations

import ast
import hashlib
import inspect
import logging
import secrets
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from serve import keys as keys_mod
from serve import sigv4
from serve.keys import KeyStore, Role, load_master_key
from tests.api.conftest import PURPOSE, Api


def _db_bytes(path: Path) -> bytes:
    out = b""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists():
            out += p.read_bytes()
    return out


def test_keys_are_stored_hashed_and_encrypted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ks = KeyStore(tmp_path / "keys.sqlite", load_master_key(tmp_path, create=True))
    made = [ks.create(role) for role in Role]
    raw = _db_bytes(tmp_path / "keys.sqlite")
    db = sqlite3.connect(tmp_path / "keys.sqlite")
    try:
        rows = {
            r[0]: r[1:] for r in db.execute("SELECT access_key_id, salt, secret_hash, secret_enc FROM keys")
        }
    finally:
        db.close()
    for new in made:
        secret = new.secret_access_key
        assert secret.encode() not in raw  # not in the file, nor its WAL
        salt, digest, enc = rows[new.access_key_id]
        assert digest == hashlib.sha256(salt + secret.encode()).digest()
        assert len(salt) == 16 and secret.encode() not in enc  # SigV4's copy: Fernet-encrypted
        assert secret not in repr(new)
        # The log of making it names the key id, never the secret.
        assert new.access_key_id in caplog.text and secret not in caplog.text
    assert len({r[0] for r in rows.values()}) == len(made)  # one salt per key
    assert (tmp_path / "keys.sqlite").stat().st_mode & 0o077 == 0


def _calls_in(fn: object) -> tuple[set[str], list[str]]:
    """Names of functions called in ``fn`` and the source of every ``==``/``!=`` comparison."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))  # type: ignore[arg-type]
    called = {
        n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
    }
    compares = [
        ast.unparse(n)
        for n in ast.walk(tree)
        if isinstance(n, ast.Compare) and any(isinstance(o, ast.Eq | ast.NotEq) for o in n.ops)
    ]
    return called, compares


def test_secret_comparisons_are_constant_time() -> None:
    called, compares = _calls_in(keys_mod.KeyStore.verify_bearer)
    assert "compare_digest" in called
    assert not [c for c in compares if "secret" in c or "hash" in c], compares
    called, compares = _calls_in(sigv4.verify)
    assert "compare_digest" in called
    # The signature (``sig``, ``expected``) is only ever compared with compare_digest;
    # ``signed`` is the list of signed header names, which is public.
    assert not [c for c in compares if "expected" in c or "['sig']" in c or "secret" in c], compares


def test_verify_bearer_work_does_not_depend_on_the_key_existing(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys.sqlite", load_master_key(tmp_path, create=True))
    new = ks.create("viewer")
    assert ks.verify_bearer(new.access_key_id, new.secret_access_key) is not None
    assert ks.verify_bearer(new.access_key_id, new.secret_access_key[:-1] + "x") is None
    assert ks.verify_bearer("FSK" + "A" * 17, new.secret_access_key) is None


@pytest.mark.slow
def test_credentials_in_the_url_query_are_never_used(sapi: Api) -> None:
    key = sapi.keys["admin"]
    url = f"{sapi.url}/v1/ListCollections"
    for query in (
        {"AccessKeyId": key.key_id, "SecretAccessKey": key.secret},
        {"access_token": f"{key.key_id}:{key.secret}"},
        {"Authorization": f"Bearer {key.key_id}:{key.secret}"},
    ):
        resp = requests.post(url, params=query, json={}, timeout=60)
        assert resp.status_code == 401, resp.text
        assert key.secret not in resp.text
    # Rekognition face: a presigned-URL style query (X-Amz-Credential/-Signature) is not accepted.
    q = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{key.key_id}/20260101/us-east-1/rekognition/aws4_request",
        "X-Amz-Signature": "0" * 64,
        "X-Amz-SignedHeaders": "host",
    }
    resp = requests.post(
        f"{sapi.url}/",
        params=q,
        data=b"{}",
        headers={"X-Amz-Target": "RekognitionService.ListCollections"},
        timeout=60,
    )
    assert resp.status_code == 401, resp.text
    # With the header, the same call works: the 401s above were about where the secret was.
    assert requests.post(url, json={}, headers=key.bearer, timeout=60).status_code == 200


@pytest.mark.slow
def test_secrets_never_reach_logs_or_the_audit_log(sapi: Api) -> None:
    """Make a key and a webhook processor with a bearer token and a camera password over HTTP,
    start it (its webhook fails: nothing listens), then search every Ray log file of this
    session and the audit log for the secrets."""
    import ray

    admin = {**sapi.keys["admin"].bearer, "X-Facestream-Purpose": PURPOSE + " secrets"}
    r = requests.post(f"{sapi.url}/v1/CreateAccessKey", json={"Role": "viewer"}, headers=admin, timeout=60)
    assert r.status_code == 200
    new_secret = r.json()["SecretAccessKey"]
    token = "whtok-" + secrets.token_hex(12)
    cam_pw = "campw-" + secrets.token_hex(8)
    hook_pw = "hookpw-" + secrets.token_hex(8)
    requests.post(
        f"{sapi.url}/v1/CreateCollection", json={"CollectionId": "secrets"}, headers=admin, timeout=60
    )
    body: dict[str, Any] = {
        "Name": "secret-hook",
        "Input": {"Url": f"rtsp://operator:{cam_pw}@127.0.0.1:9/cam"},
        "Output": {
            "Webhook": {"Url": f"http://user:{hook_pw}@127.0.0.1:9/hook?token={token}", "BearerToken": token}
        },
        "Settings": {"FaceSearch": {"CollectionId": "secrets"}},
    }
    r = requests.post(f"{sapi.url}/v1/CreateStreamProcessor", json=body, headers=admin, timeout=60)
    assert r.status_code == 200, r.text
    r = requests.post(
        f"{sapi.url}/v1/StartStreamProcessor", json={"Name": "secret-hook"}, headers=admin, timeout=60
    )
    assert r.status_code == 200, r.text
    try:
        shown = ""
        for _ in range(20):  # let it try to connect (and log the failure) a few times
            d = requests.post(
                f"{sapi.url}/v1/DescribeStreamProcessor",
                json={"Name": "secret-hook"},
                headers=sapi.keys["viewer"].bearer,
                timeout=60,
            )
            shown += d.text
            if d.json().get("Status") == "RECONNECTING":
                break
            __import__("time").sleep(0.5)
    finally:
        requests.post(
            f"{sapi.url}/v1/StopStreamProcessor", json={"Name": "secret-hook"}, headers=admin, timeout=120
        )
        requests.post(
            f"{sapi.url}/v1/DeleteStreamProcessor", json={"Name": "secret-hook"}, headers=admin, timeout=60
        )
    node = ray._private.worker._global_node
    assert node is not None
    logs_dir = Path(node.get_logs_dir_path())
    texts = [p.read_bytes() for p in logs_dir.rglob("*") if p.is_file()]
    texts.append((sapi.home / "audit.jsonl").read_bytes())
    texts.append(shown.encode())
    for secret in (new_secret, token, cam_pw, hook_pw, sapi.keys["admin"].secret):
        leaks = [i for i, t in enumerate(texts) if secret.encode() in t]
        assert not leaks, f"secret {secret[:6]}... found in {len(leaks)} log files"
    assert sum(len(t) for t in texts) > 10_000  # the logs were really there to search
