"""Sink fault: the webhook endpoint is down for a minute, then back.

Real pieces: the durable SQLite spool, the deliverer with its capped backoff, the webhook
sink (requests over HTTP), and a real HTTP receiver on 127.0.0.1 that counts every
``Idempotency-Key`` it accepts. While the receiver is down, records keep arriving and the
processor's delivery loop is even restarted (a new Spool/Deliverer on the same file, as
after a processor restart). When it is back, every event arrives exactly once by
``(EventId, Revision)``: nothing lost, no duplicates.

``FACESTREAM_FAULT_WEBHOOK_DOWN_S`` sets the outage: default a full minute (CI runs that).
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import DeliveryConfig, WebhookSinkConfig
from pipelines.sinks import Deliverer, Spool, WebhookSink
from tests.helpers import scaled, wait_for

pytestmark = pytest.mark.slow

DOWN_S = float(os.environ.get("FACESTREAM_FAULT_WEBHOOK_DOWN_S", "60"))


class Receiver:
    """A webhook endpoint on 127.0.0.1: counts accepted keys; can be stopped and restarted."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("Idempotency-Key", "")
                rec = json.loads(body)
                assert key == f"{rec['EventId']}:{rec['Revision']}"
                outer.keys[key] += 1
                outer.bodies[key] = rec
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _record(i: int, rev: int = 1) -> dict[str, Any]:
    return {"EventId": f"evt-{i:04d}", "Revision": rev, "TrackId": f"t{i}", "n": i}


def test_webhook_down_then_back_every_event_exactly_once(tmp_path: Path) -> None:
    rx = Receiver()
    rx.start()
    url = f"http://127.0.0.1:{rx.port}/hook"
    delivery = DeliveryConfig(initial_backoff_s=0.2, max_backoff_s=5.0, drain_timeout_s=1.0)
    spool_path = tmp_path / "spool.sqlite3"

    def start_deliverer() -> tuple[Spool, Deliverer, threading.Event, threading.Thread]:
        spool = Spool(spool_path)
        d = Deliverer(spool, [WebhookSink(WebhookSinkConfig(url=url, timeout_s=10.0))], delivery, "wh")
        stop = threading.Event()
        t = threading.Thread(target=d.run, args=(stop,), daemon=True)
        t.start()
        return spool, d, stop, t

    spool, d, stop, t = start_deliverer()
    expected: set[str] = set()

    def put(rec: dict[str, Any]) -> None:
        spool.put(d.names, rec)
        d.notify()
        expected.add(f"{rec['EventId']}:{rec['Revision']}")

    try:
        for i in range(20):  # before the outage: delivered at once
            put(_record(i))
        _wait(lambda: len(rx.keys) == 20, 20, "the first 20 events")

        rx.stop()  # the endpoint goes down
        t_down = time.monotonic()
        i = 20
        restarted = False
        while time.monotonic() - t_down < DOWN_S:
            put(_record(i))
            if i % 7 == 0:
                put(_record(i - 1, rev=2))  # an update of a pending event: supersedes it
                expected.discard(f"evt-{i - 1:04d}:1")
            i += 1
            if not restarted and time.monotonic() - t_down > DOWN_S / 2:
                # The processor restarts mid-outage: its spool file is all that survives.
                stop.set()
                t.join(10)
                d.close()
                spool.close()
                spool, d, stop, t = start_deliverer()
                restarted = True
            time.sleep(0.25)
        pending = spool.count()
        assert pending >= i - 20 - 1, (pending, i)  # everything since the outage waits
        assert d.last_error, "the deliverer must report the sink as failing"

        rx.start()  # back, on the same port
        t_back = time.monotonic()
        _wait(lambda: spool.count() == 0, 60, "the spool to drain")
        recovery_s = time.monotonic() - t_back
    finally:
        stop.set()
        t.join(10)
        d.close()
        spool.close()
        rx.stop()

    dup = {k: n for k, n in rx.keys.items() if n > 1}
    assert not dup, f"duplicates: {dup}"
    # Every event's newest revision arrived; superseded, never-sent revisions need not.
    newest = {k.rsplit(":", 1)[0] for k in expected}
    got_newest: dict[str, int] = {}
    for k in rx.keys:
        eid, rev = k.rsplit(":", 1)
        got_newest[eid] = max(got_newest.get(eid, 0), int(rev))
    assert set(got_newest) == newest, newest ^ set(got_newest)
    assert expected <= set(rx.keys), expected - set(rx.keys)
    assert recovery_s < scaled(15.0), recovery_s  # backoff is capped at 5 s
    print(
        f"webhook outage {DOWN_S:.0f}s: {len(newest)} events, {len(rx.keys)} deliveries, 0 lost, 0 dup, "
        f"drained {recovery_s:.1f}s after recovery"
    )


def _wait(pred: Any, timeout_s: float, what: str) -> Any:
    return wait_for(pred, timeout_s, what, interval_s=0.1)


def test_webhook_redirects_are_not_followed() -> None:
    """An allowed host answering 307 to another host must not get the record sent there
    (that would bypass the webhook host allowlist): the delivery fails and is retried later."""
    from pipelines.sinks import SinkUnavailable

    target = Receiver()
    target.start()

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{target.port}/elsewhere")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sink = WebhookSink(WebhookSinkConfig(url=f"http://127.0.0.1:{server.server_address[1]}/hook"))
    try:
        with pytest.raises(SinkUnavailable, match="redirect"):
            sink.deliver([_record(1)])
    finally:
        sink.close()
        server.shutdown()
        server.server_close()
        target.stop()
    assert not target.keys


def test_a_failure_mid_batch_does_not_resend_what_was_accepted(tmp_path: Path) -> None:
    """The receiver accepts 3 records, then answers 503: the 3 are acked, the retry sends the
    rest only (per-record progress, not all-or-nothing per batch)."""
    rx = Receiver()
    rx.start()
    calls = {"n": 0}
    lock = threading.Lock()

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                calls["n"] += 1
                fail = calls["n"] == 4
            if fail:
                self.send_response(503)
                self.end_headers()
                return
            rx.keys[self.headers["Idempotency-Key"]] += 1
            rx.bodies[self.headers["Idempotency-Key"]] = json.loads(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    spool = Spool(tmp_path / "spool.sqlite3")
    sink = WebhookSink(WebhookSinkConfig(url=f"http://127.0.0.1:{server.server_address[1]}/hook"))
    d = Deliverer(spool, [sink], DeliveryConfig(initial_backoff_s=0.01, max_backoff_s=0.02), "flaky")
    try:
        for i in range(8):
            spool.put(d.names, _record(i))
        d.step()  # 3 accepted, the 4th refused
        assert spool.count() == 5 and d.delivered[sink.name] == 3
        time.sleep(0.05)
        d.step()
        assert spool.count() == 0
    finally:
        d.close()
        spool.close()
        server.shutdown()
        server.server_close()
        rx.stop()
    assert sorted(rx.keys) == [f"evt-{i:04d}:1" for i in range(8)]
    assert set(rx.keys.values()) == {1}
