"""Test process: counts sensor_msgs/Image on ``image`` (best effort) for a bounded time and
prints one line ``received N valid M`` (valid: size, encoding and the index pixel are right)."""
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from mm_compress_ros.io.ros_image import image_to_numpy


def main():
    expected, seconds = int(sys.argv[1]), float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("image_test_sub")
    got, valid = [], [0]

    def cb(msg):
        got.append(msg.header.frame_id)
        arr = image_to_numpy(msg)
        i = int(msg.header.frame_id)
        if arr.shape == (480, 640, 3) and tuple(arr[0, 0]) == (i, 255 - i, 7):
            valid[0] += 1

    node.create_subscription(Image, "image", cb, qos_profile_sensor_data)
    print("subscribed", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(got) < expected:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"received {len(got)} valid {valid[0]}", flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
