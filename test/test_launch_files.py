"""The launch files and their YAML parameter files, checked without the launch packages
(not installable here): node tables, installed executables, parameter names."""
import ast
import py_compile
import re
from pathlib import Path

import pytest
import yaml

from conftest import LIB_DIR, REPO, SHARE_DIR  # noqa: F401  (ros fixture from conftest)

from mm_compress_ros.ros.launch_table import node_commands, read_table

LAUNCH_FILES = ["encoder.launch.py", "decoder.launch.py", "pipeline.launch.py"]
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
    # A real ros2 launch file: launch_ros Nodes built from the table, the Fast DDS profile set.
    assert "def generate_launch_description" in text and "from launch_ros.actions import Node" in text
    assert 'SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE"' in text


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
