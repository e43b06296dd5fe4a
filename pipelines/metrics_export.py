"""Does this process's metrics reach Prometheus? Checked, not assumed.

Inside Ray, a worker process's metrics leave it through its node's metrics agent. Ray 2.60's
core worker waits for that agent when the process starts (30 health checks, one a second) and,
if the agent does not answer in time (a slow or loaded node starting up, an agent restarting),
gives up exporting *for the life of the process*: every metric recorded there is silently lost,
while the process works normally. A stream actor placed in such a process runs for days with
empty dashboards (the failure that issue 20 found in a test run on a slow machine).

:class:`ExportCheck` reads the node's Prometheus endpoint (what Prometheus itself scrapes) for a
series that only this process writes, e.g. ``ray_facestream_stream_status{stream="cam-1"}``:
``OK`` once it is there, ``FAILING`` if it is still missing after a grace period long enough for
Ray's exporter start (30 s) and a few report intervals. What to do then is the caller's choice
(a stream actor restarts itself once in a fresh process, see :mod:`pipelines.worker`).
"""

from __future__ import annotations

import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger(__name__)

#: Ray prefixes every application metric's name with this when exporting it.
RAY_PREFIX = "ray_"
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ExportState(StrEnum):
    PENDING = "PENDING"  # not seen yet, still within the grace period
    OK = "OK"  # seen on the node's endpoint
    FAILING = "FAILING"  # not seen within the grace period: this process's metrics are lost
    UNKNOWN = "UNKNOWN"  # nothing to check against (not in Ray, no metrics endpoint)


def series_present(exposition: str, name: str, labels: Mapping[str, str]) -> bool:
    """Whether Prometheus text ``exposition`` has a sample of ``name`` carrying all ``labels``."""
    prefix = name + "{"
    for line in exposition.splitlines():
        if not line.startswith(prefix):
            continue
        end = line.rfind("}")
        found = dict(_LABEL.findall(line[len(prefix) : end]))
        if all(found.get(k) == v for k, v in labels.items()):
            return True
    return False


def node_metrics_url() -> str | None:
    """The Prometheus endpoint of the Ray node this process runs on, or None outside Ray."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        node = ray._private.worker.global_worker.node
        port = int(node.metrics_export_port)
        ip = str(node.node_ip_address)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    if port <= 0:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/metrics"


def fetch_text(url: str, timeout_s: float) -> str:
    # The URL is the node's own metrics endpoint, built from Ray's node record, never user input.
    with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310
        return str(r.read().decode("utf-8", "replace"))


@dataclass
class ExportCheck:
    """Watches one series of this process on the node's endpoint (see the module docstring).

    ``metric`` is our name (``facestream_stream_status``); the exported name gets Ray's prefix.
    """

    metric: str
    labels: dict[str, str]
    grace_s: float
    url: str | None
    fetch: Callable[[str, float], str] = fetch_text
    timeout_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    state: ExportState = ExportState.PENDING
    last_error: str = ""

    def __post_init__(self) -> None:
        if self.grace_s <= 0:
            raise ValueError(f"grace_s must be > 0, got {self.grace_s}")
        if self.started < 0:
            self.started = self.clock()
        if self.url is None:
            self.state = ExportState.UNKNOWN

    def poll(self) -> ExportState:
        """One look at the endpoint; returns the (possibly new) state. Final states stay."""
        if self.state is not ExportState.PENDING or self.url is None:
            return self.state
        try:
            text = self.fetch(self.url, self.timeout_s)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # The agent not answering counts as "not seen": it is the same loss for the dashboards.
            self.last_error = f"{type(exc).__name__}: {exc}"
        else:
            if series_present(text, RAY_PREFIX + self.metric, self.labels):
                self.state = ExportState.OK
                return self.state
            self.last_error = f"{RAY_PREFIX}{self.metric}{self.labels} not on {self.url}"
        if self.clock() - self.started > self.grace_s:
            self.state = ExportState.FAILING
        return self.state
