"""Test process: watches encoder_node from the outside. One JSON line per observation:

* ``{"kind": "encoded", "stamp": ns, "thermal_stamp": ns, "sequence", "frame_type", "size"}`` per
  EncodedFrame on ``encoded`` (reliable, as the encoder publishes it, deep history);
* ``{"kind": "diagnostics", "name", "level", "message", "values": {...}}`` per status on
  ``/diagnostics`` (the encoder's counters: rgb_received, thermal_received, frames, drops, ...);
* ``{"kind": "decoded", "modality", "stamp"}`` per image on ``decoded/rgb/image`` and
  ``decoded/thermal/image`` (best effort, as decoder_node publishes them).

argv: OUT_JSONL. Prints ``watch ready`` once subscribed; runs until SIGINT / SIGTERM.
"""
import json
import signal
import sys
import threading

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from mm_compress_ros.msg import EncodedFrame


def ns(t) -> int:
    return t.sec * 1_000_000_000 + t.nanosec


def main():
    out = open(sys.argv[1], "w")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("encoder_watch")

    def write(row):
        out.write(json.dumps(row) + "\n")
        out.flush()

    def on_encoded(msg):
        write({"kind": "encoded", "stamp": ns(msg.header.stamp), "thermal_stamp": ns(msg.thermal_stamp),
               "sequence": msg.sequence, "frame_type": msg.frame_type, "size": len(msg.data)})

    def on_diag(msg):
        for st in msg.status:
            write({"kind": "diagnostics", "name": st.name, "level": int.from_bytes(st.level, "little")
                   if isinstance(st.level, bytes) else int(st.level), "message": st.message,
                   "values": {kv.key: kv.value for kv in st.values}})

    def on_decoded(modality):
        return lambda msg: write({"kind": "decoded", "modality": modality, "stamp": ns(msg.header.stamp)})

    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
    best_effort = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    node.create_subscription(EncodedFrame, "encoded", on_encoded, reliable)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, reliable)
    node.create_subscription(Image, "decoded/rgb/image", on_decoded("rgb"), best_effort)
    node.create_subscription(Image, "decoded/thermal/image", on_decoded("thermal"), best_effort)
    print("watch ready", flush=True)
    while not stop.is_set():
        rclpy.spin_once(node, timeout_sec=0.1)
    out.close()
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
