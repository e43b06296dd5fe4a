"""Load shedding (admission control, per replica): a bounded number of requests in flight, a
bounded queue, a bounded wait."""

import asyncio

from facestream.errors import FacestreamError


class Throttled(FacestreamError):
    """Load shedding: the replica's wait queue is full."""

    code = "ThrottlingException"
    http_status = 429


class Overloaded(FacestreamError):
    """Load shedding: no request slot freed up within the queue wait limit."""

    code = "ServiceUnavailableException"
    http_status = 503


class Admission:
    """A bounded number of requests in flight, a bounded queue, a bounded wait (one event loop).

    ``acquire`` returns None once the caller holds a slot (it must call ``release``), or the
    refusal to answer with.
    """

    def __init__(self, max_in_flight: int, max_queued: int, wait_s: float) -> None:
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.wait_s = wait_s
        self.in_flight = 0
        self.queued = 0
        #: requests refused so far, and when that was last logged (monotonic s)
        self.shed = 0
        self.last_log = -1e9
        self._sem: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # Made on first use, inside the replica's event loop.
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_in_flight)
        return self._sem

    async def acquire(self) -> FacestreamError | None:
        sem = self._semaphore()
        if not sem.locked():
            await sem.acquire()
            self.in_flight += 1
            return None
        if self.queued >= self.max_queued:
            return Throttled(
                f"too many requests: {self.in_flight} in progress and {self.queued} waiting "
                f"(limits {self.max_in_flight} and {self.max_queued}); retry later"
            )
        self.queued += 1
        try:
            await asyncio.wait_for(sem.acquire(), self.wait_s)
        except TimeoutError:
            return Overloaded(
                f"server busy: no request slot within {self.wait_s:g} s "
                f"({self.max_in_flight} requests in progress); retry later"
            )
        finally:
            self.queued -= 1
        self.in_flight += 1
        return None

    def release(self) -> None:
        self.in_flight -= 1
        self._semaphore().release()
