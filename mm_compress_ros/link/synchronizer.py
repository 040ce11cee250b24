"""Approximate-time synchronizer with the semantics of message_filters' ApproximateTimeSynchronizer.

``message_filters`` is not installable from the registries this project builds with, so the encoder
node and ``bag encode`` share this small, pure-Python equivalent (no rclpy import; driven by
``add(index, stamp_ns, msg)`` calls, so it is unit-testable without ROS). Its defaults,
:data:`SYNC_QUEUE_SIZE` and :data:`SYNC_SLOP`, are the one place of the pairing defaults: encoder_node's
parameters (``sync_queue_size``, ``sync_slop``; config/encoder.yaml states the same values) and
``bag encode``'s ``--queue-size`` / ``--slop`` import them. Semantics, as in message_filters (Python):

* one queue per input, keyed by stamp (a message with a stamp already queued on that input
  replaces the queued one); when a queue holds more than ``queue_size`` messages, the one with the
  oldest stamp is evicted (counted in ``stats.evicted``);
* on every arrival, the new message is matched against the other inputs: per input, the queued
  messages whose stamps are within ``slop`` of the new stamp are candidates, closest first; the
  first combination (in that order) whose stamps span strictly less than ``slop`` is emitted,
  in input order, and its messages are removed from their queues (a message is used at most once;
  unmatched messages stay queued until matched or evicted);
* matching is greedy and immediate: a set is emitted as soon as the new message has partners;
  out-of-order arrivals are fine (queues are keyed by stamp, not by arrival).

Rates may differ (e.g. thermal at 9 Hz against RGB at 30 Hz): every slow-input message is paired
with the closest fast-input message within ``slop``; the fast-input messages in between are
evicted once ``queue_size`` is exceeded. Thread-safe; callbacks run inside ``add`` after the
internal lock is released; keep them short (the encoder node only hands the set to its worker).
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

SYNC_QUEUE_SIZE = 10   # messages kept per input
SYNC_SLOP = 0.05       # s: the largest stamp difference of a pair

@dataclass
class SyncStats:
    received: int = 0        # messages added, all inputs
    emitted: int = 0         # synchronized sets emitted
    evicted: int = 0         # messages evicted from a full queue without being matched
    replaced: int = 0        # messages replaced by a later one with the same stamp on that input


class ApproximateTimeSynchronizer:
    """Approximate-time policy over ``num_inputs`` inputs (see the module docstring).

    ``slop`` is in seconds (as in message_filters); ``callback(*msgs)`` receives one message per
    input, in input order. :meth:`add` also returns the emitted sets, so a caller may ignore the
    callback.
    """

    def __init__(self, num_inputs: int = 2, queue_size: int = SYNC_QUEUE_SIZE, slop: float = SYNC_SLOP,
                 callback: Callable[..., Any] | None = None):
        if num_inputs < 2:
            raise ValueError("num_inputs must be at least 2")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if not slop > 0:
            raise ValueError("slop must be positive (seconds)")
        self.num_inputs = int(num_inputs)
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(float(slop) * 1e9))
        self._queues: list[dict[int, Any]] = [{} for _ in range(self.num_inputs)]
        self._callbacks: list[Callable[..., Any]] = [callback] if callback else []
        self._lock = threading.Lock()
        self.stats = SyncStats()

    def register_callback(self, callback: Callable[..., Any]) -> None:
        self._callbacks.append(callback)

    registerCallback = register_callback  # message_filters spelling

    def queued(self, index: int) -> list[int]:
        """Stamps (ns) currently queued on one input, oldest first."""
        with self._lock:
            return sorted(self._queues[index])

    def clear(self, index: int | None = None) -> int:
        """Empty one input's queue (``index``) or all of them; returns the messages removed."""
        with self._lock:
            queues = self._queues if index is None else [self._queues[index]]
            n = sum(len(q) for q in queues)
            for q in queues:
                q.clear()
            return n

    def add(self, index: int, stamp_ns: int, msg: Any) -> list[tuple]:
        """Add ``msg`` with stamp ``stamp_ns`` on input ``index``; return the emitted sets (0 or 1)."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"input index {index} out of range 0..{self.num_inputs - 1}")
        stamp_ns = int(stamp_ns)
        emitted: list[tuple] = []
        with self._lock:
            self.stats.received += 1
            queue = self._queues[index]
            if stamp_ns in queue:
                self.stats.replaced += 1
            queue[stamp_ns] = msg
            while len(queue) > self.queue_size:
                del queue[min(queue)]
                self.stats.evicted += 1
            # A late message older than everything in a full queue is evicted at once: no match.
            found = self._match(index, stamp_ns) if stamp_ns in queue else None
            if found is not None:
                msgs = tuple(self._queues[i].pop(s) for i, s in enumerate(found))
                self.stats.emitted += 1
                emitted.append(msgs)
        for msgs in emitted:  # outside the lock: a callback may call add() again
            for cb in self._callbacks:
                cb(*msgs)
        return emitted

    def _match(self, index: int, stamp_ns: int) -> Sequence[int] | None:
        candidates: list[list[int]] = []
        for i, q in enumerate(self._queues):
            if i == index:
                continue
            # Candidates within slop, closest first; ties keep queue (arrival) order.
            near = [s for s in q if abs(s - stamp_ns) <= self.slop_ns]
            if not near:
                return None
            near.sort(key=lambda s: abs(s - stamp_ns))
            candidates.append(near)
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp_ns)
            if max(stamps) - min(stamps) < self.slop_ns:
                return stamps
        return None
