"""The launch files and their YAML parameter files, checked without the launch packages
(not installable here): node tables, installed executables, parameter names, and the one
description builder the launch files share (its plain-data plan, and its launch / launch_ros
calls against stand-in modules)."""
import ast
import py_compile
import re
import runpy
import sys
import types
from pathlib import Path

import pytest
import yaml

from conftest import LIB_DIR, REPO, SHARE_DIR  # noqa: F401  (ros fixture from conftest)

from mm_compress_ros.ros.launch_description import Arg, Declare, NodeAction, SetEnv, Typed, plan
from mm_compress_ros.ros.launch_table import node_commands, read_table

LAUNCH_FILES = ["encoder.launch.py", "decoder.launch.py", "pipeline.launch.py"]
ALL_LAUNCH_FILES = LAUNCH_FILES + ["viewer.launch.py"]
BUILDER = REPO / "mm_compress_ros" / "ros" / "launch_description.py"
NODE_SOURCES = {
    "encoder_node": REPO / "mm_compress_ros" / "ros" / "encoder_node.py",
    "decoder_node": REPO / "mm_compress_ros" / "ros" / "decoder_node.py",
    "sample_publisher": REPO / "mm_compress_ros" / "ros" / "sample_publisher.py",
}


def declared_parameters(source: Path) -> set[str]:
    """Names passed to declare_parameter (the nodes call it through ``p = self.declare_parameter``)."""
    tree = ast.parse(source.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "p") or (isinstance(f, ast.Attribute) and f.attr == "declare_parameter"):
                names.add(node.args[0].value)
    return names


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_file_compiles_and_is_installed(name, tmp_path):
    src = REPO / "launch" / name
    py_compile.compile(str(src), cfile=str(tmp_path / "x.pyc"), doraise=True)
    installed = SHARE_DIR / "launch" / name
    assert installed.read_text() == src.read_text(), "stale install: run make build"
    text = src.read_text()
    # A real ros2 launch file: launch_ros Nodes built from the table, the Fast DDS profile set,
    # by the shared builder (test_builder_* check what it builds).
    assert "def generate_launch_description" in text and "return build(ARGS, NODES)" in text
    assert "from mm_compress_ros.ros.launch_description import build" in text
    builder = BUILDER.read_text()
    assert "from launch_ros.actions import Node" in builder
    assert 'FASTDDS_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"' in builder and "SetEnvironmentVariable(" in builder


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_node_table_executables_parameters_and_remappings(name):
    args, nodes = read_table(REPO / "launch" / name)
    assert nodes
    for spec in nodes:
        exe = LIB_DIR / spec["executable"]
        assert exe.is_file() and exe.stat().st_mode & 0o111, exe
        params_file = SHARE_DIR / "config" / spec["params"]
        doc = yaml.safe_load(params_file.read_text())
        # The YAML is keyed by the node name the launch file gives, or nothing would apply.
        assert list(doc) == [spec["name"]], (params_file, list(doc))
        yaml_params = set(doc[spec["name"]]["ros__parameters"])
        declared = declared_parameters(NODE_SOURCES[spec["executable"]])
        assert yaml_params <= declared, f"{params_file.name}: not declared by the node: {yaml_params - declared}"
        assert declared <= yaml_params, f"{params_file.name}: undocumented parameters: {declared - yaml_params}"
        for p, a in spec["param_args"].items():
            assert p in declared and a in args
        for src, a in spec["remap"].items():
            assert a in args, (src, a)


