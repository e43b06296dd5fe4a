"""The load-shedding admission control of serve/http/admission.py, on its own (no Ray): fast."""

from __future__ import annotations

import asyncio

from serve.http import Admission, Overloaded, Throttled


def test_slots_queue_and_refusals() -> None:
    async def run() -> None:
        adm = Admission(max_in_flight=1, max_queued=1, wait_s=0.2)
        assert await adm.acquire() is None  # takes the one slot
        waiter = asyncio.create_task(adm.acquire())  # queued
        await asyncio.sleep(0.01)
        assert adm.queued == 1
        third = await adm.acquire()  # queue full: refused at once
        assert isinstance(third, Throttled) and third.http_status == 429
        assert isinstance(await waiter, Overloaded)  # no slot within 0.2 s: 503
        assert adm.queued == 0 and adm.in_flight == 1
        adm.release()
        assert adm.in_flight == 0
        # A queued request gets the slot as soon as it is released.
        assert await adm.acquire() is None
        waiter = asyncio.create_task(adm.acquire())
        await asyncio.sleep(0.01)
        adm.release()
        assert await waiter is None and adm.in_flight == 1
        adm.release()

    asyncio.run(run())
