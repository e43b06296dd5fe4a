"""Every blocking step of opening a source is bounded: here the Kinesis Video session lookup.

The AWS SDK's defaults (60 s connect, 60 s read, several retries) would hold a processor's
reconnect for minutes. The lookup is pointed (boto3's per-service endpoint variable) at a
127.0.0.1 server that accepts connections and never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pipelines.config import KinesisVideoSource
from pipelines.urls import kinesis_hls_url
from tests.helpers import scaled


@pytest.fixture
def silent_server() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            held.append(conn)  # kept open, never answered

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        t.join(5)
        for c in held:
            c.close()
        sock.close()


def test_kinesis_lookup_that_never_answers_fails_within_its_bound(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS_VIDEO", silent_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTONLY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-only-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask any other address
    source = KinesisVideoSource(stream_name="cam-1", region="eu-west-1")
    t0 = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timeout|timed out"):
        kinesis_hls_url(source, timeout_s=1.0)
    # two attempts of one second each, plus backoff: far below botocore's default minutes
    assert time.monotonic() - t0 < scaled(10.0)
