"""The stream worker's decode/submit queue on its own (real threads, no Ray)."""

from __future__ import annotations

import threading
import time

import numpy as np

from pipelines.tracker import FrameInfo
from pipelines.worker_decode import ENDED, InferenceQueue, Pending


def _pending(t: float) -> Pending:
    info = FrameInfo(offset_s=t, producer_ts=t, server_ts=t, session=0, monotonic=t)
    return Pending(info, response=None, rgb=np.zeros((2, 2, 3), np.uint8))


def test_queue_bounds_frames_in_flight_and_answers_in_order_then_ends() -> None:
    q = InferenceQueue(max_in_flight=2)
    stop = threading.Event()
    assert q.acquire(block=False, stop=stop) and q.acquire(block=False, stop=stop)
    assert not q.acquire(block=False, stop=stop)  # a live frame beyond max_in_flight: dropped
    q.push(_pending(0.0))
    q.push(_pending(0.2))
    assert len(q) == 2
    first, second = q.take(), q.take()
    assert isinstance(first, Pending) and isinstance(second, Pending)
    assert (first.frame.offset_s, second.frame.offset_s) == (0.0, 0.2)
    t0 = time.monotonic()
    assert q.take(wait_s=0.05) is None  # idle, source still open
    assert time.monotonic() - t0 < 2.0
    q.release()
    assert q.acquire(block=False, stop=stop)  # a slot freed by an answer taken
    q.push(_pending(0.4))
    q.end()
    last = q.take()
    assert isinstance(last, Pending) and last.frame.offset_s == 0.4  # what was in flight first
    assert q.take() is ENDED


def test_blocking_acquire_waits_for_a_slot_and_gives_up_on_stop() -> None:
    q = InferenceQueue(max_in_flight=1)
    stop = threading.Event()
    assert q.acquire(block=True, stop=stop)
    threading.Timer(0.2, q.release).start()
    assert q.acquire(block=True, stop=stop)  # a file replay waits for the slot
    threading.Timer(0.2, stop.set).start()
    assert not q.acquire(block=True, stop=stop)  # ... until the processor stops
