"""One running facestream API for the hostile-input, security and load-shedding tests.

The same application as tests/api (real Ray Serve, the batched analysis deployment, Milvus
Lite behind the store actor, keys in sqlite), with small load-shedding limits so that 32+
concurrent clients are far beyond capacity, and one extra allowed webhook host.
Package-scoped: deleted when tests/security is done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from serve.config import ApiAppArgs, ApiLimits
from serve.keys import KeyStore, Role, load_master_key
from tests.api.conftest import Api, Key, app_args

APP = "facestream-security-test"
#: load shedding under test: 2 requests worked on, 6 waiting at most 3 s each
LIMITS = {"max_in_flight_requests": 2, "max_queued_requests": 6, "queue_wait_s": 3.0, "retry_after_s": 2}
ALLOWED_WEBHOOK_HOST = "hooks.example.org"


def security_args(home: Path) -> ApiAppArgs:
    base = app_args(home)
    limits = ApiLimits(**{**base.api.limits.model_dump(), **LIMITS})
    api = base.api.model_copy(update={"limits": limits, "webhook_hosts": (ALLOWED_WEBHOOK_HOST,)})
    return base.model_copy(update={"api": api, "embedding_deployment_name": "FaceAnalysisSecurityTest"})


@pytest.fixture(scope="package")
def sapi(serve_http_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from ray import serve

    from serve.app import build_app

    home = tmp_path_factory.mktemp("security-home")
    ks = KeyStore(home / "keys.sqlite", load_master_key(home, create=True))
    keys = {}
    for role in Role:
        new = ks.create(role, f"tests/security {role.value}")
        keys[role.value] = Key(new.access_key_id, new.secret_access_key)
    serve.run(build_app(security_args(home)), name=APP, route_prefix="/")
    url = f"http://127.0.0.1:{serve_http_port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    try:
        yield Api(url=url, home=home, keys=keys, keystore=ks)
    finally:
        serve.delete(APP)
