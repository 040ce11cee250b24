"""Launch viewer_node with config/viewer.yaml (ros2 launch mm_compress_ros viewer.launch.py),
then open http://localhost:8088 in a browser.

Launch arguments: params_file, namespace, rgb_topic, thermal_topic (the decoder's outputs, as
decoder.launch.py and pipeline.launch.py name them), encoded_topic, key_frame_service (the
encoder's std_srvs/Trigger), encoder_node (whose quality / target_kbps the page sets), host, port
(an int parameter, as its default), fastdds_profile. host: 127.0.0.1 by default; any other address
serves the page, without authentication, to everyone who can reach the port (docs/ros.md,
viewer_node).

The tables are plain data: mm_compress_ros/ros/launch_description.py builds the
LaunchDescription from them, and mm_compress_ros/ros/launch_table.py starts the same executable
with the same parameter file and remappings as a separate process (the tests through
test/conftest.py::start_launch); test/test_viewer.py checks the tables, test/test_launch_files.py
the builder.
"""
from mm_compress_ros.ros.launch_description import build

ARGS = {
    "namespace": "",
    "rgb_topic": "decoded/rgb/image",
    "thermal_topic": "decoded/thermal/image",
    "encoded_topic": "encoded",
    "key_frame_service": "request_key_frame",
    "encoder_node": "encoder_node",
    "host": "127.0.0.1",
    "port": 8088,
}

NODES = [
    {
        "executable": "viewer_node",
        "name": "viewer_node",
        "params": "viewer.yaml",
        "remap": {"rgb/image": "rgb_topic", "thermal/image": "thermal_topic", "encoded": "encoded_topic",
                  "request_key_frame": "key_frame_service"},
        "param_args": {"host": "host", "port": "port", "encoder_node": "encoder_node"},
    },
]


def generate_launch_description():
    return build(ARGS, NODES)
