"""encoder_node: time-synchronizes RGB + thermal images and publishes them compressed.

Subscribes ``rgb/image`` and ``thermal/image`` (sensor_msgs/Image: rgb8/bgr8 and
mono8/mono16/16UC1), pairs them with an approximate-time synchronizer (``sync_queue_size``,
``sync_slop``), encodes each pair with the learned codec in a worker thread and publishes
``encoded`` (mm_compress_ros/msg/EncodedFrame) with both inputs' stamps and frame_ids, the
sequence number, the frame type, the model id and the quality.

Input QoS (``input_qos_reliability``): ``auto`` (default) subscribes each input with the
reliability its publishers offer: reliable when every publisher of the topic is reliable, else
best effort (re-checked every 0.2 s; the subscription is made again when that changes). A reliable
camera driver thus gets a reliable link: a best-effort subscription would make it best effort, and a
640x480 image from a process with Fast DDS's default 512 KiB shared-memory segment then goes as
fragments that are lost under load (docs/ros.md, "Input QoS and transport").

Real-time policy: subscription callbacks only hand messages to the synchronizer, which hands
pairs to a short backlog; the worker encodes them oldest first. A pair is dropped (and counted)
only when a newer pair waits behind it and it has waited more than ``max_wait`` seconds (or more
than ``MAX_BACKLOG`` pairs wait): a CPU hiccup or a short burst costs latency, not pairs; an
encoder slower than its input for longer keeps latency bounded by ``max_wait`` plus one encode,
and the newest pair is never the one dropped. ``max_wait`` 0: keep only the newest pair.

``max_rate`` (Hz, 0: no cap) caps the encoding rate below the input rate (the worker then takes
the newest pair; pairs in between are dropped, and counted).

Key frames: every ``gop`` frames, on a ``request_key_frame`` (std_srvs/Trigger) call, when a
new subscriber appears on ``encoded`` (``key_frame_on_new_subscriber``), after an encoding error,
when the input size or encoding changes, and when capture stamps jump ahead or go back by more
than the stream's gap: ``max_gap`` seconds when > 0, else more than 3 frame intervals of the
stream and at least 1 s (codec/keyframes.py, ``StampRhythm``: a camera throttled to 1 Hz codes
predicted frames, a 10 s pause still brings a key frame).

The stream itself (resize, the per-pair decisions, key frames, counts) is
:class:`mm_compress_ros.link.pair_encoder.PairEncoder`, the same as ``bag encode``'s; the pairing is
:class:`mm_compress_ros.link.synchronizer.ApproximateTimeSynchronizer` with its defaults; this node
adds the ROS around them: QoS, the backlog, publishing, logs, diagnostics, service.

Bad input (docs/reliability.md, "Bad input at the nodes"), each with a throttled log line and no
exception out of a callback: unsupported encodings (the pair is skipped and counted), a size or
encoding change (key frame), one input silent for more than ``MISSING_INPUT_S`` while the other
keeps coming (nothing can be paired, so nothing is encoded: said every few seconds), both inputs
arriving but never pairing within ``sync_slop``, a pair older than the last encoded one (skipped
as ``stale`` when less than the gap older, else taken as a clock reset and encoded as a key frame),
and images whose data do not match their size (counted as errors, key frame after).

Reports bitrate, fps, encode time and drops every ``log_period`` seconds in the log and every
``diagnostics_period`` seconds on ``/diagnostics`` (diagnostic_msgs/DiagnosticArray).
"""
from __future__ import annotations

import collections
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
from mm_compress_ros.link.synchronizer import SYNC_QUEUE_SIZE, SYNC_SLOP, ApproximateTimeSynchronizer
from mm_compress_ros.ros.common import (WARN_PERIOD_S, ThrottledLog, Window, diagnostics, make_qos, mean, percentile,
                                        spin_node)

MISSING_INPUT_S = 2.0      # one input silent this long while the other keeps coming: warn
# How the pair encoder's notes (mm_compress_ros.link.pair_encoder) are logged: level, and the least
# time in seconds between two lines of one kind.
NOTE_LOG = {"stale": ("warning", WARN_PERIOD_S), "unsupported": ("error", WARN_PERIOD_S),
            "clock_reset": ("warning", 0.0), "stamp_jump": ("info", 1.0), "input_changed": ("warning", 1.0)}


MAX_BACKLOG = 32           # pairs waiting for the worker at most (a 640x480 pair: 1.2 MB)
INPUT_QOS_CHECK_S = 0.2    # input_qos_reliability auto: how often the publishers' QoS is looked at


