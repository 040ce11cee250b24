"""Test process: calls a std_srvs/Trigger service once (bounded waits) and prints the response.

argv: service_name
"""
import sys

import rclpy
from std_srvs.srv import Trigger


def main():
    rclpy.init()
    node = rclpy.create_node("trigger_caller")
    client = node.create_client(Trigger, sys.argv[1])
    if not client.wait_for_service(timeout_sec=20.0):
        print("service not available", flush=True)
        sys.exit(2)
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=20.0)
    res = future.result()
    if res is None:
        print("no response", flush=True)
        sys.exit(3)
    print(f"success={res.success} message={res.message}", flush=True)
    rclpy.shutdown()


if __name__ == "__main__":
    main()
