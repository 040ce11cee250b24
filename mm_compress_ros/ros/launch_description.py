"""The one LaunchDescription builder of the launch files in ``launch/``.

Each launch file is its docstring, two plain-data tables and one line::

    from mm_compress_ros.ros.launch_description import build

    ARGS = {"namespace": "", "encoded_topic": "encoded", ...}   # launch arguments and defaults
    NODES = [{"executable": ..., "name": ..., "params": "<file in config/>",
              "remap": {<topic in the node>: <launch argument naming it>},
              "param_args": {<parameter>: <launch argument setting it>}}]

    def generate_launch_description():
        return build(ARGS, NODES)

:func:`plan` turns the tables into plain data: the launch arguments in order with their
defaults, the environment variables set from them, and each node's parameters and remappings.
:func:`build` maps that plan onto ``launch`` / ``launch_ros`` actions and imports those packages
only when called (they come with a ROS install; they are not installable from the registries used
here). ``launch_table.node_commands`` turns the same plan into separate processes (``make demo``,
the tests), so the rules below are written once:

* every launch file declares ``fastdds_profile`` (default ``config/fastdds_shm.xml``) and sets
  ``FASTDDS_DEFAULT_PROFILES_FILE`` from it (a 16 MiB shared-memory segment for large images);
* a launch file with one node declares ``params_file`` (default ``config/<its params>``), which
  that node reads; with several nodes each node reads its own file from ``config/``;
* every node runs in the namespace of the ``namespace`` argument, its output on the screen;
* a parameter set from a launch argument (``param_args``) has the type of that argument's default
  (``port``: int), str otherwise; launch arguments themselves are strings.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

PACKAGE = "mm_compress_ros"
FASTDDS_PROFILE = "fastdds_shm.xml"
FASTDDS_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
FASTDDS_DESCRIPTION = "Fast DDS profile (16 MiB shared-memory segment for large images)"


@dataclass(frozen=True)
class Arg:
    """The value of a launch argument (``LaunchConfiguration(name)``)."""
    name: str


@dataclass(frozen=True)
class Typed:
    """A parameter value from a launch argument, as a ROS type (``ParameterValue``)."""
    arg: Arg
    type: type


@dataclass
class Declare:
    """``DeclareLaunchArgument``; no description: launch's own default text."""
    name: str
    default: str
    description: str | None = None


@dataclass
class SetEnv:
    """``SetEnvironmentVariable(name, value)``."""
    name: str
    value: Arg


@dataclass
class NodeAction:
    """A launch_ros ``Node``. ``parameters``: a parameter file (path, or Arg naming it) and then
    ``{parameter: Typed}`` dicts; ``remappings``: (topic in the node, Arg naming the topic)."""
    executable: str
    name: str
    namespace: Arg
    parameters: list = field(default_factory=list)
    remappings: list = field(default_factory=list)
    package: str = PACKAGE
    output: str = "screen"
    emulate_tty: bool = True


def _value_type(default) -> type:
    return type(default) if isinstance(default, (bool, int, float)) else str


def plan(args: dict, nodes: list[dict], share: str) -> list:
    """The actions of a launch file, in order, as plain data (``share``: the package's share
    directory)."""
    config = os.path.join(share, "config")
    single = len(nodes) == 1
    actions: list = []
    if single:
        actions.append(Declare("params_file", os.path.join(config, nodes[0]["params"]),
                               f"{nodes[0]['name']} parameters"))
    actions.append(Declare("fastdds_profile", os.path.join(config, FASTDDS_PROFILE), FASTDDS_DESCRIPTION))
    actions.append(SetEnv(FASTDDS_ENV, Arg("fastdds_profile")))
    actions += [Declare(k, str(v)) for k, v in args.items()]
    for spec in nodes:
        params_file = Arg("params_file") if single else os.path.join(config, spec["params"])
        actions.append(NodeAction(
            executable=spec["executable"],
            name=spec["name"],
            namespace=Arg("namespace"),
            parameters=[params_file] + [{p: Typed(Arg(a), _value_type(args[a]))}
                                        for p, a in spec.get("param_args", {}).items()],
            remappings=[(src, Arg(a)) for src, a in spec.get("remap", {}).items()],
        ))
    return actions


def build(args: dict, nodes: list[dict]):
    """The LaunchDescription of a launch file's tables (for ``ros2 launch``)."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    def value(v):
        if isinstance(v, Arg):
            return LaunchConfiguration(v.name)
        if isinstance(v, Typed):
            return ParameterValue(LaunchConfiguration(v.arg.name), value_type=v.type)
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        return v

    out = []
    for a in plan(args, nodes, get_package_share_directory(PACKAGE)):
        if isinstance(a, Declare):
            extra = {} if a.description is None else {"description": a.description}
            out.append(DeclareLaunchArgument(a.name, default_value=a.default, **extra))
        elif isinstance(a, SetEnv):
            out.append(SetEnvironmentVariable(a.name, value(a.value)))
        else:
            out.append(Node(
                package=a.package, executable=a.executable, name=a.name, namespace=value(a.namespace),
                parameters=[value(p) for p in a.parameters],
                remappings=[(src, value(dst)) for src, dst in a.remappings],
                output=a.output, emulate_tty=a.emulate_tty,
            ))
    return LaunchDescription(out)
