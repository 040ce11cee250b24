"""Launch encoder_node with config/encoder.yaml (ros2 launch mm_compress_ros encoder.launch.py).

Launch arguments: params_file, namespace, rgb_topic, thermal_topic, encoded_topic,
fastdds_profile. The tables are plain data: mm_compress_ros/ros/launch_description.py builds the
LaunchDescription from them, and mm_compress_ros/ros/launch_table.py starts the same executables
with the same parameter files and remappings as separate processes (make demo; the tests through
test/conftest.py::start_launch); test/test_launch_files.py checks the tables and the builder.
"""
from mm_compress_ros.ros.launch_description import build

ARGS = {
    "namespace": "",
    "rgb_topic": "rgb/image",
    "thermal_topic": "thermal/image",
    "encoded_topic": "encoded",
}

NODES = [
    {
        "executable": "encoder_node",
        "name": "encoder_node",
        "params": "encoder.yaml",
        "remap": {"rgb/image": "rgb_topic", "thermal/image": "thermal_topic", "encoded": "encoded_topic"},
        "param_args": {},
    },
]


def generate_launch_description():
    return build(ARGS, NODES)
