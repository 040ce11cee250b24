"""Test process: a lossy link between encoder and decoder.

Subscribes ``encoded`` and republishes every EncodedFrame on ``encoded_lossy`` except the
sequences listed in --drop; the packets of the sequences in --corrupt are republished with bytes
flipped in the middle of their payload (what a broken link or storage does). Writes one JSON line
per message it handled.

argv: out.jsonl --drop 3,4 --corrupt 9
"""
import argparse
import json
import sys

import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args

from mm_compress_ros.msg import EncodedFrame


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--drop", default="")
    ap.add_argument("--corrupt", default="")
    args = ap.parse_args(remove_ros_args(sys.argv)[1:])
    drop = {int(x) for x in args.drop.split(",") if x}
    corrupt = {int(x) for x in args.corrupt.split(",") if x}
    rclpy.init()
    node = rclpy.create_node("lossy_relay")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=20, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(EncodedFrame, "encoded_lossy", qos)
    out = open(args.out, "w")

    def on_msg(msg: EncodedFrame):
        seq = int(msg.sequence)
        action = "drop" if seq in drop else "corrupt" if seq in corrupt else "pass"
        if action == "corrupt":
            data = bytearray(msg.data)
            mid = len(data) // 2
            for i in range(mid, min(len(data) - 4, mid + 16)):
                data[i] ^= 0xA5
            msg.data = bytes(data)
        if action != "drop":
            pub.publish(msg)
        out.write(json.dumps({"sequence": seq, "frame_type": int(msg.frame_type), "action": action}) + "\n")
        out.flush()

    node.create_subscription(EncodedFrame, "encoded", on_msg, qos)
    print("relay ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        out.close()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
