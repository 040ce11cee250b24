"""Test process: a camera driver that is not ours. Publishes real frame pairs (M3SVD m3svd_seq,
640x480) as sensor_msgs/Image, ``rgb8`` on ``rgb/image`` and ``mono8`` on ``thermal/image``, with
capture stamps from the node clock (thermal 2 ms after RGB, as a second camera would), frame ids
``rgb_optical`` / ``thermal_optical``, at a fixed rate, with the QoS a driver picks. Whatever Fast DDS
configuration it runs with is the environment's: the test starts it with or without
``FASTDDS_DEFAULT_PROFILES_FILE``.

argv: SEQ_DIR COUNT RATE_HZ RELIABILITY(reliable|best_effort) DEPTH SENT_JSONL

Waits (bounded) until both topics have had a subscriber for 1.5 s on end, publishes COUNT
pairs, writes one JSON line per pair sent (``stamp`` in ns), then, for a reliable writer, waits
(bounded) until every sample is acknowledged before it leaves (a writer that exits early takes
unacknowledged samples with it).
"""
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from mm_compress_ros.io.frames import read_rgb, read_thermal
from mm_compress_ros.io.ros_image import numpy_to_image


def main():
    seq, count, rate, reliability, depth, sent_path = sys.argv[1:7]
    count, rate, depth = int(count), float(rate), int(depth)
    frames = []
    for i in range(min(count, 20)):
        rgb = read_rgb(f"{seq}/rgb/{i:04d}.png")
        th = read_thermal(f"{seq}/thermal/{i:04d}.png")
        th = th if th.dtype == np.uint8 else (th >> 8).astype(np.uint8)
        frames.append((numpy_to_image(rgb, "rgb8"), numpy_to_image(th, "mono8")))
    rclpy.init()
    node = rclpy.create_node("foreign_camera")
    rel = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}[reliability]
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel,
                     durability=DurabilityPolicy.VOLATILE)
    pub_rgb = node.create_publisher(Image, "rgb/image", qos)
    pub_th = node.create_publisher(Image, "thermal/image", qos)
    # Both topics subscribed for 1.5 s on end (a subscriber that makes its subscription again, as
    # encoder_node does to follow this writer's reliability, is waited for); at most 30 s.
    deadline = time.monotonic() + 30
    since = None
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if min(pub_rgb.get_subscription_count(), pub_th.get_subscription_count()) == 0:
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= 1.5:
            break
    print(f"subscribers rgb={pub_rgb.get_subscription_count()} thermal={pub_th.get_subscription_count()}",
          flush=True)
    with open(sent_path, "w") as sent:
        start = time.monotonic()
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            rgb_msg, th_msg = frames[i % len(frames)]
            now = node.get_clock().now()
            rgb_msg.header.stamp = now.to_msg()
            rgb_msg.header.frame_id = "rgb_optical"
            th_msg.header.stamp = (now + Duration(nanoseconds=2_000_000)).to_msg()
            th_msg.header.frame_id = "thermal_optical"
            pub_rgb.publish(rgb_msg)
            pub_th.publish(th_msg)
            sent.write(json.dumps({"i": i, "stamp": now.nanoseconds}) + "\n")
            sent.flush()
    if rel == ReliabilityPolicy.RELIABLE:
        acked = all(p.wait_for_all_acked(Duration(seconds=10)) for p in (pub_rgb, pub_th))
        print(f"all acknowledged: {acked}", flush=True)
    time.sleep(1.0)
    print(f"published {count}", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
