"""Test process: reads parameters of another node through its parameter services (bounded waits)
and prints them as one JSON line.

argv: node_name param [param ...]
"""
import json
import sys

import rclpy
from rclpy.parameter import parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient


def main():
    rclpy.init()
    node = rclpy.create_node("param_reader")
    client = AsyncParameterClient(node, sys.argv[1])
    if not client.wait_for_services(timeout_sec=20.0):
        print("parameter services not available", flush=True)
        sys.exit(2)
    future = client.get_parameters(sys.argv[2:])
    rclpy.spin_until_future_complete(node, future, timeout_sec=20.0)
    res = future.result()
    if res is None:
        print("no response", flush=True)
        sys.exit(3)
    print(json.dumps({n: parameter_value_to_python(v) for n, v in zip(sys.argv[2:], res.values)}), flush=True)
    rclpy.shutdown()


if __name__ == "__main__":
    main()