class PairBacklog:
    """Synchronized pairs waiting for the worker, oldest first (thread-safe).

    A pair is dropped only when a newer pair waits behind it and it has waited ``max_wait``
    seconds or more (0: at once, which keeps only the newest pair), or when more than
    ``max_pairs`` wait. The newest pair is never dropped. ``put`` and ``take`` return how many
    pairs they dropped."""

    def __init__(self, max_wait: float, max_pairs: int = MAX_BACKLOG):
        self.max_wait, self.max_pairs = float(max_wait), int(max_pairs)
        self._cv = threading.Condition()
        self._items: collections.deque = collections.deque()   # (arrival time, item)
        self._closed = False

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)

    def _trim(self, now: float, newest: bool) -> int:
        dropped = 0
        while len(self._items) > 1 and (newest or len(self._items) > self.max_pairs
                                        or now - self._items[0][0] >= self.max_wait):
            self._items.popleft()
            dropped += 1
        return dropped

    def put(self, item, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        with self._cv:
            self._items.append((now, item))
            dropped = self._trim(now, newest=False)
            self._cv.notify()
            return dropped

    def take(self, timeout: float | None = None, newest: bool = False, now: float | None = None):
        """(the oldest pair that may still be encoded, or the newest with ``newest``; or None
        after ``timeout``), and the number of pairs dropped on the way."""
        with self._cv:
            if not self._items and not self._closed:
                self._cv.wait(timeout)
            if not self._items:
                return None, 0
            dropped = self._trim(time.monotonic() if now is None else now, newest)
            return self._items.popleft()[1], dropped

    def close(self):
        with self._cv:
            self._closed = True
            self._cv.notify_all()


class EncoderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("encoder_node", **kwargs)
        from mm_compress_ros.codec.profiles import (DEFAULT_DIRECTION, DEFAULT_GOP, DEFAULT_REFERENCE_CODEC,
                                                    DEFAULT_THERMAL_CODEC)

        p = self.declare_parameter
        self.model_name = p("model", "").value    # "": the reference_codec profile's model
        self.direction = p("direction", DEFAULT_DIRECTION).value
        self.quality = int(p("quality", 0).value) or None   # 0: the model's middle level
        self.gop = int(p("gop", DEFAULT_GOP).value)
        self.reference_codec = p("reference_codec", DEFAULT_REFERENCE_CODEC).value
        self.thermal_codec = p("thermal_codec", DEFAULT_THERMAL_CODEC).value
        self.video_encoder = p("video_encoder", "auto").value
        self.target_kbps = float(p("target_kbps", 0.0).value)
        self.device = p("device", "auto").value
        resize = list(p("resize", [0, 0]).value)
        self.sync_queue_size = int(p("sync_queue_size", SYNC_QUEUE_SIZE).value)
        self.sync_slop = float(p("sync_slop", SYNC_SLOP).value)
        in_rel = p("input_qos_reliability", "auto").value
        in_depth = int(p("input_qos_depth", 5).value)
        out_rel = p("output_qos_reliability", "reliable").value
        out_depth = int(p("output_qos_depth", 10).value)
        self.key_on_new_sub = bool(p("key_frame_on_new_subscriber", True).value)
        self.log_period = float(p("log_period", 5.0).value)
        self.diag_period = float(p("diagnostics_period", 1.0).value)
        self.max_rate = float(p("max_rate", 0.0).value)
        self.max_wait = float(p("max_wait", 1.0).value)   # s a pair may wait while newer ones come
        self.torch_threads = int(p("torch_threads", 0).value)
        self.max_gap = float(p("max_gap", 0.0).value)   # s; 0: by the stream's own rhythm

        if in_rel not in ("auto", "best_effort", "reliable"):
            raise ValueError(f"input_qos_reliability must be auto, best_effort or reliable, not {in_rel!r}")
        make_qos("best_effort" if in_rel == "auto" else in_rel, in_depth)   # checks the value
        if self.max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 s (0: keep only the newest pair), not {self.max_wait}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0 s (0: by the stream's frame interval), not {self.max_gap}")
        max_gap_ns = int(self.max_gap * 1e9) or None
        if self.direction not in ("thermal_given_rgb", "rgb_given_thermal"):
            raise ValueError(f"direction must be thermal_given_rgb or rgb_given_thermal, not {self.direction!r}")
        if len(resize) != 2 or min(resize) < 0:
            raise ValueError("resize must be [width, height] of the RGB image (0, 0: keep the input size)")
        self.resize = (int(resize[0]), int(resize[1])) if resize[0] > 0 and resize[1] > 0 else None

        import torch

        from mm_compress_ros.codec.keyframes import StampRhythm
        from mm_compress_ros.codec.zoo import encoding_model
        from mm_compress_ros.link.pair_encoder import PairEncoder

        if self.torch_threads > 0:
            torch.set_num_threads(self.torch_threads)

        t0 = time.monotonic()
        self.model = encoding_model(self.reference_codec, self.thermal_codec, self.model_name or None,
                                    self.direction, self.device)
        # The stream state and the per-pair decisions (stale pairs, clock resets, stamp gaps, input
        # changes, resize, key frames) are the pair encoder's; this node adds the ROS around it.
        self.pairs = PairEncoder(self.model, resize=self.resize, quality=self.quality, gop=self.gop,
                                 reference_codec=self.reference_codec, encoder=self.video_encoder,
                                 target_kbps=self.target_kbps, thermal_codec=self.thermal_codec,
                                 reconstruct=False, max_gap_ns=max_gap_ns)
        self.model_name = self.pairs.stream.model_id or "none"
        where = f" ({self.direction}) on {self.model.device}" if self.model is not None else ""
        self.get_logger().info(
            f"model {self.model_name}{where}, reference codec {self.reference_codec}, thermal codec "
            f"{self.thermal_codec} (profile {self.pairs.stream.profile}), quality {self.pairs.stream.quality}, "
            f"gop {self.gop}, loaded in {time.monotonic() - t0:.1f} s")
        # the level in use (0 asked for the model's middle one), as `ros2 param get` and the viewer read it
        self.set_parameters([rclpy.parameter.Parameter("quality", value=self.pairs.stream.quality)])
        # quality and target_kbps may change at run time (ros2 param set, the viewer): from the
        # next key frame on; every other parameter of this node is read once, at start
        self._read_at_start = {n for n in self._parameters if n not in ("quality", "target_kbps", "use_sim_time")}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # Statistics (written by the worker and the callbacks, read by the timers); the pair
        # encoder counts the pairs it encodes or skips (self.pairs.counts).
        self.drops = 0                 # synchronized pairs dropped from the backlog before encoding
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
        # each input's own rhythm, for a clock reset on one input (the pair encoder has the pairs')
        self._input_rhythm = {"rgb": StampRhythm(max_gap_ns), "thermal": StampRhythm(max_gap_ns)}
        self._last_pair_time = None
        self._started = time.monotonic()
        self._silent_since_warned = {"rgb": False, "thermal": False}
        self._log = ThrottledLog(self.get_logger())   # repeated lines: at most one of a kind per period

        self.sync = ApproximateTimeSynchronizer(2, self.sync_queue_size, self.sync_slop, self._on_pair)
        self.backlog = PairBacklog(self.max_wait)
        self._stop = threading.Event()

        self.pub = self.create_publisher(EncodedFrame, "encoded", make_qos(out_rel, out_depth))
        self._in_depth = in_depth
        self._inputs = {"rgb": ("rgb/image", self._on_rgb), "thermal": ("thermal/image", self._on_thermal)}
        self._subs: dict = {}
        self._sub_rel: dict[str, str] = {}
        for name in self._inputs:   # auto: best effort (matches any publisher) until one is seen
            self._subscribe(name, "best_effort" if in_rel == "auto" else in_rel)
        if in_rel == "auto":
            self.create_timer(INPUT_QOS_CHECK_S, self._match_input_qos)
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

    # -- input QoS ------------------------------------------------------------------------------
    def _subscribe(self, name: str, reliability: str):
        topic, callback = self._inputs[name]
        old = self._subs.pop(name, None)
        if old is not None:
            self.destroy_subscription(old)
        self._subs[name] = self.create_subscription(Image, topic, callback, make_qos(reliability, self._in_depth))
        self._sub_rel[name] = reliability

    def _match_input_qos(self):
        """Timer (input_qos_reliability auto): each input subscribed with its publishers' reliability."""
        from rclpy.qos import ReliabilityPolicy

        for name in list(self._subs):
            topic = self._subs[name].topic_name
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue   # nobody publishes (yet, or any more): keep the subscription as it is
            reliable = [i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos]
            want = "reliable" if all(reliable) else "best_effort"
            if want != self._sub_rel[name]:
                self._subscribe(name, want)
                self.get_logger().info(
                    f"{topic}: {sum(reliable)} of {len(infos)} publisher(s) reliable: subscribing {want}")

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
        if self._input_rhythm[name].step(stamp) == "reset":
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
        self._count_drops(self.backlog.put((rgb_msg, thermal_msg)))

    def _count_drops(self, n: int):
        if n:
            with self._stats_lock:
                self.drops += n

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
        capped = self.max_rate > 0
        while not self._stop.is_set():
            pair, dropped = self.backlog.take(timeout=0.2, newest=capped)
            self._count_drops(dropped)
            if pair is None:
                continue
            if capped:
                # Rate cap: wait, then take the newest pair (the one waited on may be replaced).
                delay = next_start - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                    newer, dropped = self.backlog.take(timeout=0.0, newest=True)
                    if newer is not None:
                        self._count_drops(dropped + 1)
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
                  "subscribers": self._subscribers, "backlog": len(self.backlog),
                  "rgb_qos": self._sub_rel["rgb"], "thermal_qos": self._sub_rel["thermal"]})
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
        self.backlog.close()
        if self.worker.is_alive():
            self.worker.join(timeout=5.0)
        return super().destroy_node()


def main(argv=None) -> int:
    return spin_node(EncoderNode, "encoder_node", argv)


if __name__ == "__main__":
    sys.exit(main())
