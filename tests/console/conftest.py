"""The review console in a real headless Chromium (Debian's ``chromium`` driven by Playwright;
no browser is ever downloaded), against real servers.

- ``console_only``: a uvicorn server (127.0.0.1, free port, in a thread) serving just the
  console's routes, for the fast checks of headers, files and the sign-in page.
- ``capi``: the whole facestream Serve application on the session's local Ray (as tests/api),
  with one key per role and a second reviewer key.
- ``artifacts``: where screenshots go: ``FACESTREAM_ARTIFACTS`` (default ``tests/artifacts/``,
  git-ignored).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serve.keys import Role
from tests.api.conftest import Api, Key, app_args, running_api
from tests.helpers import REPO, scaled
from tests.ray_fixtures import free_port

CONSOLE_APP = "facestream-console-test"


def chromium_executable() -> str:
    """The system Chromium (``FACESTREAM_CHROMIUM`` overrides); CI must have it (scripts/setup.sh)."""
    path = (
        os.environ.get("FACESTREAM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if path is None:
        msg = "no chromium executable (apt-get install chromium, or set FACESTREAM_CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so a browser fixture can screenshot a failure."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture(scope="session")
def artifacts() -> Path:
    d = Path(os.environ.get("FACESTREAM_ARTIFACTS") or REPO / "tests" / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    exe = chromium_executable()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="package")
def console_only() -> Iterator[str]:
    """Only the console's static routes on a real HTTP server (no Ray, no API)."""
    import uvicorn
    from fastapi import FastAPI

    from serve.console import console_router

    app = FastAPI()
    app.include_router(console_router())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="console-only", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + scaled(30)
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class ConsoleApi(Api):
    """The running app plus a second reviewer key (two distinct reviewers confirm)."""

    reviewer2: Key | None = None


@pytest.fixture(scope="package")
def capi(serve_http_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleApi]:
    home = tmp_path_factory.mktemp("console-home")
    with running_api(CONSOLE_APP, app_args(home), home, serve_http_port, "tests/console") as (url, keys, ks):
        second = ks.create(Role.REVIEWER, "tests/console second reviewer")
        yield ConsoleApi(
            url=url,
            home=home,
            keys=keys,
            keystore=ks,
            reviewer2=Key(second.access_key_id, second.secret_access_key),
        )
