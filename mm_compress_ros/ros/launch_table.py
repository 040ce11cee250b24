"""Run the node table of a launch file as processes, without the launch packages.

The launch files in ``launch/`` keep their nodes in two plain-data module constants, ``ARGS``
(launch arguments and defaults) and ``NODES`` (executable, node name, parameter file,
remappings, parameters set from launch arguments). ``ros2 launch`` turns them into launch_ros
Nodes through :func:`mm_compress_ros.ros.launch_description.build`; ``make demo`` and the tests
read the same constants (with :func:`ast.literal_eval`, so neither ``launch`` nor ``launch_ros``
is needed) and resolve the same :func:`~mm_compress_ros.ros.launch_description.plan` into the
same executables with the same parameter files and remappings, as separate processes.
"""
from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mm_compress_ros.ros.launch_description import (
    FASTDDS_ENV, FASTDDS_PROFILE, PACKAGE, Arg, Declare, NodeAction, plan,
)


def share_dir() -> Path:
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE))


def lib_dir() -> Path:
    from ament_index_python.packages import get_package_prefix

    return Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE


def read_table(launch_file: str | Path) -> tuple[dict, list[dict]]:
    tree = ast.parse(Path(launch_file).read_text(), filename=str(launch_file))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("ARGS", "NODES"):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    if "NODES" not in found:
        raise ValueError(f"{launch_file}: no NODES table")
    return found.get("ARGS", {}), found["NODES"]


@dataclass
class NodeCommand:
    name: str
    executable: str
    argv: list[str]
    params_file: Path
    remappings: dict = field(default_factory=dict)


def node_commands(launch_name: str, args: dict | None = None, params: dict | None = None,
                  share: Path | None = None, lib: Path | None = None,
                  python: str = sys.executable) -> list[NodeCommand]:
    """The processes ``ros2 launch mm_compress_ros <launch_name>`` would start.

    ``args`` overrides launch arguments; ``params`` maps node name -> {parameter: value} set
    after the parameter file (as a test or the demo needs, e.g. a frame count).
    """
    share = share or share_dir()
    lib = lib or lib_dir()
    launch_args, nodes = read_table(share / "launch" / launch_name)
    for k in args or {}:
        if k not in launch_args:
            raise KeyError(f"{launch_name} has no launch argument {k!r}")
    actions = plan(launch_args, nodes, str(share))
    # Launch-argument values as the table has them (an int stays an int: ``port:=0``).
    values = {a.name: a.default for a in actions if isinstance(a, Declare)}
    values.update(launch_args)
    values.update(args or {})

    def resolve(v):
        return values[v.name] if isinstance(v, Arg) else v

    out = []
    for node in (a for a in actions if isinstance(a, NodeAction)):
        params_file, *param_args = node.parameters
        params_file = Path(resolve(params_file))
        argv = [python, str(lib / node.executable), "--ros-args", "-r", f"__node:={node.name}"]
        namespace = resolve(node.namespace)
        if namespace:
            argv += ["-r", f"__ns:=/{namespace.strip('/')}"]
        argv += ["--params-file", str(params_file)]
        for entry in param_args:  # {parameter: Typed(Arg)}: the value as given, typed by _param_str
            for p, v in entry.items():
                argv += ["-p", f"{p}:={_param_str(resolve(v.arg))}"]
        remaps = {src: resolve(dst) for src, dst in node.remappings}
        for src, dst in remaps.items():
            if src != dst:
                argv += ["-r", f"{src}:={dst}"]
        for p, v in ((params or {}).get(node.name, {})).items():
            argv += ["-p", f"{p}:={_param_str(v)}"]
        out.append(NodeCommand(node.name, node.executable, argv, params_file, remaps))
    return out


def _param_str(v) -> str:
    """A value for ``-p name:=value`` (parsed as YAML by rcl); strings are quoted."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_param_str(x) for x in v) + "]"
    s = str(v)
    return "'" + s.replace("'", "''") + "'"


def env_for_nodes(base: dict | None = None) -> dict:
    """The environment for node processes: the caller's, with the Fast DDS profile the launch
    files set (unless one is set already)."""
    env = dict(os.environ if base is None else base)
    if not env.get(FASTDDS_ENV):
        env[FASTDDS_ENV] = str(share_dir() / "config" / FASTDDS_PROFILE)
    return env