def test_pipeline_topics_connect():
    """In pipeline.launch.py the encoder reads what the sample publishes, the decoder reads what
    the encoder publishes, and the decoded images do not collide with the inputs."""
    cmds = {c.name: c for c in node_commands("pipeline.launch.py", share=SHARE_DIR, lib=LIB_DIR)}
    sample, enc, dec = cmds["sample_publisher"], cmds["encoder_node"], cmds["decoder_node"]
    assert sample.remappings["rgb/image"] == enc.remappings["rgb/image"]
    assert sample.remappings["thermal/image"] == enc.remappings["thermal/image"]
    assert enc.remappings["encoded"] == dec.remappings["encoded"]
    assert {dec.remappings["rgb/image"], dec.remappings["thermal/image"]}.isdisjoint(
        {sample.remappings["rgb/image"], sample.remappings["thermal/image"]})


# -- the shared builder ------------------------------------------------------------------------------
S = "/opt/share/mm_compress_ros"
FASTDDS = [Declare("fastdds_profile", f"{S}/config/fastdds_shm.xml",
                   "Fast DDS profile (16 MiB shared-memory segment for large images)"),
           SetEnv("FASTDDS_DEFAULT_PROFILES_FILE", Arg("fastdds_profile"))]
NS = Arg("namespace")

# What each launch file built before the builder (its own generate_launch_description), as plain
# data: the same arguments in the same order with the same defaults and descriptions, the Fast DDS
# profile, parameter files, parameters from launch arguments with their types, remappings.
EXPECTED_PLANS = {
    "encoder.launch.py": [
        Declare("params_file", f"{S}/config/encoder.yaml", "encoder_node parameters"), *FASTDDS,
        Declare("namespace", ""), Declare("rgb_topic", "rgb/image"), Declare("thermal_topic", "thermal/image"),
        Declare("encoded_topic", "encoded"),
        NodeAction("encoder_node", "encoder_node", NS, [Arg("params_file")],
                   [("rgb/image", Arg("rgb_topic")), ("thermal/image", Arg("thermal_topic")),
                    ("encoded", Arg("encoded_topic"))]),
    ],
    "decoder.launch.py": [
        Declare("params_file", f"{S}/config/decoder.yaml", "decoder_node parameters"), *FASTDDS,
        Declare("namespace", ""), Declare("encoded_topic", "encoded"), Declare("rgb_topic", "decoded/rgb/image"),
        Declare("thermal_topic", "decoded/thermal/image"),
        NodeAction("decoder_node", "decoder_node", NS, [Arg("params_file")],
                   [("encoded", Arg("encoded_topic")), ("rgb/image", Arg("rgb_topic")),
                    ("thermal/image", Arg("thermal_topic"))]),
    ],
    "pipeline.launch.py": [
        *FASTDDS,
        Declare("namespace", ""), Declare("path", ""), Declare("device", "auto"), Declare("rgb_topic", "rgb/image"),
        Declare("thermal_topic", "thermal/image"), Declare("encoded_topic", "encoded"),
        Declare("decoded_rgb_topic", "decoded/rgb/image"), Declare("decoded_thermal_topic", "decoded/thermal/image"),
        NodeAction("sample_publisher", "sample_publisher", NS,
                   [f"{S}/config/sample_publisher.yaml", {"path": Typed(Arg("path"), str)}],
                   [("rgb/image", Arg("rgb_topic")), ("thermal/image", Arg("thermal_topic"))]),
        NodeAction("encoder_node", "encoder_node", NS,
                   [f"{S}/config/encoder.yaml", {"device": Typed(Arg("device"), str)}],
                   [("rgb/image", Arg("rgb_topic")), ("thermal/image", Arg("thermal_topic")),
                    ("encoded", Arg("encoded_topic"))]),
        NodeAction("decoder_node", "decoder_node", NS,
                   [f"{S}/config/decoder.yaml", {"device": Typed(Arg("device"), str)}],
                   [("encoded", Arg("encoded_topic")), ("rgb/image", Arg("decoded_rgb_topic")),
                    ("thermal/image", Arg("decoded_thermal_topic"))]),
    ],
    "viewer.launch.py": [
        Declare("params_file", f"{S}/config/viewer.yaml", "viewer_node parameters"), *FASTDDS,
        Declare("namespace", ""), Declare("rgb_topic", "decoded/rgb/image"),
        Declare("thermal_topic", "decoded/thermal/image"), Declare("encoded_topic", "encoded"),
        Declare("key_frame_service", "request_key_frame"), Declare("encoder_node", "encoder_node"),
        Declare("host", "127.0.0.1"), Declare("port", "8088"),
        NodeAction("viewer_node", "viewer_node", NS,
                   [Arg("params_file"), {"host": Typed(Arg("host"), str)}, {"port": Typed(Arg("port"), int)},
                    {"encoder_node": Typed(Arg("encoder_node"), str)}],
                   [("rgb/image", Arg("rgb_topic")), ("thermal/image", Arg("thermal_topic")),
                    ("encoded", Arg("encoded_topic")), ("request_key_frame", Arg("key_frame_service"))]),
    ],
}


