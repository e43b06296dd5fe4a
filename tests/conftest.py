"""Shared fixtures: a real Milvus standalone server for server-mode tests."""

from __future__ import annotations

import os
import shutil
import tempfile

# Before anything imports Ray: keep every Ray this test session starts on loopback
# (see facestream/localray.py).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

# No test writes to the user's state home (~/.local/share/facestream): every test, every
# subprocess and every Ray worker started by this session defaults to a temporary one
# (tests that need their own home set FACESTREAM_HOME or pass ``home`` themselves).
os.environ["FACESTREAM_TEST_STATE"] = tempfile.mkdtemp(prefix="facestream-test-home-")
os.environ["FACESTREAM_HOME"] = os.path.join(os.environ["FACESTREAM_TEST_STATE"], "home")
os.environ["XDG_DATA_HOME"] = os.path.join(os.environ["FACESTREAM_TEST_STATE"], "xdg-data")

import atexit
from collections.abc import Iterator

import pytest

from facestream.store.embedded_server import EmbeddedMilvusServer

atexit.register(shutil.rmtree, os.environ["FACESTREAM_TEST_STATE"], True)

# Local Ray + Serve fixtures (ray_local, serve_http_port).
pytest_plugins = ["tests.ray_fixtures"]


@pytest.fixture(autouse=True)
def _profile_env_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without FACESTREAM_PROFILE and leaves none behind.

    The CLI's ``--profile`` sets it for its whole process (so its Ray workers see it too); an
    in-process CLI test would otherwise leak public-safety into every later test and into the
    environment of any Ray cluster started after it.
    """
    monkeypatch.setenv("FACESTREAM_PROFILE", "general")  # records the original for the undo
    monkeypatch.delenv("FACESTREAM_PROFILE")


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMilvusServer]:
    """An embedded Milvus 2.3.5 started for this test session (only when a test asks).

    Its data lives in a session tmp dir; the process is stopped by its PID at session end.
    """
    server = EmbeddedMilvusServer(tmp_path_factory.mktemp("milvus-server"), start_timeout_s=180)
    server.start()
    pid = server.pid
    try:
        yield server
    finally:
        server.stop()
        if pid is not None:
            # Reaped by stop(); a leftover would mean something else reused our server.
            assert not os.path.exists(f"/proc/{pid}") or _is_zombie_or_other(pid)


@pytest.fixture(scope="session")
def milvus_server_uri(milvus_server: EmbeddedMilvusServer) -> str:
    """``http://127.0.0.1:PORT`` of :func:`milvus_server`."""
    return milvus_server.uri


def _is_zombie_or_other(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"milvus" not in f.read()
    except OSError:
        return True
