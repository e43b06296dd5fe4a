"""One running facestream API for the hostile-input, security and load-shedding tests.

The same application as tests/api (real Ray Serve, the batched analysis deployment, Milvus
Lite behind the store actor, keys in sqlite), with small load-shedding limits so that 32+
concurrent clients are far beyond capacity, and one extra allowed webhook host.
Package-scoped: deleted when tests/security is done.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serve.config import ApiAppArgs, ApiLimits
from tests.api.conftest import Api, app_args, running_api

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
    home = tmp_path_factory.mktemp("security-home")
    with running_api(APP, security_args(home), home, serve_http_port, "tests/security") as (url, keys, ks):
        yield Api(url=url, home=home, keys=keys, keystore=ks)
