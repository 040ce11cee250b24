"""sample_publisher: publishes synchronized RGB + thermal sensor_msgs/Image pairs.

Sources (parameter ``source``): ``auto`` (default: ``synthetic`` when ``path`` is empty, else a
frame folder ``<path>/{rgb,thermal}/`` or paired videos ``<path>/{rgb,thermal}.mp4``),
``synthetic`` (a built-in moving scene, reported as SYNTHETIC), ``folder``, ``video``.

Topics: ``rgb/image`` and ``thermal/image`` (remappable). Each pair carries a stamp taken from the
node clock when it is published (the thermal stamp may be offset by ``thermal_stamp_offset``);
with ``thermal_rate`` > 0 the thermal camera runs at its own rate (e.g. 9 Hz against 30 Hz RGB),
publishing the frame of the current time. Frames are read or rendered by a prefetch thread so
the timer callback only publishes.
"""
from __future__ import annotations

import queue
import sys
import threading
import time

from rclpy.node import Node
from rclpy.time import Duration
from sensor_msgs.msg import Image

from mm_compress_ros.io.ros_image import COLOR_ENCODINGS, THERMAL_ENCODINGS, from_rgb, numpy_to_image
from mm_compress_ros.ros.common import make_qos, spin_node
from mm_compress_ros.ros.sources import detect_source, open_source, thermal_to_encoding


