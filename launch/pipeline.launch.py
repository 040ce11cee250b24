"""sample_publisher -> encoder_node -> decoder_node, each with its YAML in config/.

    ros2 launch mm_compress_ros pipeline.launch.py                 # built-in synthetic scene
    ros2 launch mm_compress_ros pipeline.launch.py path:=/data/seq  # <seq>/{rgb,thermal}/ or {rgb,thermal}.mp4

Topics: rgb/image + thermal/image (input) -> encoded -> decoded/rgb/image + decoded/thermal/image.
Launch arguments: path, device, namespace, fastdds_profile. The node table below is plain data:
mm_compress_ros/ros/launch_table.py starts the same executables with the same parameter files,
remappings and launch-argument defaults as separate processes (make demo; the tests through
test/conftest.py::start_launch); test/test_launch_files.py checks the table
(test_node_table_executables_parameters_and_remappings, test_pipeline_topics_connect).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "mm_compress_ros"

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
    share = get_package_share_directory(PACKAGE)
    actions = [
        DeclareLaunchArgument("fastdds_profile", default_value=os.path.join(share, "config", "fastdds_shm.xml"),
                              description="Fast DDS profile (16 MiB shared-memory segment for large images)"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")),
    ]
    actions += [DeclareLaunchArgument(k, default_value=v) for k, v in ARGS.items()]
    for spec in NODES:
        actions.append(Node(
            package=PACKAGE,
            executable=spec["executable"],
            name=spec["name"],
            namespace=LaunchConfiguration("namespace"),
            parameters=[os.path.join(share, "config", spec["params"])]
            + [{p: ParameterValue(LaunchConfiguration(a), value_type=str)} for p, a in spec["param_args"].items()],
            remappings=[(src, LaunchConfiguration(arg)) for src, arg in spec["remap"].items()],
            output="screen",
            emulate_tty=True,
        ))
    return LaunchDescription(actions)
