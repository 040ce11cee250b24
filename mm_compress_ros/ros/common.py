"""Small rclpy helpers shared by the nodes (QoS from parameters, rolling statistics, diagnostics,
throttled log lines: :class:`ThrottledLog`, the nodes' ``main``: :func:`spin_node`)."""
from __future__ import annotations

import collections
import os
import signal
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
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


WARN_PERIOD_S = 5.0   # a repeated warning: at most this often


class ThrottledLog:
    """A node's repeated log lines, at most one of a kind every ``period`` seconds: the one way
    the nodes throttle (mm_compress_ros.link.notes.Throttle); ``period`` 0 says every line.
    ``log(kind, level, text, period)`` with ``level`` info | warning | error."""

    def __init__(self, logger):
        from mm_compress_ros.link.notes import Throttle

        self._logger = logger
        self._throttle = Throttle()

    def __call__(self, kind: str, level: str, text: str, period: float = WARN_PERIOD_S) -> None:
        if period > 0 and not self._throttle.ready(kind, period):
            return
        if level == "error":   # one call per level: rclpy refuses another level at the same call
            self._logger.error(text)
        elif level == "warning":
            self._logger.warning(text)
        else:
            self._logger.info(text)


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def percentile(xs, q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return 0.0
    k = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


def spin_node(factory, name: str, argv=None, *, done=None, linger_s: float = 0.0) -> int:
    """``main`` of every node executable: spins until Ctrl-C (SIGINT), SIGTERM or ``done(node)``,
    prints the final statistics (``stats_line()``, where the node has one) and returns 0.

    The one shutdown path of the nodes. rclpy's own signal handlers are off: they shut the ROS
    context down inside the signal handler, while the node's worker threads (encoding, decoding,
    the viewer's web server) still publish and log, which then fail with ``RCLError: publisher's
    context is invalid`` (logged as ``[ERROR] encoding failed``), and a loop of ``spin_once``
    calls ends in an ``ExternalShutdownException`` traceback. Here SIGINT and SIGTERM only set a
    flag; the executor stops at its next wake-up (at most 0.1 s), ``node.destroy_node()`` stops
    and joins the node's threads while the context is still valid, and only then is the context
    shut down. A second signal while shutting down is ignored (a third ends the process at once).

    ``done(node)``: stop spinning once true (the node finished its work), after ``linger_s`` more
    seconds of spinning (the last messages leave). A constructor that fails (bad parameter,
    missing model) ends the process with one line on stderr and exit status 1 instead of a
    traceback.
    """
    stop = threading.Event()
    signals = {"n": 0}

    def on_signal(signum, frame):  # noqa: ARG001
        signals["n"] += 1
        stop.set()
        if signals["n"] >= 3:   # still not down: leave now, as a plain Ctrl-C would
            os._exit(128 + signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=argv if argv is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    executor = None
    try:
        try:
            node = factory()
        except Exception as exc:  # noqa: BLE001
            print(f"[{name}] error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        finished_at = None
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
            if finished_at is None and done is not None and done(node):
                finished_at = time.monotonic()
            if finished_at is not None and time.monotonic() - finished_at >= linger_s:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if hasattr(node, "stats_line"):
                print(f"[{node.get_name()}] final: {node.stats_line()}", flush=True)
            if executor is not None:
                executor.remove_node(node)
                executor.shutdown(timeout_sec=1.0)
            node.destroy_node()   # stops the node's threads: the context is still valid
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
