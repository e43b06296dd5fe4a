"""`facestream keys ...` and `facestream serve` as real subprocesses: keys made on the command
line work over HTTP at once, and SIGTERM shuts the server (and its own Ray) down cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from tests.helpers import scaled
from tests.ray_fixtures import free_port

pytestmark = pytest.mark.slow


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facestream.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_keys_cli_and_serve_command(tmp_path: Path) -> None:
    env = {**os.environ, "FACESTREAM_HOME": str(tmp_path), "FACESTREAM_DEVICE": "cpu"}
    env.pop("FACESTREAM_STORE", None)
    made = _cli(["keys", "create", "--role", "viewer", "--json"], env)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert set(key) == {"AccessKeyId", "SecretAccessKey", "Role", "Roles", "Purpose", "ExpiresAtMs"}
    assert key["Role"] == "viewer" and key["Roles"] == ["viewer"]
    listed = _cli(["keys", "list", "--json"], env)
    assert key["SecretAccessKey"] not in listed.stdout and key["AccessKeyId"] in listed.stdout
    bad = _cli(["keys", "create", "--role", "root", "--json"], env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facestream.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num-cpus",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + scaled(240)
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        else:
            pytest.fail("facestream serve did not become healthy in 240 s")
        c = boto3.client(
            "rekognition",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1}),
        )
        assert c.list_collections()["CollectionIds"] == []
        revoked = _cli(["keys", "revoke", key["AccessKeyId"], "--json"], env)
        assert json.loads(revoked.stdout)["Status"] == "Revoked"
        r = requests.post(
            f"{url}/v1/ListCollections",
            json={},
            headers={"Authorization": f"Bearer {key['AccessKeyId']}:{key['SecretAccessKey']}"},
            timeout=30,
        )
        assert r.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            raise
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