@pytest.mark.parametrize("name", ALL_LAUNCH_FILES)
def test_builder_plan_is_what_the_launch_files_declared(name):
    args, nodes = read_table(REPO / "launch" / name)
    actions = plan(args, nodes, S)
    assert actions == EXPECTED_PLANS[name]
    for node in (a for a in actions if isinstance(a, NodeAction)):
        assert (node.package, node.output, node.emulate_tty) == ("mm_compress_ros", "screen", True)


class _Call:
    """A stand-in launch / launch_ros class: records how it was constructed."""
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __eq__(self, other):
        return type(self) is type(other) and (self.args, self.kwargs) == (other.args, other.kwargs)

    def __repr__(self):
        return f"{type(self).__name__}(*{self.args}, **{self.kwargs})"


@pytest.fixture
def fake_launch(monkeypatch):
    """launch, launch_ros and ament_index_python as stand-in modules (share dir: S)."""
    cls = {n: type(n, (_Call,), {}) for n in ("LaunchDescription", "DeclareLaunchArgument",
                                             "SetEnvironmentVariable", "LaunchConfiguration", "Node",
                                             "ParameterValue")}
    modules = {
        "ament_index_python": {}, "ament_index_python.packages": {"get_package_share_directory": lambda p: S},
        "launch": {"LaunchDescription": cls["LaunchDescription"]},
        "launch.actions": {k: cls[k] for k in ("DeclareLaunchArgument", "SetEnvironmentVariable")},
        "launch.substitutions": {"LaunchConfiguration": cls["LaunchConfiguration"]},
        "launch_ros": {}, "launch_ros.actions": {"Node": cls["Node"]},
        "launch_ros.parameter_descriptions": {"ParameterValue": cls["ParameterValue"]},
    }
    for name, attrs in modules.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)
    return types.SimpleNamespace(**cls)


def test_builder_makes_the_launch_actions_the_viewer_file_made(fake_launch):
    """The calls viewer.launch.py made itself before the builder (the richest table: a
    params_file argument, an int parameter from a launch argument, four remappings)."""
    f = fake_launch
    LC = f.LaunchConfiguration
    desc = runpy.run_path(str(REPO / "launch" / "viewer.launch.py"))["generate_launch_description"]()
    defaults = {"namespace": "", "rgb_topic": "decoded/rgb/image", "thermal_topic": "decoded/thermal/image",
                "encoded_topic": "encoded", "key_frame_service": "request_key_frame",
                "encoder_node": "encoder_node", "host": "127.0.0.1", "port": "8088"}
    assert desc == f.LaunchDescription([
        f.DeclareLaunchArgument("params_file", default_value=f"{S}/config/viewer.yaml",
                                description="viewer_node parameters"),
        f.DeclareLaunchArgument("fastdds_profile", default_value=f"{S}/config/fastdds_shm.xml",
                                description="Fast DDS profile (16 MiB shared-memory segment for large images)"),
        f.SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LC("fastdds_profile")),
        *[f.DeclareLaunchArgument(k, default_value=v) for k, v in defaults.items()],
        f.Node(package="mm_compress_ros", executable="viewer_node", name="viewer_node", namespace=LC("namespace"),
               parameters=[LC("params_file"),
                           {"host": f.ParameterValue(LC("host"), value_type=str)},
                           {"port": f.ParameterValue(LC("port"), value_type=int)},
                           {"encoder_node": f.ParameterValue(LC("encoder_node"), value_type=str)}],
               remappings=[("rgb/image", LC("rgb_topic")), ("thermal/image", LC("thermal_topic")),
                           ("encoded", LC("encoded_topic")), ("request_key_frame", LC("key_frame_service"))],
               output="screen", emulate_tty=True),
    ])


