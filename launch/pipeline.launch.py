"""sample_publisher -> encoder_node -> decoder_node, each with its YAML in config/.

    ros2 launch mm_compress_ros pipeline.launch.py                 # built-in synthetic scene
    ros2 launch mm_compress_ros pipeline.launch.py path:=/data/seq  # <seq>/{rgb,thermal}/ or {rgb,thermal}.mp4

Topics: rgb/image + thermal/image (input) -> encoded -> decoded/rgb/image + decoded/thermal/image.
Launch arguments: path, device, namespace, the topics below, fastdds_profile (no params_file:
each node reads its own file in config/). The tables are plain data:
mm_compress_ros/ros/launch_description.py builds the LaunchDescription from them, and
mm_compress_ros/ros/launch_table.py starts the same executables with the same parameter files,
remappings and launch-argument defaults as separate processes (make demo; the tests through
test/conftest.py::start_launch); test/test_launch_files.py checks the tables
(test_node_table_executables_parameters_and_remappings, test_pipeline_topics_connect) and the
builder.
"""
from mm_compress_ros.ros.launch_description import build

ARGS = {
    "namespace": "",
    "path": "",
    "device": "auto",
    "rgb_topic": "rgb/image",
    "thermal_topic": "thermal/image",
    "encoded_topic": "encoded",
    "decoded_rgb_topic": "decoded/rgb/image",
    "decoded_thermal_topic": "decoded/thermal/image",
}

NODES = [
    {
        "executable": "sample_publisher",
        "name": "sample_publisher",
        "params": "sample_publisher.yaml",
        "remap": {"rgb/image": "rgb_topic", "thermal/image": "thermal_topic"},
        "param_args": {"path": "path"},
    },
    {
        "executable": "encoder_node",
        "name": "encoder_node",
        "params": "encoder.yaml",
        "remap": {"rgb/image": "rgb_topic", "thermal/image": "thermal_topic", "encoded": "encoded_topic"},
        "param_args": {"device": "device"},
    },
    {
        "executable": "decoder_node",
        "name": "decoder_node",
        "params": "decoder.yaml",
        "remap": {"encoded": "encoded_topic", "rgb/image": "decoded_rgb_topic",
                  "thermal/image": "decoded_thermal_topic"},
        "param_args": {"device": "device"},
    },
]


def generate_launch_description():
    return build(ARGS, NODES)
