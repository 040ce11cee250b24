"""Do best-effort 640x480 rgb8 images get from one process to another, with and without
config/fastdds_shm.xml?  Run inside the ROS environment (source scripts/ros_env.sh):

    python benchmarks/dds_large_images.py --runs 3 --count 50

Each run starts a subscriber and a publisher process on a fresh ROS_DOMAIN_ID and counts the
images that arrive.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pub(count: int, period: float) -> None:
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_pub")
    p = node.create_publisher(Image, "image", qos_profile_sensor_data)
    end = time.monotonic() + 20
    while p.get_subscription_count() == 0 and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)
    msg = Image(height=480, width=640, encoding="rgb8", step=1920)
    msg.data = np.random.default_rng(0).integers(0, 256, 640 * 480 * 3, dtype=np.uint8).tobytes()
    for i in range(count):
        msg.header.frame_id = str(i)
        p.publish(msg)
        time.sleep(period)
    time.sleep(1.0)
    rclpy.shutdown()


def sub(count: int, seconds: float) -> None:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_sub")
    got = []
    node.create_subscription(Image, "image", lambda m: got.append(m.header.frame_id), qos_profile_sensor_data)
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(got) < count:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(len(got), flush=True)
    rclpy.shutdown()


def one_run(profile: str | None, count: int, period: float) -> int:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.randrange(1, 230))
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
    me = [sys.executable, __file__]
    s = subprocess.Popen(me + ["--role", "sub", "--count", str(count)], env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    p = subprocess.Popen(me + ["--role", "pub", "--count", str(count), "--period", str(period)], env=env)
    out, _ = s.communicate(timeout=120)
    p.wait(timeout=60)
    return int(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=["pub", "sub"])
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--period", type=float, default=0.05)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.role == "pub":
        pub(args.count, args.period)
        return 0
    if args.role == "sub":
        sub(args.count, 15.0)
        return 0
    profile = str(REPO / "config" / "fastdds_shm.xml")
    print(f"{args.count} best-effort 640x480 rgb8 images per run, one every {args.period * 1000:.0f} ms")
    for label, prof in (("default Fast DDS transports", None), ("config/fastdds_shm.xml", profile)):
        got = [one_run(prof, args.count, args.period) for _ in range(args.runs)]
        print(f"{label:<30} received per run: {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