@pytest.mark.parametrize("name", ALL_LAUNCH_FILES)
def test_every_launch_file_builds_its_plan_with_the_fastdds_profile(name, fake_launch):
    f = fake_launch
    desc = runpy.run_path(str(REPO / "launch" / name))["generate_launch_description"]()
    (actions,) = desc.args
    _, nodes = read_table(REPO / "launch" / name)
    assert len(actions) == len(EXPECTED_PLANS[name])
    fastdds = f.SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", f.LaunchConfiguration("fastdds_profile"))
    assert fastdds in actions
    built_nodes = [a for a in actions if isinstance(a, f.Node)]
    assert [n.kwargs["executable"] for n in built_nodes] == [spec["executable"] for spec in nodes]
    for node, spec in zip(built_nodes, nodes):
        assert node.kwargs["remappings"] == [(src, f.LaunchConfiguration(a)) for src, a in spec["remap"].items()]
        assert node.kwargs["namespace"] == f.LaunchConfiguration("namespace")


def test_node_commands_match_ros2_launch_semantics():
    cmds = node_commands("decoder.launch.py", {"encoded_topic": "/cam/encoded", "namespace": "robot1"},
                         {"decoder_node": {"max_queue": 5, "device": "cpu"}}, share=SHARE_DIR, lib=LIB_DIR)
    (dec,) = cmds
    argv = dec.argv
    assert argv[1] == str(LIB_DIR / "decoder_node") and argv[2] == "--ros-args"
    assert "__node:=decoder_node" in argv and "__ns:=/robot1" in argv
    i = argv.index("--params-file")
    assert argv[i + 1] == str(SHARE_DIR / "config" / "decoder.yaml")
    # Overrides come after the parameter file (later wins, as with launch parameters lists).
    assert argv.index("max_queue:=5") > i and "encoded:=/cam/encoded" in argv
    assert "device:='cpu'" in argv
    with pytest.raises(KeyError):
        node_commands("decoder.launch.py", {"no_such_arg": 1}, share=SHARE_DIR, lib=LIB_DIR)


def test_declared_parameter_scan_finds_known_names():
    names = declared_parameters(NODE_SOURCES["encoder_node"])
    assert {"model", "quality", "gop", "sync_slop", "sync_queue_size", "resize", "device"} <= names
    assert re.search(r'p\("sync_slop"', NODE_SOURCES["encoder_node"].read_text())


@pytest.mark.parametrize("executable,param,message", [
    ("sample_publisher", "rgb_encoding:=rgba8", "rgb_encoding must be one of"),
    # a model named means the learned thermal layer (thermal_codec auto): an unknown one, said in one line
    ("encoder_node", "model:=no_such_model", "ModelError: model 'no_such_model'"),
    ("encoder_node", "direction:=sideways", "direction must be"),
])
def test_bad_parameters_end_the_node_with_one_line(ros, executable, param, message):
    proc = ros.node(executable, executable, "--ros-args", "-p", param)
    assert proc.wait(timeout=120) == 1
    out = proc.output()
    lines = [line for line in out.splitlines() if line.startswith(f"[{executable}] error:")]
    assert len(lines) == 1 and message in lines[0], out
    assert "Traceback" not in out
