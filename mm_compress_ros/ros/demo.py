"""`make demo` (phase 1): two processes exchange mm_compress_ros/msg/EncodedFrame over DDS.

Replaced by the sample -> encoder -> decoder pipeline once the codec nodes land.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def _pub(count: int) -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from mm_compress_ros.msg import EncodedFrame

    rclpy.init()
    node = rclpy.create_node("mmc_demo_pub")
    pub = node.create_publisher(EncodedFrame, "encoded", QoSProfile(depth=count, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    for i in range(count):
        msg = EncodedFrame(sequence=i, codec="demo", frame_type=EncodedFrame.FRAME_KEY)
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = "rgb"
        msg.data = bytes([i % 256]) * 100_000
        pub.publish(msg)
        time.sleep(0.1)
    time.sleep(1.0)
    rclpy.shutdown()
    return 0


def _sub(count: int) -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.time import Time

    from mm_compress_ros.msg import EncodedFrame

    rclpy.init()
    node = rclpy.create_node("mmc_demo_sub")
    got = []

    def cb(msg):
        lat = (node.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6
        got.append(msg.sequence)
        print(f"received EncodedFrame seq={msg.sequence} bytes={len(msg.data)} latency={lat:.1f} ms", flush=True)

    node.create_subscription(EncodedFrame, "encoded", cb, QoSProfile(depth=count, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    rclpy.shutdown()
    return 0 if len(got) == count else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--role", choices=["pub", "sub"])
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--data", default=None, help="ignored until the codec pipeline lands")
    args = ap.parse_args(argv)
    if args.role == "pub":
        return _pub(args.count)
    if args.role == "sub":
        return _sub(args.count)
    print(f"demo: EncodedFrame exchange between two processes (ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')})")
    sub = subprocess.Popen([sys.executable, "-m", "mm_compress_ros.ros.demo", "--role", "sub", "--count", str(args.count)])
    pub = subprocess.Popen([sys.executable, "-m", "mm_compress_ros.ros.demo", "--role", "pub", "--count", str(args.count)])
    try:
        rc = sub.wait(timeout=90)
    finally:
        for p in (pub, sub):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
    return rc


if __name__ == "__main__":
    sys.exit(main())
