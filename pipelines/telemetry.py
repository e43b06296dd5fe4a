"""Stream metrics through :mod:`facestream.metrics` (names and labels are defined there).

Metrics must never break a stream: a failing metrics backend is logged once and ignored.
Label values are processor names, sink kinds and drop reasons only, never URLs or face ids.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
_broken: set[str] = set()


def _call(fn_name: str, metric: str, *args: Any, **labels: str) -> None:
    if metric in _broken:
        return
    try:
        from facestream import metrics

        getattr(metrics, fn_name)(metric, *args, **labels)
    except Exception as exc:  # any backend failure: keep streaming, say so once
        _broken.add(metric)
        log.warning("metric %s disabled: %s: %s", metric, type(exc).__name__, exc)


def inc(metric: str, value: float = 1.0, **labels: str) -> None:
    if value:
        _call("inc", metric, value, **labels)


def gauge(metric: str, value: float, **labels: str) -> None:
    _call("set_gauge", metric, value, **labels)


def observe(metric: str, value: float, **labels: str) -> None:
    _call("observe", metric, value, **labels)
