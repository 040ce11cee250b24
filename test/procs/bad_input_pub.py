"""Test process: feeds an encoder_node the bad inputs of docs/reliability.md ("Bad input at the
nodes"), phase by phase, and writes one JSON line per published pair (phase, stamps, sizes).

argv: out.jsonl [rate_hz]. Waits (bounded) for a subscriber on both topics (the encoder, which
subscribes only once its model is loaded), then publishes, best effort like a camera driver:

  rgb_first   RGB only for 2.5 s (the thermal camera not started yet: the encoder says so before
              the first thermal image ever came)
  normal      8 pairs 160x128 rgb8 / mono8
  unsupported 4 pairs bayer_rggb8 / 32FC1 (well-formed messages, encodings the codec cannot take)
  after_bad   4 pairs as `normal`
  truncated   3 pairs whose RGB message carries half of its step*height bytes
  resized     6 pairs 96x64 (size change mid-stream)
  no_thermal  RGB only for 3.5 s (thermal camera silent)
  resumed     6 pairs 96x64
  stale       1 pair stamped 0.3 s before the last `resumed` pair (out of order, not a reset)
  clock_back  6 pairs stamped 20 s in the past (clock reset: stamps go backwards for good)

Between phases it pauses ``PAUSE`` s (stamps stay < 1 s apart, so no stamp-gap key frame), so
that the encoder's keep-newest slot does not let one phase's pairs replace the previous one's.
Image content: a smooth moving gradient, so that the codec has something real to code.
"""
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from mm_compress_ros.io.ros_image import numpy_to_image

PAUSE = 0.6


def scene(w, h, t):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.5 * np.sin((x + 3 * t) / 17.0) * np.cos((y - 2 * t) / 13.0)
    rgb = np.stack([base, 1.0 - base, 0.5 * base + 0.25], axis=-1)
    thermal = 0.3 + 0.6 * np.exp(-(((x - w / 2 - 2 * t) / (w / 5)) ** 2 + ((y - h / 2) / (h / 4)) ** 2))
    return (rgb * 255).astype(np.uint8), (np.clip(thermal, 0, 1) * 255).astype(np.uint8)


def raw_image(encoding, w, h, bytes_per_pixel, stamp_ns, frame_id):
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.width, msg.height, msg.encoding = w, h, encoding
    msg.is_bigendian = 0
    msg.step = w * bytes_per_pixel
    msg.data = bytes(np.random.default_rng(0).integers(0, 256, msg.step * h, dtype=np.uint8))
    return msg


def main():
    out_path = sys.argv[1]
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
    period = 1.0 / rate
    rclpy.init()
    node = rclpy.create_node("bad_input_pub")
    pub_rgb = node.create_publisher(Image, "rgb/image", qos_profile_sensor_data)
    pub_th = node.create_publisher(Image, "thermal/image", qos_profile_sensor_data)
    deadline = time.monotonic() + 60
    while min(pub_rgb.get_subscription_count(), pub_th.get_subscription_count()) == 0 \
            and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"subscribers={pub_rgb.get_subscription_count()}", flush=True)
    time.sleep(1.0)
    out = open(out_path, "w")
    frame = [0]
    last_stamp = [0]

    def now_ns():
        return node.get_clock().now().nanoseconds

    def send(phase, w=160, h=128, rgb_enc="rgb8", th_enc="mono8", stamp=None, thermal=True,
             truncate=False):
        stamp = now_ns() if stamp is None else stamp
        t = frame[0]
        frame[0] += 1
        if rgb_enc == "rgb8":
            rgb, th = scene(w, h, t)
            rmsg = numpy_to_image(rgb, "rgb8")
            rmsg.header.stamp.sec, rmsg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            rmsg.header.frame_id = "rgb"
            tmsg = numpy_to_image(th, th_enc)
            tmsg.header = rmsg.header.__class__(stamp=rmsg.header.stamp, frame_id="thermal")
            if truncate:
                rmsg.data = bytes(rmsg.data)[: len(rmsg.data) // 2]
        else:
            rmsg = raw_image(rgb_enc, w, h, 1, stamp, "rgb")
            tmsg = raw_image(th_enc, w, h, 4, stamp, "thermal")
        pub_rgb.publish(rmsg)
        if thermal:
            pub_th.publish(tmsg)
        last_stamp[0] = stamp
        out.write(json.dumps({"phase": phase, "stamp": stamp, "width": w, "height": h,
                              "rgb_encoding": rgb_enc, "thermal": thermal}) + "\n")
        out.flush()
        time.sleep(period)

    def pause():
        time.sleep(PAUSE)

    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        send("rgb_first", thermal=False)
    pause()
    for _ in range(8):
        send("normal")
    pause()
    for _ in range(4):
        send("unsupported", rgb_enc="bayer_rggb8", th_enc="32FC1")
    pause()
    for _ in range(4):
        send("after_bad")
    pause()
    for _ in range(3):
        send("truncated", truncate=True)
    pause()
    for _ in range(6):
        send("resized", 96, 64)
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        send("no_thermal", 96, 64, thermal=False)
    for _ in range(6):
        send("resumed", 96, 64)
    pause()
    send("stale", 96, 64, stamp=last_stamp[0] - 300_000_000)
    pause()
    back = now_ns() - 20_000_000_000
    for i in range(6):
        send("clock_back", 96, 64, stamp=back + int(i * period * 1e9))
    time.sleep(1.0)
    out.close()
    print("done", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
