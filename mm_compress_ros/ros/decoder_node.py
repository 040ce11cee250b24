"""decoder_node: decodes mm_compress_ros/msg/EncodedFrame back into two sensor_msgs/Image topics.

Subscribes ``encoded``; publishes ``rgb/image`` and ``thermal/image`` (remappable) with the
original stamps and frame_ids carried by each EncodedFrame and the original encodings its packet
records (mono16 comes back as mono16, bgr8 as bgr8; the rules: mm_compress_ros.io.encoded_frame,
shared with ``bag decode``): what rviz2, rqt_image_view and perception nodes consume.

The decoding policy is :class:`mm_compress_ros.link.pair_decoder.PairDecoder`, the same as ``bag
decode``'s and ``mm-compress decode``'s: each packet parsed once, the model the stream names
(``codec/zoo.decoding_choice``; the ``model`` parameter is loaded at start), and one
waiting-for-a-key-frame state. A jump in ``sequence`` (lost messages), a corrupt packet or a
predicted frame without its reference puts it into "waiting for a key frame": nothing is
published until the next key frame, and meanwhile this node asks the encoder for one
(std_srvs/Trigger ``request_key_frame``, at most every ``key_request_interval`` seconds). Decoding
runs in a worker thread; when it falls more than ``max_queue`` packets behind, the backlog is
dropped (the next packet's sequence number shows the gap, and a key frame is requested).

Reports decode time and end-to-end latency (capture stamp -> decoded image published) in the log
and on ``/diagnostics``.

With ``foxglove_video`` (and the ``foxglove_msgs`` Python package importable), every 8-bit
H.264 / H.265 layer of the stream (both cameras in the standard profile, RGB in the hybrid one) is
also published as it arrived, without re-encoding, as foxglove_msgs/msg/CompressedVideo on its
modality's image topic + ``/compressed_video`` (``rgb/image/compressed_video``,
``thermal/image/compressed_video``, as resolved after remapping), for Foxglove / Lichtblick.
"""
from __future__ import annotations

import array
import collections
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from mm_compress_ros.codec.profiles import DEFAULT_RESTORE
from mm_compress_ros.io.encoded_frame import decoded_image, modality_header
from mm_compress_ros.io.ros_image import numpy_to_image, stamp_to_ns
from mm_compress_ros.msg import EncodedFrame
from mm_compress_ros.ros.common import ThrottledLog, Window, diagnostics, make_qos, mean, percentile, spin_node

# How the pair decoder's notes (mm_compress_ros.link.pair_decoder) are logged: level, and the least
# time in seconds between two lines of one kind.
NOTE_LOG = {"waiting": ("warning", 0.0), "decoding": ("info", 0.0), "corrupt": ("warning", 1.0),
            "model": ("info", 0.0)}


class DecoderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("decoder_node", **kwargs)
        from mm_compress_ros.codec.profiles import DEFAULT_DIRECTION

        p = self.declare_parameter
        self.model_name = p("model", "").value    # "": none until a stream names one (standard streams need none)
        self.direction = p("direction", DEFAULT_DIRECTION).value
        self.device = p("device", "auto").value
        in_rel = p("input_qos_reliability", "reliable").value
        in_depth = int(p("input_qos_depth", 10).value)
        out_rel = p("output_qos_reliability", "best_effort").value
        out_depth = int(p("output_qos_depth", 5).value)
        self.max_queue = int(p("max_queue", 30).value)
        self.key_request_interval = float(p("key_request_interval", 0.5).value)
        self.log_period = float(p("log_period", 5.0).value)
        self.diag_period = float(p("diagnostics_period", 1.0).value)
        self.torch_threads = int(p("torch_threads", 0).value)
        self.foxglove_video = bool(p("foxglove_video", False).value)
        self.restore = bool(p("restore", DEFAULT_RESTORE).value)   # the joint restoration of the pictures
        restore_weights = p("restore_weights", "").value               # "": the shipped model

        import torch

        from mm_compress_ros.link.pair_decoder import PairDecoder

        if self.torch_threads > 0:
            torch.set_num_threads(self.torch_threads)
        self._log = ThrottledLog(self.get_logger())
        t0 = time.monotonic()
        # the stream's own model, as bag decode and mm-compress decode choose it; ``model`` only loads one now
        self.decoder = PairDecoder(device=self.device, preload=(self.model_name, self.direction),
                                   restore=self.restore, restore_weights=restore_weights)
        what = (f"model {self.model_name} ({self.direction}) on {self.decoder.model.device}"
                if self.decoder.model is not None else
                "no model (standard-profile streams need none; a stream that names one loads it)")
        if self.decoder.restorer is not None:
            what += f"; restoring the pictures with {self.decoder.restorer.name}"
        self.get_logger().info(f"{what}, loaded in {time.monotonic() - t0:.1f} s")

        self._queue: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.received = 0              # messages received (the decoder's counts: self.decoder.counts)
        self.overflow_drops = 0        # packets dropped because decoding fell behind
        self.key_requests = 0
        self._last_key_request = 0.0
        self._dec_ms_total = 0.0
        self._lat_ms_total = 0.0
        self._dec_ms = Window(10.0)
        self._lat_ms = Window(10.0)
        self._fps = Window(10.0)

        out_qos = make_qos(out_rel, out_depth)
        self.pub_rgb = self.create_publisher(Image, "rgb/image", out_qos)
        self.pub_th = self.create_publisher(Image, "thermal/image", out_qos)
        self.pub_video = self._video_publishers(out_depth) if self.foxglove_video else {}
        self.create_subscription(EncodedFrame, "encoded", self._on_encoded, make_qos(in_rel, in_depth))
        self.key_client = self.create_client(Trigger, "request_key_frame")
        self.create_timer(0.05, self._maybe_request_key)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if self.diag_period > 0:
            self.create_timer(self.diag_period, self._publish_diagnostics)
        if self.log_period > 0:
            self.create_timer(self.log_period, self._log_stats)
        self.worker = threading.Thread(target=self._work, name="decoder_worker", daemon=True)
        self.worker.start()

    def _video_publishers(self, depth: int) -> dict:
        """CompressedVideo publishers per reference modality, or none (one warning) without
        foxglove_msgs. Reliable: a lost predicted frame would break the video to the next key frame."""
        try:
            from foxglove_msgs.msg import CompressedVideo
        except ImportError as exc:
            self.get_logger().warning(f"foxglove_video: foxglove_msgs is not importable ({exc}); "
                                      "not publishing CompressedVideo")
            self.foxglove_video = False
            return {}
        from mm_compress_ros.bag.foxglove import VIDEO_SUFFIX

        self._CompressedVideo = CompressedVideo
        qos = make_qos("reliable", depth)
        return {m: self.create_publisher(CompressedVideo, pub.topic_name + VIDEO_SUFFIX, qos)
                for m, pub in (("rgb", self.pub_rgb), ("thermal", self.pub_th))}

    # -- callbacks ------------------------------------------------------------------------------
    def _on_encoded(self, msg: EncodedFrame):
        with self._cv:
            self.received += 1
            if len(self._queue) >= self.max_queue:
                dropped = len(self._queue)
                self.overflow_drops += dropped
                self._queue.clear()
                self._log("overflow", "warning", f"decoder fell behind: backlog of {dropped} packets dropped")
            self._queue.append(msg)
            self._cv.notify()

    @property
    def waiting_for_key(self) -> bool:
        return self.decoder.waiting_for_key

    def _maybe_request_key(self):
        """Timer (executor thread): ask the encoder for a key frame while waiting for one."""
        want = self.decoder.want_key and self.decoder.waiting_for_key
        now = time.monotonic()
        if not want or now - self._last_key_request < self.key_request_interval:
            return
        if not self.key_client.service_is_ready():
            return
        self._last_key_request = now
        with self._lock:
            self.key_requests += 1
        self.key_client.call_async(Trigger.Request())

    # -- worker ---------------------------------------------------------------------------------
    def _work(self):
        while not self._stop.is_set():
            with self._cv:
                if not self._queue:
                    self._cv.wait(0.2)
                if not self._queue:
                    continue
                msg = self._queue.popleft()
            try:
                self._handle(msg)
            except Exception as exc:  # noqa: BLE001  (stay up; restart at the next key frame)
                self._log("error", "error", f"decoding failed: {type(exc).__name__}: {exc}", 2.0)
                self._say(self.decoder.error(exc))

    def _say(self, notes):
        for note in notes:
            level, period = NOTE_LOG[note.kind]
            self._log(note.kind, level, note.text, period)

    def _handle(self, msg: EncodedFrame):
        result = self.decoder.decode_message(msg)   # the packet parsed once, handed on in result.packet
        self._say(result.notes)
        pair = result.pair
        if pair is None:
            return
        self._publish(msg, pair)
        if self.pub_video:
            self._publish_video(msg, result.packet)
        now_ns = self.get_clock().now().nanoseconds
        latency_ms = (now_ns - stamp_to_ns(msg.header.stamp)) / 1e6
        self._dec_ms.add(result.decode_ms)
        self._lat_ms.add(latency_ms)
        self._fps.add(1.0)
        with self._lock:
            self._dec_ms_total += result.decode_ms
            self._lat_ms_total += latency_ms

    def _publish(self, msg: EncodedFrame, pair):
        """The decoded images with their inputs' headers and encodings (mm_compress_ros.io.encoded_frame)."""
        for modality, pub in (("rgb", self.pub_rgb), ("thermal", self.pub_th)):
            pixels, encoding, stamp, frame_id = decoded_image(msg, pair, modality)
            pub.publish(numpy_to_image(pixels, encoding, header=Header(stamp=stamp, frame_id=frame_id)))

    def _publish_video(self, msg: EncodedFrame, packet):
        """Every video layer of the packet (an 8-bit H.264/H.265 stream: RGB, and 8-bit thermal in
        the standard profile; mm_compress_ros.bag.foxglove.layer_videos), its access unit as a
        CompressedVideo on its modality's publisher (that modality's capture stamp and frame_id);
        nothing for a packet without one (learned profile)."""
        from mm_compress_ros.bag.foxglove import layer_videos

        _, videos = layer_videos(packet)
        if not videos:
            self._log("no video", "warning", "foxglove_video: the stream has no H.264/H.265 layer (learned codec): "
                                             "no video to publish", 60.0)
            return
        for modality, (fmt, au) in videos.items():
            stamp, frame_id = modality_header(msg, modality)
            out = self._CompressedVideo()
            out.timestamp, out.frame_id, out.format = stamp, frame_id, fmt
            out.data = array.array("B", au)  # the fast path of a uint8[] field
            self.pub_video[modality].publish(out)

    # -- reporting ------------------------------------------------------------------------------
    def stats(self) -> dict:
        lat = self._lat_ms.values()
        dec = self._dec_ms.values()
        c = self.decoder.counts
        with self._lock:
            s = {"received": self.received, "decoded": c.decoded, "restored": c.restored,
                 "skipped": c.skipped, "gaps": c.gaps, "lost": c.lost, "corrupt": c.corrupt,
                 "overflow_drops": self.overflow_drops, "key_requests": self.key_requests,
                 "thermal_max_error": "n/a" if c.thermal_max_error is None else c.thermal_max_error,
                 "decode_ms_mean_all": self._dec_ms_total / max(1, c.decoded),
                 "latency_ms_mean_all": self._lat_ms_total / max(1, c.decoded)}
        s.update({"waiting_for_key": self.waiting_for_key, "fps": self._fps.rate(),
                  "decode_ms_mean": mean(dec), "decode_ms_p95": percentile(dec, 95),
                  "latency_ms_mean": mean(lat), "latency_ms_p95": percentile(lat, 95),
                  "queue": len(self._queue)})
        return s

    def _log_stats(self):
        self.get_logger().info(self.stats_line())

    def stats_line(self) -> str:
        s = self.stats()
        return (
            f"decoded {s['decoded']}/{s['received']} | {s['fps']:.1f} fps | decode {s['decode_ms_mean']:.1f} ms "
            f"(p95 {s['decode_ms_p95']:.1f}) | latency {s['latency_ms_mean']:.1f} ms (p95 {s['latency_ms_p95']:.1f}) | "
            f"lost {s['lost']} | corrupt {s['corrupt']} | skipped {s['skipped']} | key requests {s['key_requests']}"
            f" | thermal max error {s['thermal_max_error']}" + (f" | restored {s['restored']}" if self.restore else ""))

    def _publish_diagnostics(self):
        s = self.stats()
        if s["waiting_for_key"] and s["received"]:
            level, message = "warn", "waiting for a key frame"
        elif s["corrupt"] or s["lost"] or s["overflow_drops"]:
            level, message = "warn", "decoding (packets were lost or corrupt)"
        else:
            level, message = "ok", "decoding"
        model = self.decoder.model
        self.diag_pub.publish(diagnostics(self, "decoder", model.model_id if model is not None else "", level,
                                          message, s))

    def destroy_node(self):
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self.worker.is_alive():
            self.worker.join(timeout=5.0)
        return super().destroy_node()


def main(argv=None) -> int:
    return spin_node(DecoderNode, "decoder_node", argv)


if __name__ == "__main__":
    sys.exit(main())
