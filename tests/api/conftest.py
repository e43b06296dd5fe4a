"""The facestream API running on the session's local Ray Serve, with one key per role.

Package-scoped: every test module of tests/api shares one running application, which is
deleted when the package is done (its analysis replica and route free for other tests).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig
from serve.config import ApiAppArgs, ApiConfig, ApiDeploymentConfig, ApiLimits
from serve.keys import KeyStore, Role, load_master_key
from tests.helpers import faces_dir, scaled

API_APP = "facestream-api-test"
PURPOSE = "test: tests/api"


@dataclass
class Key:
    key_id: str
    secret: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_id}:{self.secret}"}


@dataclass
class Api:
    url: str
    home: Path
    keys: dict[str, Key]
    keystore: KeyStore

    def post(
        self, op: str, body: dict, role: str = "admin", purpose: str | None = None, **kw
    ) -> requests.Response:  # type: ignore[type-arg]
        headers = dict(self.keys[role].bearer)
        if purpose is not None:
            headers["X-Facestream-Purpose"] = purpose
        return requests.post(f"{self.url}/v1/{op}", json=body, headers=headers, timeout=300, **kw)


def app_args(home: Path) -> ApiAppArgs:
    return ApiAppArgs(
        api=ApiConfig(
            home=home,
            image_roots={"test-faces": faces_dir()},
            media_dirs=(faces_dir(),),
            limits=ApiLimits(analysis_timeout_s=300.0),
        ),
        deployment=ApiDeploymentConfig(num_cpus=0.25),
        embedding=EmbeddingServiceConfig(
            analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu")),
            num_cpus=0.5,
            max_batch_size=8,
            batch_wait_timeout_s=0.05,
        ),
        embedding_deployment_name="FaceAnalysisApiTest",
    )


@contextmanager
def running_api(
    name: str, args: ApiAppArgs, home: Path, serve_http_port: int, label: str
) -> Iterator[tuple[str, dict[str, Key], KeyStore]]:
    """Deploy the API app ``name`` at ``/`` with one key per role (``label`` in their notes),
    wait for /healthz, and delete the app afterwards. Yields (url, keys by role, key store)."""
    from ray import serve

    from serve.app import build_app

    ks = KeyStore(home / "keys.sqlite", load_master_key(home, create=True))
    keys = {}
    for role in Role:
        new = ks.create(role, f"{label} {role.value}")
        keys[role.value] = Key(new.access_key_id, new.secret_access_key)
    serve.run(build_app(args), name=name, route_prefix="/")
    url = f"http://127.0.0.1:{serve_http_port}"
    deadline = time.monotonic() + scaled(300)
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    try:
        yield url, keys, ks
    finally:
        serve.delete(name)


@pytest.fixture(scope="package")
def api(serve_http_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("api-home")
    with running_api(API_APP, app_args(home), home, serve_http_port, "tests/api") as (url, keys, ks):
        yield Api(url=url, home=home, keys=keys, keystore=ks)
