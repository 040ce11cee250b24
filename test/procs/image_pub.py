"""Test process: publishes N 640x480 rgb8 sensor_msgs/Image with sensor-data QoS (best effort).

argv: count period_s. Waits (bounded) for a subscriber first; each image's first bytes carry
its index so the receiver can check the content.
"""
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data

from mm_compress_ros.io.ros_image import numpy_to_image
from sensor_msgs.msg import Image


def main():
    count, period = int(sys.argv[1]), float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("image_test_pub")
    pub = node.create_publisher(Image, "image", qos_profile_sensor_data)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"subscribers={pub.get_subscription_count()}", flush=True)
    time.sleep(1.0)
    img = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for i in range(count):
        img[0, 0, :] = (i, 255 - i, 7)
        msg = numpy_to_image(img, "rgb8")
        msg.header.frame_id = f"{i}"
        pub.publish(msg)
        time.sleep(period)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
