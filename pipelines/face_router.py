"""Stream-affine routing for the face deployment (a Ray Serve ``RequestRouter``).

The per-stream fast detector (``models/fastdetect.py``: motion gate, refinement between full
detections, hysteresis) keeps its state in the replica that saw the stream's last frame. Serve's
default router (power of two choices) spreads one stream's frames over every replica, so with N
replicas each one sees ~1/N of a stream and the fast path collapses toward full detection exactly
when autoscaling adds replicas. This router sends every frame of a stream to one *home* replica:

* **Rendezvous (highest-random-weight) hashing** of the stream key over the replica ids: each
  router, in every stream actor and API replica, computes the same home from the same replica
  set without talking to the others. When a replica is added or removed only the streams whose
  highest weight moves change home: ~1/N of them (with the two choices below, at most the
  streams whose two choices include that replica, ~2/N). A moved stream starts with a full detection
  (state older than ``state_ttl_s`` is dropped by the detector; no hand-off needed).
* **Two choices**: a stream's home is the one of its first two replicas in hash order that
  reports fewer active streams (``record_routing_stats`` of the deployment: streams seen in the
  last 10 s, refreshed every ``request_routing_stats_period_s``). Hashing alone puts 3 streams
  on one of 3 replicas one time in 9; two choices keep the spread even while a stream still has
  only two possible homes (so a scale change still moves few streams).
* **Bounded load**: the chosen home is passed over for the stream's next replica in its hash order
  while its known queue is longer than ``load_factor`` x the mean queue of the replicas (plus
  one) and longer than ``min_queue``: a hot replica sheds streams to their second choice
  instead of queueing them. Serve's own ``max_ongoing_requests`` is the hard bound on top (a
  full replica refuses; the next rank is tried).
* **Sticky**: a router keeps the replica it chose for a stream until the replica set changes,
  that replica goes over twice the bound (hysteresis), or ``rehome_s`` (jittered 0.5-1.5x)
  passes (a new stream: after ``settle_s``, once the counts include streams that started with
  it); then the two-choices rule runs again (a move only when it evens the pair out). A
  stream that had to spill therefore moves once and stays, instead of alternating between two
  replicas (which would cost both the fast path).
* **Stills** (no stream key: IndexFaces, search by image, gallery jobs) keep load-balanced
  routing: two random replicas, the shorter queue wins (Serve's default policy).

The stream key is the ``stream_key`` keyword of ``analyze`` / ``detect`` (what stream workers
send). Why this and not Serve's model multiplexing with the key as model id: multiplexing only
learns where a key lives from replicas' reports to the controller, so a new stream's first
frames spread before the report arrives, and it never moves a stream to a new replica (an added
replica gets only new streams). Measured in ``pipelines/README.md`` (stream affinity).
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import OrderedDict
from typing import Any

from ray.serve._private.common import RequestMetadata
from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica

#: methods whose ``stream_key`` keyword names the video stream of the frame
KEYED_METHODS = frozenset({"analyze", "detect"})


def stream_key_of(request: PendingRequest | None) -> str | None:
    """The request's stream key, or None for stills and other methods."""
    if request is None or request.metadata.call_method not in KEYED_METHODS:
        return None
    key = request.kwargs.get("stream_key")
    if key is None and len(request.args) > 1:
        key = request.args[1]
    return key if isinstance(key, str) and key else None


