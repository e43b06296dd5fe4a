"""The metrics-export check: a series of this process on the node's endpoint, or a verdict.

Served by a real HTTP server on 127.0.0.1 with the text Ray's metrics agent exports; the clock
is the check's own (injected) so the grace period needs no waiting.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from pipelines.metrics_export import ExportCheck, ExportState, series_present

EXPOSITION = """\
# HELP ray_facestream_stream_status 1 for the stream's current status, 0 otherwise
# TYPE ray_facestream_stream_status gauge
ray_facestream_stream_status{Component="core_worker",NodeAddress="127.0.0.1",SessionName="s",\
status="RUNNING",stream="cam-1"} 1.0
ray_facestream_stream_status{Component="core_worker",status="STOPPED",stream="cam-\\"2\\""} 0.0
ray_facestream_stream_status_extra{stream="cam-9"} 1.0
"""


@pytest.mark.parametrize(
    ("name", "labels", "present"),
    [
        ("ray_facestream_stream_status", {"stream": "cam-1"}, True),
        ("ray_facestream_stream_status", {"stream": "cam-1", "status": "RUNNING"}, True),
        ("ray_facestream_stream_status", {"stream": "cam-1", "status": "FAILED"}, False),
        ("ray_facestream_stream_status", {"stream": 'cam-\\"2\\"'}, True),
        ("ray_facestream_stream_status", {"stream": "cam-9"}, False),  # another metric's prefix
        ("ray_facestream_stream_status", {"stream": "cam"}, False),
        ("facestream_stream_status", {"stream": "cam-1"}, False),  # without Ray's prefix
    ],
)
def test_series_present(name: str, labels: dict[str, str], present: bool) -> None:
    assert series_present(EXPOSITION, name, labels) is present


class _Endpoint:
    """/metrics on 127.0.0.1 answering whatever ``body`` holds (None: 503)."""

    def __init__(self) -> None:
        self.body: str | None = ""
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.body is None:
                    self.send_response(503)
                    self.end_headers()
                    return
                data = outer.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def endpoint() -> Iterator[_Endpoint]:
    e = _Endpoint()
    try:
        yield e
    finally:
        e.close()


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _check(url: str | None, clock: _Clock) -> ExportCheck:
    return ExportCheck(
        metric="facestream_stream_status", labels={"stream": "cam-1"}, grace_s=60.0, url=url, clock=clock
    )


def test_seen_within_grace_is_ok(endpoint: _Endpoint) -> None:
    clock = _Clock()
    check = _check(endpoint.url, clock)
    assert check.poll() is ExportState.PENDING
    clock.t += 30
    endpoint.body = EXPOSITION
    assert check.poll() is ExportState.OK
    endpoint.body = ""  # final: a later gap in the scrape does not undo it
    clock.t += 600
    assert check.poll() is ExportState.OK


def test_never_seen_is_failing_after_grace(endpoint: _Endpoint) -> None:
    clock = _Clock()
    endpoint.body = EXPOSITION.replace('stream="cam-1"', 'stream="other"')
    check = _check(endpoint.url, clock)
    clock.t += 59
    assert check.poll() is ExportState.PENDING
    clock.t += 2
    assert check.poll() is ExportState.FAILING
    assert "not on" in check.last_error
    endpoint.body = EXPOSITION
    assert check.poll() is ExportState.FAILING  # the verdict stands: the caller acts on it


def test_an_endpoint_that_does_not_answer_counts_as_not_seen(endpoint: _Endpoint) -> None:
    clock = _Clock()
    endpoint.body = None
    check = _check(endpoint.url, clock)
    assert check.poll() is ExportState.PENDING
    assert "HTTPError" in check.last_error
    clock.t += 61
    assert check.poll() is ExportState.FAILING


def test_outside_ray_there_is_nothing_to_check() -> None:
    assert _check(None, _Clock()).poll() is ExportState.UNKNOWN


def test_grace_must_be_positive() -> None:
    with pytest.raises(ValueError, match="grace_s"):
        ExportCheck(metric="m", labels={}, grace_s=0.0, url=None)
