"""encoder_node: time-synchronizes RGB + thermal images and publishes them compressed.

Subscribes ``rgb/image`` and ``thermal/image`` (sensor_msgs/Image: rgb8/bgr8 and
mono8/mono16/16UC1), pairs them with an approximate-time synchronizer (``sync_queue_size``,
``sync_slop``), encodes each pair with the learned codec in a worker thread and publishes
``encoded`` (mm_compress_ros/msg/EncodedFrame) with both inputs' stamps and frame_ids, the
sequence number, the frame type, the model id and the quality.

Real-time policy: subscription callbacks only hand messages to the synchronizer, which hands
pairs to a single slot; the worker takes the newest pair from the slot. When encoding is slower
than the input, a pair still waiting in the slot is replaced by the newer one and counted as a
drop: there is no queue to grow, and latency stays bounded by about one encode time.

``max_rate`` (Hz, 0: no cap) caps the encoding rate below the input rate (pairs in between are
dropped through the same slot, and counted).

Key frames: every ``gop`` frames, on a ``request_key_frame`` (std_srvs/Trigger) call, when a
new subscriber appears on ``encoded`` (``key_frame_on_new_subscriber``), after an encoding error,
when the input size or encoding changes, and when capture stamps jump more than 1 s ahead or go
back more than 1 s.

The stream itself (resize, the per-pair decisions, key frames, counts) is
:class:`mm_compress_ros.codec.session.PairEncoder`, the same as ``bag encode``'s; this node adds the
ROS around it: QoS, synchronizer, the keep-newest slot, publishing, logs, diagnostics, service.

Bad input (docs/reliability.md, "Bad input at the nodes"), each with a throttled log line and no
exception out of a callback: unsupported encodings (the pair is skipped and counted), a size or
encoding change (key frame), one input silent for more than ``MISSING_INPUT_S`` while the other
keeps coming (nothing can be paired, so nothing is encoded: said every few seconds), both inputs
arriving but never pairing within ``sync_slop``, a pair older than the last encoded one (skipped
as ``stale`` when less than 1 s older, else taken as a clock reset and encoded as a key frame),
and images whose data do not match their size (counted as errors, key frame after).

Reports bitrate, fps, encode time and drops every ``log_period`` seconds in the log and every
``diagnostics_period`` seconds on ``/diagnostics`` (diagnostic_msgs/DiagnosticArray).
"""
from __future__ import annotations

import sys
import threading
import time

import rclpy.parameter
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from mm_compress_ros.io.encoded_frame import encoded_frame
from mm_compress_ros.io.ros_image import stamp_to_ns
from mm_compress_ros.msg import EncodedFrame
from mm_compress_ros.ros.common import Window, diagnostics, make_qos, mean, percentile, spin_node
from mm_compress_ros.ros.synchronizer import ApproximateTimeSynchronizer

MISSING_INPUT_S = 2.0      # one input silent this long while the other keeps coming: warn
WARN_PERIOD_S = 5.0        # repeat a bad-input warning at most this often
# How the pair encoder's notes (mm_compress_ros.codec.session) are logged: level, and the least
# time in seconds between two lines of one kind.
NOTE_LOG = {"stale": ("warning", WARN_PERIOD_S), "unsupported": ("error", WARN_PERIOD_S),
            "clock_reset": ("warning", 0.0), "stamp_jump": ("info", 1.0), "input_changed": ("warning", 1.0)}


class LatestSlot:
    """A one-element mailbox: ``put`` replaces an unconsumed item (returns True when it did)."""

    def __init__(self):
        self._cv = threading.Condition()
        self._item = None
        self._closed = False

    def put(self, item) -> bool:
        with self._cv:
            replaced = self._item is not None
            self._item = item
            self._cv.notify()
            return replaced

    def take(self, timeout: float | None = None):
        with self._cv:
            if self._item is None and not self._closed:
                self._cv.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self):
        with self._cv:
            self._closed = True
            self._cv.notify_all()


class EncoderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("encoder_node", **kwargs)
        from mm_compress_ros.codec.reference import DEFAULT_REFERENCE_CODEC

        p = self.declare_parameter
        self.model_name = p("model", "").value    # "": the reference_codec profile's model
        self.direction = p("direction", "thermal_given_rgb").value
        self.quality = int(p("quality", 0).value) or None   # 0: the model's middle level
        self.gop = int(p("gop", 10).value)
        self.reference_codec = p("reference_codec", DEFAULT_REFERENCE_CODEC).value
        self.video_encoder = p("video_encoder", "auto").value
        self.target_kbps = float(p("target_kbps", 0.0).value)
        self.device = p("device", "auto").value
        resize = list(p("resize", [0, 0]).value)
        self.sync_queue_size = int(p("sync_queue_size", 10).value)
        self.sync_slop = float(p("sync_slop", 0.05).value)
        in_rel = p("input_qos_reliability", "best_effort").value
        in_depth = int(p("input_qos_depth", 5).value)
        out_rel = p("output_qos_reliability", "reliable").value
        out_depth = int(p("output_qos_depth", 10).value)
        self.key_on_new_sub = bool(p("key_frame_on_new_subscriber", True).value)
        self.log_period = float(p("log_period", 5.0).value)
        self.diag_period = float(p("diagnostics_period", 1.0).value)
        self.max_rate = float(p("max_rate", 0.0).value)
        self.torch_threads = int(p("torch_threads", 0).value)

        if self.direction not in ("thermal_given_rgb", "rgb_given_thermal"):
            raise ValueError(f"direction must be thermal_given_rgb or rgb_given_thermal, not {self.direction!r}")
        if len(resize) != 2 or min(resize) < 0:
            raise ValueError("resize must be [width, height] of the RGB image (0, 0: keep the input size)")
        self.resize = (int(resize[0]), int(resize[1])) if resize[0] > 0 and resize[1] > 0 else None

        import torch

        from mm_compress_ros.codec.session import PairEncoder
        from mm_compress_ros.codec.zoo import default_model, load_model

        self.model_name = self.model_name or default_model(self.reference_codec)
        if self.torch_threads > 0:
            torch.set_num_threads(self.torch_threads)

        t0 = time.monotonic()
        self.model = load_model(self.model_name, direction=self.direction, device=self.device)
        # The stream state and the per-pair decisions (stale pairs, clock resets, stamp gaps, input
        # changes, resize, key frames) are the pair encoder's; this node adds the ROS around it.
        self.pairs = PairEncoder(self.model, resize=self.resize, quality=self.quality, gop=self.gop,
                                 reference_codec=self.reference_codec, encoder=self.video_encoder,
                                 target_kbps=self.target_kbps)
        self.get_logger().info(
            f"model {self.model_name} ({self.direction}) on {self.model.device}, reference codec "
            f"{self.reference_codec} (profile {self.pairs.stream.profile}), quality {self.pairs.stream.quality}, "
            f"gop {self.gop}, loaded in {time.monotonic() - t0:.1f} s")
        # the level in use (0 asked for the model's middle one), as `ros2 param get` and the viewer read it
        self.set_parameters([rclpy.parameter.Parameter("quality", value=self.pairs.stream.quality)])
        # quality and target_kbps may change at run time (ros2 param set, the viewer): from the
        # next key frame on; every other parameter of this node is read once, at start
        self._read_at_start = {n for n in self._parameters if n not in ("quality", "target_kbps", "use_sim_time")}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # Statistics (written by the worker and the callbacks, read by the timers); the pair
        # encoder counts the pairs it encodes or skips (self.pairs.counts).
        self.drops = 0                 # synchronized pairs replaced in the slot before encoding
        self.errors = 0
        self.key_requests = 0
        self._enc_ms = Window(10.0)
        self._bits = Window(10.0)
        self._stats_lock = threading.Lock()
        self._last_drops_reported = 0
        self._last_bad_reported = 0
        self._enc_ms_total = 0.0
        self._bytes_total = 0
        # Input watch: monotonic arrival time and count of each input, last pair time.
        self._arrival = {"rgb": None, "thermal": None}
        self._arrivals = {"rgb": 0, "thermal": 0}
        self._input_stamp = {"rgb": None, "thermal": None}
        self._last_pair_time = None
        self._started = time.monotonic()
        self._silent_since_warned = {"rgb": False, "thermal": False}
        self._logged_at: dict[str, float] = {}

        self.sync = ApproximateTimeSynchronizer(2, self.sync_queue_size, self.sync_slop, self._on_pair)
        self.slot = LatestSlot()
        self._stop = threading.Event()

        self.pub = self.create_publisher(EncodedFrame, "encoded", make_qos(out_rel, out_depth))
        in_qos = make_qos(in_rel, in_depth)
        self.create_subscription(Image, "rgb/image", self._on_rgb, in_qos)
        self.create_subscription(Image, "thermal/image", self._on_thermal, in_qos)
        self.create_service(Trigger, "request_key_frame", self._on_key_request)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._subscribers = 0
        self.create_timer(0.1, self._check_subscribers)
        self.create_timer(0.5, self._check_inputs)
        if self.diag_period > 0:
            self.create_timer(self.diag_period, self._publish_diagnostics)
        if self.log_period > 0:
            self.create_timer(self.log_period, self._log_stats)

        self.worker = threading.Thread(target=self._work, name="encoder_worker", daemon=True)
        self.worker.start()

    # -- callbacks (short: hand over and return) ------------------------------------------------
    def _on_rgb(self, msg: Image):
        self._arrived("rgb", 0, msg)
        self.sync.add(0, stamp_to_ns(msg.header.stamp), msg)

    def _on_thermal(self, msg: Image):
        self._arrived("thermal", 1, msg)
        self.sync.add(1, stamp_to_ns(msg.header.stamp), msg)

    def _arrived(self, name: str, index: int, msg: Image):
        now = time.monotonic()
        last = self._arrival[name]
        self._arrival[name] = now
        self._arrivals[name] += 1
        stamp, prev = stamp_to_ns(msg.header.stamp), self._input_stamp[name]
        self._input_stamp[name] = stamp
        if prev is not None and prev - stamp > self.pairs.max_gap_ns:
            # A clock reset on this input: its queued messages are all "newer" than anything it
            # will send for a while, and a full queue would evict every new message at once.
            removed = self.sync.clear(index)
            self.get_logger().warning(
                f"{name} stamps went back {(prev - stamp) / 1e9:.1f} s (clock reset?): "
                f"{removed} queued {name} image(s) dropped from the synchronizer")
        if self._silent_since_warned[name]:  # said missing (perhaps before its first image came)
            self._silent_since_warned[name] = False
            silent = now - (last if last is not None else self._started)
            self.get_logger().info(f"{name} images again after {silent:.1f} s without")

    def _log(self, kind: str, level: str, text: str, period: float = WARN_PERIOD_S):
        """A log line at most every ``period`` s per kind."""
        now = time.monotonic()
        if now - self._logged_at.get(kind, -1e9) < period:
            return
        self._logged_at[kind] = now
        log = self.get_logger()  # one call per level: rclpy refuses another level at the same call
        if level == "error":
            log.error(text)
        elif level == "warning":
            log.warning(text)
        else:
            log.info(text)

    def _check_inputs(self):
        """Timer: one input silent while the other keeps coming, or both coming but never paired."""
        now = time.monotonic()
        for name, other in (("rgb", "thermal"), ("thermal", "rgb")):
            t_other = self._arrival[other]
            if t_other is None or now - t_other > 1.0:
                continue  # the other input is quiet too: nothing is expected
            t = self._arrival[name]
            silent = now - (t if t is not None else self._started)
            if silent > MISSING_INPUT_S:
                self._silent_since_warned[name] = True
                what = f"for {silent:.1f} s" if t is not None else f"received yet ({silent:.1f} s)"
                self._log(f"missing {name}", "warning",
                          f"no {name} image {what} while {other} images keep coming: nothing is encoded")
                return
        if self._arrival["rgb"] is None or self._arrival["thermal"] is None:
            return
        if max(now - self._arrival["rgb"], now - self._arrival["thermal"]) > 1.0:
            return
        last_pair = self._last_pair_time if self._last_pair_time is not None else self._started
        if now - last_pair > MISSING_INPUT_S:
            rs, ts = self._input_stamp["rgb"], self._input_stamp["thermal"]
            diff = abs(rs - ts) / 1e9 if rs is not None and ts is not None else float("nan")
            self._log("unpaired", "warning",
                      f"rgb and thermal images arrive but none paired for {now - last_pair:.1f} s "
                      f"(latest stamps differ by {diff:.3f} s, sync_slop {self.sync_slop:g} s): "
                      "nothing is encoded")

    def _on_pair(self, rgb_msg: Image, thermal_msg: Image):
        self._last_pair_time = time.monotonic()
        if self.slot.put((rgb_msg, thermal_msg)):
            with self._stats_lock:
                self.drops += 1

    def _on_set_parameters(self, params):
        from rcl_interfaces.msg import SetParametersResult

        quality = target = None
        for prm in params:
            if prm.name in self._read_at_start:
                return SetParametersResult(successful=False, reason=f"{prm.name} is read at start: restart the node")
            if prm.name == "quality":
                quality = int(prm.value)
            elif prm.name == "target_kbps":
                target = float(prm.value)
        try:
            self.pairs.stream.set_rate(quality=quality, target_kbps=target)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if quality is not None or target is not None:
            self.get_logger().info(f"rate settings from the next key frame: quality {quality}, target_kbps {target}")
        return SetParametersResult(successful=True)

    def _on_key_request(self, request, response):
        self.request_key_frame("service request")
        response.success = True
        # The frame being encoded right now (if any) gets the next sequence number and started
        # before the request: the key frame is that sequence number or the one after.
        response.message = f"key frame requested; next sequence {self.pairs.counts.pairs}"
        return response

    def request_key_frame(self, why: str):
        with self._stats_lock:
            self.key_requests += 1
        self.pairs.request_key_frame()
        self.get_logger().info(f"key frame requested ({why})")

    def _check_subscribers(self):
        n = self.pub.get_subscription_count()
        if n > self._subscribers and self.key_on_new_sub and self.pairs.counts.pairs > 0:
            self.request_key_frame(f"new subscriber, {n} now")
        self._subscribers = n

    # -- worker -------------------------------------------------------------------------------
    def _work(self):
        next_start = 0.0
        while not self._stop.is_set():
            pair = self.slot.take(timeout=0.2)
            if pair is None:
                continue
            if self.max_rate > 0:
                # Rate cap: wait, then take the newest pair (the one waited on may be replaced).
                delay = next_start - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                    newer = self.slot.take(timeout=0.0)
                    if newer is not None:
                        with self._stats_lock:
                            self.drops += 1
                        pair = newer
                next_start = time.monotonic() + 1.0 / self.max_rate
            try:
                self._encode_and_publish(*pair)
            except Exception as exc:  # noqa: BLE001  (keep the node alive, restart with a key frame)
                with self._stats_lock:
                    self.errors += 1
                self.pairs.request_key_frame()
                self._log("error", "error", f"encoding failed: {type(exc).__name__}: {exc}")

    def _encode_and_publish(self, rgb_msg: Image, thermal_msg: Image):
        result = self.pairs.encode(rgb_msg, thermal_msg)
        for note in result.notes:
            level, period = NOTE_LOG[note.kind]
            self._log(note.kind, level, note.text, period)
        if result.packet is None:
            return
        self.pub.publish(encoded_frame(EncodedFrame, rgb_msg, thermal_msg, result, data=result.packet))
        self._enc_ms.add(result.encode_ms)
        self._bits.add(len(result.packet) * 8)
        with self._stats_lock:
            self._enc_ms_total += result.encode_ms
            self._bytes_total += len(result.packet)

    # -- reporting ----------------------------------------------------------------------------
    def stats(self) -> dict:
        enc = self._enc_ms.values()
        c = self.pairs.counts
        with self._stats_lock:
            s = {"frames": c.pairs, "key_frames": c.key_frames, "sequence": c.pairs,
                 "drops": self.drops, "stale": c.stale, "errors": self.errors,
                 "unsupported": c.unsupported, "key_requests": self.key_requests,
                 "clock_resets": c.clock_resets,
                 "encode_ms_mean_all": self._enc_ms_total / max(1, c.pairs),
                 "bytes_total": self._bytes_total}
        s.update({"sync_evicted": self.sync.stats.evicted,
                  "rgb_received": self._arrivals["rgb"], "thermal_received": self._arrivals["thermal"],
                  "fps": self._bits.rate(), "kbps": self._bits.sum_rate() / 1000.0,
                  "encode_ms_mean": mean(enc), "encode_ms_p95": percentile(enc, 95),
                  "subscribers": self._subscribers})
        return s

    def _log_stats(self):
        self.get_logger().info(self.stats_line())

    def stats_line(self) -> str:
        s = self.stats()
        return (
            f"encoded {s['frames']} ({s['key_frames']} key) | {s['fps']:.1f} fps | {s['kbps']:.1f} kbit/s | "
            f"encode {s['encode_ms_mean']:.1f} ms (p95 {s['encode_ms_p95']:.1f}) | drops {s['drops']} | "
            f"unpaired {s['sync_evicted']} | errors {s['errors']}")

    def _publish_diagnostics(self):
        s = self.stats()
        new_drops = s["drops"] - self._last_drops_reported
        self._last_drops_reported = s["drops"]
        bad = s["errors"] + s["unsupported"]
        new_bad, self._last_bad_reported = bad - self._last_bad_reported, bad
        if new_bad:  # since the last report: back to OK once the input is good again
            level, message = "error", f"encoding errors or unsupported input ({new_bad} since last report)"
        elif new_drops:
            level, message = "warn", f"dropping frames: encoder slower than input ({new_drops} since last report)"
        else:
            level, message = "ok", "encoding"
        self.diag_pub.publish(diagnostics(self, "encoder", self.model_name, level, message, s))

    def destroy_node(self):
        self._stop.set()
        self.slot.close()
        if self.worker.is_alive():
            self.worker.join(timeout=5.0)
        return super().destroy_node()


def main(argv=None) -> int:
    return spin_node(EncoderNode, "encoder_node", argv)


if __name__ == "__main__":
    sys.exit(main())