def _weight(key: str, replica: str) -> int:
    # blake2b, not hash(): the same weights in every process (hash() is salted per process).
    digest = hashlib.blake2b(f"{key}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_order(key: str, replica_ids: list[str]) -> list[str]:
    """``replica_ids`` in the key's preference order (highest random weight first)."""
    return sorted(replica_ids, key=lambda r: _weight(key, r), reverse=True)


def bounded_choice(
    order: list[str], queue_lens: dict[str, int], *, load_factor: float, min_queue: int
) -> str:
    """The first replica of ``order`` whose queue is within the bound (the least loaded one if
    none is). Bound: ``max(min_queue, ceil(load_factor * (total + 1) / n))`` requests, the
    consistent-hashing-with-bounded-loads rule with queue lengths as the load (unknown: 0)."""
    if not order:
        raise ValueError("no replicas to choose from")
    loads = [queue_lens.get(r, 0) for r in order]
    bound = max(min_queue, math.ceil(load_factor * (sum(loads) + 1) / len(order)))
    for r, load in zip(order, loads, strict=True):
        if load < bound:
            return r
    return min(zip(order, loads, strict=True), key=lambda rl: rl[1])[0]


def two_choice(order: list[str], active_streams: dict[str, int], current: str | None) -> str:
    """Of the stream's first two replicas in hash order, the one with fewer active streams
    (``active_streams``: what each replica reports; this stream is not counted on ``current``,
    where it runs now). Ties keep ``current``, else the hash home: a stream moves only when that
    makes the two replicas more even."""
    cands = order[:2]

    def others(r: str) -> int:
        return active_streams.get(r, 0) - (1 if r == current else 0)

    return min(cands, key=lambda r: (others(r), r != current, cands.index(r)))


class StreamAffinityRouter(RequestRouter):
    """See the module docstring. Configured through the deployment's ``request_router_config``
    (``request_router_kwargs``: ``load_factor``, ``min_queue``)."""

    load_factor: float = 1.5
    min_queue: int = 8
    rehome_s: float = 30.0
    #: first reconsideration of a new stream (``rehome_s`` / 5 unless given): a few periods of
    #: the replicas' routing stats
    settle_s: float = 6.0
    #: streams remembered per router (least recently routed forgotten first)
    max_streams: int = 4096

    def initialize_state(self, **kwargs: Any) -> None:
        self.load_factor = float(kwargs.get("load_factor", self.load_factor))
        self.min_queue = int(kwargs.get("min_queue", self.min_queue))
        self.rehome_s = float(kwargs.get("rehome_s", self.rehome_s))
        self.settle_s = float(kwargs.get("settle_s", self.rehome_s / 5))

    def _fulfill_next_pending_request(
        self, replica: RunningReplica, request_metadata: RequestMetadata | None = None
    ) -> None:
        """Give ``replica`` to the request it was chosen for: the pending request whose metadata
        *is* ``request_metadata`` (the routing task passes its own request's object).

        Serve's base class finds that request by ``internal_request_id``, but every handle call
        made while serving one HTTP request inherits that request's id: CompareFaces' two
        ``analyze`` calls from the API replica share one id, the base index keeps only one of
        them, and the other's routing task looped forever (the request hung until the client
        timeout). Serve's default router escapes this through its FIFO mixin, which would hand
        a stream's home replica to whichever request is oldest; matching by identity keeps each
        frame on the replica chosen for it.
        """
        if request_metadata is not None:
            for pr in self._pending_requests_to_fulfill:
                if pr.metadata is request_metadata and not pr.future.done():
                    self._cancel_routing_task_for_pending_request(pr)
                    self._record_queue_wait_time(pr)
                    pr.future.set_result(replica)
                    if self._pending_requests_by_id.get(request_metadata.internal_request_id) is pr:
                        self._remove_pending_request_from_indices(pr)
                    return
        super()._fulfill_next_pending_request(replica, request_metadata)

    def _sticky(self) -> OrderedDict[str, tuple[str, frozenset[str], float]]:
        # key -> (replica id, replica set it was chosen in, monotonic time to reconsider). Created on
        # first use: initialize_state is not called when no kwargs are configured.
        table: OrderedDict[str, tuple[str, frozenset[str], float]] | None = getattr(self, "_assigned", None)
        if table is None:
            table = OrderedDict()
            self._assigned = table
        return table

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        if pending_request is not None:
            # Tell Serve's retry loop to back off when every rank refused (it spins otherwise).
            pending_request.routing_context.should_backoff = True
        key = stream_key_of(pending_request)
        if key is None:
            n = len(candidate_replicas)
            return [random.sample(candidate_replicas, min(2, n))]
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        order = rendezvous_order(key, list(by_id))
        cache = self.replica_queue_len_cache
        queue_lens = {}
        for rid, replica in by_id.items():
            q = cache.get(replica.replica_id)
            if q is not None:
                queue_lens[rid] = q
        active = {rid: int(r.routing_stats.get("active_streams", 0) or 0) for rid, r in by_id.items()}
        first = self._assign(key, order, queue_lens, active)
        # One replica per rank: Serve tries the first, and only when it refuses (its queue is at
        # max_ongoing_requests) the next in the stream's own order.
        return [[by_id[first]]] + [[by_id[r]] for r in order if r != first]

    def _assign(self, key: str, order: list[str], queue_lens: dict[str, int], active: dict[str, int]) -> str:
        table = self._sticky()
        replicas = frozenset(order)
        now = time.monotonic()
        loads = [queue_lens.get(r, 0) for r in order]
        bound = max(self.min_queue, math.ceil(self.load_factor * (sum(loads) + 1) / len(order)))
        held = table.get(key)
        if (
            held is not None
            and held[1] == replicas
            and now < held[2]
            and queue_lens.get(held[0], 0) < 2 * bound
        ):
            table.move_to_end(key)
            return held[0]
        current = held[0] if held is not None and held[0] in replicas else None
        pick = two_choice(order, active, current)
        chosen = bounded_choice(
            [pick, *(r for r in order if r != pick)],
            queue_lens,
            load_factor=self.load_factor,
            min_queue=self.min_queue,
        )
        # Jittered, so streams that started together do not all reconsider at the same moment. A
        # stream new to this router reconsiders soon: when several start at once, the replicas'
        # active-stream counts it was placed by did not include each other yet.
        wait_s = self.settle_s if held is None else self.rehome_s
        table[key] = (chosen, replicas, now + wait_s * random.uniform(0.5, 1.5))
        table.move_to_end(key)
        while len(table) > self.max_streams:
            table.popitem(last=False)
        return chosen


__all__ = ["StreamAffinityRouter", "bounded_choice", "rendezvous_order", "stream_key_of", "two_choice"]
