"""Launch encoder_node with config/encoder.yaml (ros2 launch mm_compress_ros encoder.launch.py).

Launch arguments: params_file, namespace, rgb_topic, thermal_topic, encoded_topic,
fastdds_profile. The node table below is plain data: mm_compress_ros/ros/launch_table.py starts the
same executables with the same parameter files and remappings as separate processes (make demo;
the tests through test/conftest.py::start_launch);
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

# Launch arguments and their defaults.
ARGS = {
    "namespace": "",
    "rgb_topic": "rgb/image",
    "thermal_topic": "thermal/image",
    "encoded_topic": "encoded",
}

# executable, node name, parameter file in share/mm_compress_ros/config, remappings
# (topic in the node -> launch argument naming the topic), parameters set from launch arguments.
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
    share = get_package_share_directory(PACKAGE)
    actions = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", NODES[0]["params"]),
                              description="encoder_node parameters"),
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