class SamplePublisher(Node):
    def __init__(self, **kwargs):
        super().__init__("sample_publisher", **kwargs)
        p = self.declare_parameter
        self.source = p("source", "auto").value
        self.path = p("path", "").value
        self.rate = float(p("rate", 10.0).value)
        self.thermal_rate = float(p("thermal_rate", 0.0).value)
        self.width = int(p("width", 0).value)
        self.height = int(p("height", 0).value)
        self.loop = bool(p("loop", True).value)
        self.count = int(p("count", 0).value)
        self.rgb_encoding = p("rgb_encoding", "rgb8").value
        self.thermal_encoding = p("thermal_encoding", "mono8").value
        self.rgb_frame_id = p("rgb_frame_id", "rgb_optical_frame").value
        self.thermal_frame_id = p("thermal_frame_id", "thermal_optical_frame").value
        self.thermal_stamp_offset = float(p("thermal_stamp_offset", 0.0).value)
        self.reliability = p("qos_reliability", "best_effort").value
        self.depth = int(p("qos_depth", 5).value)
        self.wait_for_subscribers = int(p("wait_for_subscribers", 0).value)
        self.wait_timeout = float(p("wait_timeout", 30.0).value)
        # after the subscribers are seen: a publisher sees a match before the subscriber has matched
        # it back (discovery is not symmetric), and a best-effort message sent in between is lost
        self.settle = float(p("settle", 0.5).value)
        self._matched_at: float | None = None
        self.exit_when_done = bool(p("exit_when_done", True).value)

        if self.rgb_encoding not in COLOR_ENCODINGS:
            raise ValueError(f"rgb_encoding must be one of {COLOR_ENCODINGS}, not {self.rgb_encoding!r}")
        if self.thermal_encoding not in THERMAL_ENCODINGS:
            raise ValueError(f"thermal_encoding must be one of {THERMAL_ENCODINGS}, not {self.thermal_encoding!r}")
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        self.kind = detect_source(self.path) if self.source == "auto" else self.source
        size = (self.width, self.height) if self.width > 0 and self.height > 0 else None
        self._frames = open_source(self.kind, self.path or None, size, loop=self.loop)

        qos = make_qos(self.reliability, self.depth)
        self.pub_rgb = self.create_publisher(Image, "rgb/image", qos)
        self.pub_th = self.create_publisher(Image, "thermal/image", qos)

        # Prefetch: frames are read/rendered ahead (also while waiting for subscribers), up to
        # prefetch_mb of memory, so that file decoding never stalls the publishing timer.
        self.prefetch_mb = float(p("prefetch_mb", 64.0).value)
        self._queue: queue.Queue = queue.Queue(maxsize=self._prefetch_frames(size))
        self._stop = threading.Event()
        self._exhausted = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="sample_reader", daemon=True)
        self._reader.start()

        self.published = 0
        self.underruns = 0
        self.done = threading.Event()
        self._current = None  # thermal frame of the latest RGB tick, for a separate thermal rate
        self._start_wall = None
        self._wait_started = time.monotonic()
        label = "SYNTHETIC scene" if self.kind == "synthetic" else f"{self.kind} {self.path}"
        self.get_logger().info(
            f"source: {label}; {self.rate:g} Hz"
            + (f", thermal {self.thermal_rate:g} Hz" if self.thermal_rate > 0 else "")
            + f", encodings {self.rgb_encoding}/{self.thermal_encoding}"
            + (f", {self.count} frames" if self.count else ""))
        self._timer = self.create_timer(1.0 / self.rate, self._tick_rgb)
        self._th_timer = (self.create_timer(1.0 / self.thermal_rate, self._tick_thermal)
                          if self.thermal_rate > 0 else None)

    # -- frames ------------------------------------------------------------------------------
    def _prefetch_frames(self, size) -> int:
        w, h = size if size else (640, 480)
        pair_bytes = w * h * 5  # RGB (3 bytes) + thermal (up to 2 bytes) per pixel
        return int(max(2, min(1000, self.prefetch_mb * 2**20 // pair_bytes)))

    def _read_loop(self):
        try:
            for pair in self._frames:
                while not self._stop.is_set():
                    try:
                        self._queue.put(pair, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except Exception as exc:  # a broken file: report and stop publishing
            self.get_logger().error(f"reading frames failed: {exc}")
        self._exhausted.set()

    def _ready(self) -> bool:
        if self._start_wall is not None:
            return True
        # Start with a full prefetch buffer (bounded wait), so that reading never lags at first.
        if (not self._queue.full() and not self._exhausted.is_set()
                and time.monotonic() - self._wait_started < self.wait_timeout):
            return False
        if self.wait_for_subscribers > 0:
            n = min(self.pub_rgb.get_subscription_count(), self.pub_th.get_subscription_count())
            now = time.monotonic()
            if n < self.wait_for_subscribers and now - self._wait_started < self.wait_timeout:
                return False
            if self._matched_at is None:
                self._matched_at = now
            if now - self._matched_at < self.settle:
                return False
            self.get_logger().info(f"{n} subscriber(s) on both topics, starting")
        self._start_wall = time.monotonic()
        return True

    # -- publishing --------------------------------------------------------------------------
    def _image(self, arr, encoding, frame_id, stamp):
        msg = numpy_to_image(arr, encoding)
        msg.header.frame_id = frame_id
        msg.header.stamp = stamp.to_msg()
        return msg

    def _publish_thermal(self, th, stamp):
        stamp = stamp + Duration(nanoseconds=int(self.thermal_stamp_offset * 1e9))
        arr = thermal_to_encoding(th, self.thermal_encoding)
        self.pub_th.publish(self._image(arr, self.thermal_encoding, self.thermal_frame_id, stamp))

    def _tick_rgb(self):
        if self.done.is_set() or not self._ready():
            return
        try:
            rgb, th = self._queue.get_nowait()
        except queue.Empty:
            if self._exhausted.is_set():
                self._finish("end of input")
            else:
                self.underruns += 1
            return
        stamp = self.get_clock().now()
        self.pub_rgb.publish(self._image(from_rgb(rgb, self.rgb_encoding), self.rgb_encoding,
                                         self.rgb_frame_id, stamp))
        self._current = th
        if self._th_timer is None:
            self._publish_thermal(th, stamp)
        self.published += 1
        if self.count and self.published >= self.count:
            self._finish(f"published {self.published} frames")

    def _tick_thermal(self):
        if self.done.is_set() or self._current is None:
            return
        self._publish_thermal(self._current, self.get_clock().now())

    def _finish(self, why: str):
        if not self.done.is_set():
            self.get_logger().info(f"{why} (underruns: {self.underruns})")
            self.done.set()

    def destroy_node(self):
        self._stop.set()
        self._reader.join(timeout=5.0)   # it may log: before the context goes
        return super().destroy_node()


def main(argv=None) -> int:
    # Runs until the frames are published (count, end of a non-looping source; exit_when_done),
    # then 0.5 s more so that the last messages leave; SIGINT / SIGTERM end it cleanly.
    return spin_node(SamplePublisher, "sample_publisher", argv,
                     done=lambda node: node.done.is_set() and node.exit_when_done, linger_s=0.5)


if __name__ == "__main__":
    sys.exit(main())
