"""Launch decoder_node with config/decoder.yaml (ros2 launch mm_compress_ros decoder.launch.py).

Launch arguments: params_file, namespace, encoded_topic, rgb_topic, thermal_topic (the decoded
outputs), fastdds_profile. The tables are plain data: mm_compress_ros/ros/launch_description.py
builds the LaunchDescription from them, and mm_compress_ros/ros/launch_table.py starts the same
executables with the same parameter files and remappings as separate processes (make demo; the
tests through test/conftest.py::start_launch); test/test_launch_files.py checks the tables and the
builder.
"""
from mm_compress_ros.ros.launch_description import build

ARGS = {
    "namespace": "",
    "encoded_topic": "encoded",
    "rgb_topic": "decoded/rgb/image",
    "thermal_topic": "decoded/thermal/image",
}

NODES = [
    {
        "executable": "decoder_node",
        "name": "decoder_node",
        "params": "decoder.yaml",
        "remap": {"encoded": "encoded_topic", "rgb/image": "rgb_topic", "thermal/image": "thermal_topic"},
        "param_args": {},
    },
]


def generate_launch_description():
    return build(ARGS, NODES)
