"""Schemathesis against the running API's own OpenAPI schema, bounded in time: zero 5xx.

Every operation (JSON and multipart variants) gets generated bodies that are valid by the
schema and, through Hypothesis, many that are not; the server must answer each with a
non-5xx status and, for errors, a JSON body with a code and a message.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from serve.service import OPERATIONS
from serve.streams import stream_operations
from tests.api.conftest import PURPOSE, Api

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 40
BUDGET_S = 150.0


def _all_operations() -> list[Any]:
    ops = [*OPERATIONS, *stream_operations()]
    try:  # human review of matches and the operator console, when installed
        from serve.console import console_operations
        from serve.review import review_operations
    except ImportError:
        return ops
    return ops + review_operations() + console_operations()


#: a role allowed to call each operation (viewer when it may; 403s are tested in tests/security)
ROLE_FOR = {
    op.name: "viewer" if "viewer" in {r.value for r in op.roles} else sorted(r.value for r in op.roles)[0]
    for op in _all_operations()
}
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "api_fuzz.json"


def test_openapi_fuzz_no_server_errors(api: Api) -> None:
    admin = api.keys["admin"].bearer
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json", headers=admin, timeout=60)
    session = requests.Session()
    stats: dict[str, Any] = {"cases": 0, "5xx": 0, "by_status": {}}
    failures: list[str] = []
    started = time.monotonic()
    operations = [r.ok() for r in schema.get_all_operations()]
    # 22 face/key/audit operations + 8 stream-processor/event operations + 5 upload forms
    assert len(operations) >= 35, [o.label for o in operations]
    for op in operations:
        # Each operation is called with a role allowed to call it (403s are tested elsewhere).
        role = ROLE_FOR[op.path.split("/")[2]]
        headers = {**api.keys[role].bearer, "X-Facestream-Purpose": PURPOSE + " fuzz"}
        _fuzz_one(api.url, session, op, headers, BUDGET_S / len(operations), stats, failures)
    stats["seconds"] = round(time.monotonic() - started, 1)
    stats["operations"] = len(operations)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    assert stats["cases"] >= len(operations) * 3, stats
    assert not failures, failures[:10]


def _fuzz_one(
    url: str,
    session: requests.Session,
    op: Any,
    headers: dict[str, str],
    budget_s: float,
    stats: dict[str, Any],
    failures: list[str],
) -> None:
    op_start = time.monotonic()

    @given(case=op.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def run(case: schemathesis.Case) -> None:
        if time.monotonic() - op_start > budget_s:
            return
        resp = case.call(base_url=url, session=session, headers=headers, timeout=120)
        stats["cases"] += 1
        key = str(resp.status_code)
        stats["by_status"][key] = stats["by_status"].get(key, 0) + 1
        if resp.status_code >= 500:
            stats["5xx"] += 1
            failures.append(f"{op.label}: {resp.status_code} {resp.text[:300]}")
        assert "Traceback" not in resp.text
        if resp.status_code >= 400:
            body = resp.json()
            assert body["error"]["code"] and body["error"]["message"], body

    run()
