"""A stream processor's status: what it is doing now, its recent history, and whether its
metrics reach Prometheus (a process whose metrics never do restarts itself once)."""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable

from pipelines.metrics_export import ExportCheck, ExportState, node_metrics_url
from pipelines.source import StreamStatus
from pipelines.telemetry import gauge

log = logging.getLogger(__name__)

_HISTORY = 200
_EXPORT_POLL_S = 5.0
EXIT_RESTART = 75  # EX_TEMPFAIL: "try again", for Ray's actor restart


class StatusBoard:
    """The current status with its message, and the last few hundred changes (thread-safe)."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.extra = {"stream_id": stream}
        self._status = StreamStatus.STOPPED
        self._message = "created"
        self._history: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=_HISTORY)
        self._lock = threading.Lock()

    def note(self, status: str, message: str) -> None:
        """A history line only (e.g. a restart, before the status itself changes)."""
        self._history.append((time.time(), status, message))

    def set(self, status: StreamStatus, message: str) -> None:
        with self._lock:
            if self._status in (StreamStatus.STOPPING,) and status == StreamStatus.RECONNECTING:
                return
            self._status, self._message = status, message
            self._history.append((time.time(), status.value, message))
        for st in StreamStatus:
            gauge("facestream_stream_status", float(st == status), stream=self.stream, status=st.value)
        level = (
            logging.WARNING if status in (StreamStatus.FAILED, StreamStatus.RECONNECTING) else logging.INFO
        )
        log.log(level, "stream %s: %s (%s)", self.stream, status.value, message, extra=self.extra)

    @property
    def current(self) -> StreamStatus:
        with self._lock:
            return self._status

    def snapshot(self) -> tuple[str, str, list[tuple[float, str, str]]]:
        """(status, message, history oldest first)."""
        with self._lock:
            return self._status.value, self._message, list(self._history)


def watch_metrics_export(
    stream: str,
    grace_s: float,
    *,
    done: threading.Event,
    restarted: bool,
    on_check: Callable[[ExportCheck], None],
) -> None:
    """Check that this process's metrics reach the node's Prometheus endpoint (see
    :mod:`pipelines.metrics_export`); if they do not, restart once in a fresh process."""
    extra = {"stream_id": stream}
    check = ExportCheck(
        metric="facestream_stream_status",
        labels={"stream": stream},
        grace_s=grace_s,
        url=node_metrics_url(),
    )
    on_check(check)
    while check.poll() is ExportState.PENDING:
        if done.wait(_EXPORT_POLL_S):
            return
    if check.state is not ExportState.FAILING:
        log.info("stream %s: metrics export %s", stream, check.state.value, extra=extra)
        return
    log.error(
        "stream %s: its metrics do not reach Prometheus (%s) %.0f s after start; %s",
        stream,
        check.last_error,
        grace_s,
        "already restarted once: left running without metrics"
        if restarted
        else "restarting the processor in a new process",
        extra=extra,
    )
    if restarted or done.is_set():
        return
    # Matches already found are safe in the durable spool, which the new process drains;
    # frames in flight are lost, and a person on screen becomes a new track there.
    # Ray restarts the actor (max_restarts=1 in spawn) in a new worker process, whose
    # exporter connects afresh; __init__ sees the reconstruction and starts again.
    os._exit(EXIT_RESTART)
