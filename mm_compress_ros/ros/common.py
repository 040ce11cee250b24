"""Small rclpy helpers shared by the nodes (QoS from parameters, rolling statistics, diagnostics)."""
from __future__ import annotations

import collections
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def make_qos(reliability: str, depth: int) -> QoSProfile:
    """'best_effort' (sensor data) or 'reliable', KEEP_LAST(depth), volatile."""
    rel = {"best_effort": ReliabilityPolicy.BEST_EFFORT,
           "reliable": ReliabilityPolicy.RELIABLE}.get(reliability)
    if rel is None:
        raise ValueError(f"reliability must be 'best_effort' or 'reliable', not {reliability!r}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(1, int(depth)),
                      reliability=rel, durability=DurabilityPolicy.VOLATILE)


def diagnostics(node, role: str, hardware_id: str, level: str, message: str, values: dict):
    """A diagnostic_msgs/DiagnosticArray with one status ``<node's full name>: <role>`` stamped now:
    ``level`` ok | warn | error, ``values`` as key/values (floats with 3 decimals)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    levels = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}
    status = DiagnosticStatus(name=f"{node.get_fully_qualified_name()}: {role}", hardware_id=hardware_id,
                              level=levels[level], message=message)
    status.values = [KeyValue(key=k, value=(f"{v:.3f}" if isinstance(v, float) else str(v)))
                     for k, v in values.items()]
    arr = DiagnosticArray(status=[status])
    arr.header.stamp = node.get_clock().now().to_msg()
    return arr


class Window:
    """Thread-safe rolling window of (time, value) samples over the last ``seconds``."""

    def __init__(self, seconds: float = 5.0):
        self.seconds = seconds
        self._d: collections.deque = collections.deque()
        self._lock = threading.Lock()

    def add(self, value: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._d.append((now, float(value)))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._d and now - self._d[0][0] > self.seconds:
            self._d.popleft()

    def values(self, now: float | None = None) -> list[float]:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            return [v for _, v in self._d]

    def rate(self, now: float | None = None) -> float:
        """Samples per second over the window (0 with fewer than 2 samples)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._d) < 2:
                return 0.0
            span = self._d[-1][0] - self._d[0][0]
            return (len(self._d) - 1) / span if span > 0 else 0.0

    def sum_rate(self, now: float | None = None) -> float:
        """Sum of values per second over the window (e.g. bits/s)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._d) < 2:
                return 0.0
            span = self._d[-1][0] - self._d[0][0]
            return sum(v for _, v in list(self._d)[1:]) / span if span > 0 else 0.0


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def percentile(xs, q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return 0.0
    k = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


def spin_node(factory, name: str, argv=None) -> int:
    """``main`` of a codec node: spins until Ctrl-C or shutdown, prints the final statistics.

    A constructor that fails (bad parameter, missing model) ends the process with one line on
    stderr and exit status 1 instead of a traceback.
    """
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    try:
        try:
            node = factory()
        except Exception as exc:  # noqa: BLE001
            print(f"[{name}] error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return 1
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            print(f"[{node.get_name()}] final: {node.stats_line()}", flush=True)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
