"""Notes: what the message policy decided about one pair or packet, as a kind and a one-line text
(the adapters log, count or ignore them), and :class:`Throttle`, the one rule for how often a
repeated line is said (every node's throttled log lines go through it: ros/common.py,
``ThrottledLog``)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    kind: str
    text: str


class Throttle:
    """At most one line of a kind every ``period`` seconds (thread-safe). :meth:`ready` says
    whether a line of ``kind`` may be said now, and if so takes the time as said."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._said: dict[str, float] = {}
        self._lock = threading.Lock()

    def ready(self, kind: str, period: float) -> bool:
        now = self._clock()
        with self._lock:
            if now - self._said.get(kind, -float("inf")) < period:
                return False
            self._said[kind] = now
            return True
