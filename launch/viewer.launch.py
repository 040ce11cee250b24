"""Launch viewer_node with config/viewer.yaml (ros2 launch mm_compress_ros viewer.launch.py),
then open http://localhost:8088 in a browser.

Launch arguments: params_file, namespace, rgb_topic, thermal_topic (the decoder's outputs, as
decoder.launch.py and pipeline.launch.py name them), encoded_topic, key_frame_service (the
encoder's std_srvs/Trigger), encoder_node (whose quality / target_kbps the page sets), host, port,
fastdds_profile. host: 127.0.0.1 by default; any other address serves the page, without
authentication, to everyone who can reach the port (docs/ros.md, viewer_node).

The node table below is plain data: mm_compress_ros/ros/launch_table.py starts the same executable
with the same parameter file and remappings as a separate process (the tests through
test/conftest.py::start_launch); test/test_viewer.py checks the table.
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

# ROS types of the parameters set from launch arguments (launch arguments are strings).
PARAM_TYPES = {"port": int}


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    actions = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", NODES[0]["params"]),
                              description="viewer_node parameters"),
        DeclareLaunchArgument("fastdds_profile", default_value=os.path.join(share, "config", "fastdds_shm.xml"),
                              description="Fast DDS profile (16 MiB shared-memory segment for large images)"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")),
    ]
    actions += [DeclareLaunchArgument(k, default_value=str(v)) for k, v in ARGS.items()]
    for spec in NODES:
        actions.append(Node(
            package=PACKAGE,
            executable=spec["executable"],
            name=spec["name"],
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file")]
            + [{p: ParameterValue(LaunchConfiguration(a), value_type=PARAM_TYPES.get(p, str))}
               for p, a in spec["param_args"].items()],
            remappings=[(src, LaunchConfiguration(arg)) for src, arg in spec["remap"].items()],
            output="screen",
            emulate_tty=True,
        ))
    return LaunchDescription(actions)
