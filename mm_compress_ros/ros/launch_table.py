"""Read the node table of a launch file without the launch packages.

The launch files in ``launch/`` keep their nodes in two plain-data module constants, ``ARGS``
(launch arguments and defaults) and ``NODES`` (executable, node name, parameter file,
remappings, parameters set from launch arguments). ``ros2 launch`` turns them into launch_ros
Nodes; ``make demo`` and the tests read the same constants (with :func:`ast.literal_eval`, so
neither ``launch`` nor ``launch_ros`` is needed) and start the same executables with the same
parameter files as separate processes.
"""
from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "mm_compress_ros"


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
    values = dict(launch_args)
    for k, v in (args or {}).items():
        if k not in values:
            raise KeyError(f"{launch_name} has no launch argument {k!r}")
        values[k] = v
    out = []
    for spec in nodes:
        params_file = share / "config" / spec["params"]
        argv = [python, str(lib / spec["executable"]), "--ros-args", "-r", f"__node:={spec['name']}"]
        if values.get("namespace"):
            argv += ["-r", f"__ns:=/{values['namespace'].strip('/')}"]
        argv += ["--params-file", str(params_file)]
        for p, a in spec.get("param_args", {}).items():
            argv += ["-p", f"{p}:={_param_str(values[a])}"]
        remaps = {src: values[a] for src, a in spec.get("remap", {}).items()}
        for src, dst in remaps.items():
            if src != dst:
                argv += ["-r", f"{src}:={dst}"]
        for p, v in ((params or {}).get(spec["name"], {})).items():
            argv += ["-p", f"{p}:={_param_str(v)}"]
        out.append(NodeCommand(spec["name"], spec["executable"], argv, params_file, remaps))
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
    if not env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(share_dir() / "config" / "fastdds_shm.xml")
    return env
