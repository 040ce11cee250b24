"""Test process: subscribes mm_compress_ros/msg/EncodedFrame and writes one JSON line per message.

argv: out.jsonl expected_count. Exits when expected_count messages arrived (the test also bounds
its run time and stops it by PID).
"""
import hashlib
import json
import sys

import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from mm_compress_ros.msg import EncodedFrame


def main():
    out_path, expected = sys.argv[1], int(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("encoded_frame_test_sub")
    out = open(out_path, "w")
    got = [0]

    def on_msg(msg: EncodedFrame):
        data = bytes(msg.data)
        out.write(json.dumps({
            "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
            "frame_id": msg.header.frame_id,
            "thermal_stamp": [msg.thermal_stamp.sec, msg.thermal_stamp.nanosec],
            "thermal_frame_id": msg.thermal_frame_id,
            "rgb_encoding": msg.rgb_encoding,
            "thermal_encoding": msg.thermal_encoding,
            "sequence": msg.sequence,
            "frame_type": msg.frame_type,
            "codec": msg.codec,
            "quality": msg.quality,
            "size": len(data),
            "sha": hashlib.sha256(data).hexdigest(),
        }) + "\n")
        out.flush()
        got[0] += 1

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(expected, 1),
                     reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(EncodedFrame, "encoded", on_msg, qos)
    print("subscribed", flush=True)
    try:
        while rclpy.ok() and got[0] < expected:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    out.close()
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
