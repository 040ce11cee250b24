"""Test process: publishes N mm_compress_ros/msg/EncodedFrame messages with known content.

argv: count payload_bytes seed. Waits (bounded) for a subscriber, publishes reliably with a small
period, then stays up briefly so that the last messages are delivered.
"""
import hashlib
import random
import sys
import time

import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from mm_compress_ros.msg import EncodedFrame


def payload(seed: int, i: int, size: int) -> bytes:
    return random.Random(seed * 1_000_003 + i).randbytes(size)


def main():
    count, size, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node("encoded_frame_test_pub")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=count, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(EncodedFrame, "encoded", qos)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"subscribers={pub.get_subscription_count()}", flush=True)
    time.sleep(0.5)
    for i in range(count):
        msg = EncodedFrame()
        msg.header.stamp.sec = 1_700_000_000 + i
        msg.header.stamp.nanosec = 123_456_789
        msg.header.frame_id = "rgb_optical_frame"
        msg.thermal_stamp.sec = 1_700_000_000 + i
        msg.thermal_stamp.nanosec = 100_000_000 + i
        msg.thermal_frame_id = "thermal_optical_frame"
        msg.rgb_encoding = "rgb8"
        msg.thermal_encoding = "mono16"
        msg.sequence = 2**40 + i
        msg.frame_type = EncodedFrame.FRAME_KEY if i % 5 == 0 else EncodedFrame.FRAME_PREDICTED
        msg.codec = "test-codec"
        msg.quality = 3
        data = payload(seed, i, size)
        msg.data = data
        pub.publish(msg)
        print(f"published {i} sha={hashlib.sha256(data).hexdigest()}", flush=True)
        time.sleep(0.02)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
