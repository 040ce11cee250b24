"""Launch decoder_node with config/decoder.yaml (ros2 launch mm_compress_ros decoder.launch.py).

Launch arguments: params_file, namespace, encoded_topic, rgb_topic, thermal_topic (the decoded
outputs), fastdds_profile. The node table below is plain data: mm_compress_ros/ros/launch_table.py
starts the same executables with the same parameter files and remappings as separate processes
(make demo; the tests through test/conftest.py::start_launch);
test/test_launch_files.py::test_node_table_executables_parameters_and_remappings checks the table.
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
    share = get_package_share_directory(PACKAGE)
    actions = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", NODES[0]["params"]),
                              description="decoder_node parameters"),
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
            parameters=[LaunchConfiguration("params_file")]
            + [{p: ParameterValue(LaunchConfiguration(a), value_type=str)} for p, a in spec["param_args"].items()],
            remappings=[(src, LaunchConfiguration(arg)) for src, arg in spec["remap"].items()],
            output="screen",
            emulate_tty=True,
        ))
    return LaunchDescription(actions)
