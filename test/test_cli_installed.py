"""The installed `mm-compress` command, run the way users run it (issue 13), each in its own process:

* venv-plain: ``.venv/bin/mm-compress`` (the pip install's console script) from a shell with no ROS
  sourced and nothing on PYTHONPATH;
* path-ros: ``mm-compress`` found on PATH after ``source scripts/ros_env.sh`` (which sources the
  colcon install: its bin/ comes first on PATH);
* venv-ros: ``.venv/bin/mm-compress`` after ``source scripts/ros_env.sh``: the colcon install's
  package metadata on PYTHONPATH used to shadow the venv's and the script died with StopIteration;
* ros2-run: ``<prefix>/lib/mm_compress_ros/mm-compress`` found through the ament index as
  ``ros2 run mm_compress_ros mm-compress`` finds it, after ``source scripts/ros_env.sh``.

Every way must list the shipped models (JSON) and end an expected failure with one line on stderr
and exit status 2.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import INSTALL_PKG, LIB_DIR, REPO, SHARE_DIR

ROS_ENV = REPO / "scripts" / "ros_env.sh"
VENV = Path(sys.prefix) if sys.prefix != sys.base_prefix else None
WAYS = ("venv-plain", "path-ros", "venv-ros", "ros2-run")
# ros2 run's lookup: <package prefix from the ament index>/lib/<package>/<executable>
ROS2_RUN_EXE = ('"$(python3 -c \'from ament_index_python.packages import get_package_prefix; '
                'print(get_package_prefix("mm_compress_ros"))\')/lib/mm_compress_ros/mm-compress"')


def plain_env() -> dict[str, str]:
    """A fresh login shell's environment: no ROS sourced, no venv activated, no PYTHONPATH."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "OMP_NUM_THREADS": "1"}
    for key in ("LANG", "LC_ALL", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def venv_script() -> Path:
    if VENV is None:
        pytest.skip("not run from a venv: no pip-installed mm-compress to run")
    script = VENV / "bin" / "mm-compress"
    assert script.is_file(), f"{script} is missing: run `make venv` (pip install -e .)"
    return script


def ros_shell(command: str) -> tuple[list[str], dict[str, str]]:
    """bash -c 'source scripts/ros_env.sh; COMMAND' from the shell the tests run in."""
    if not (SHARE_DIR / "package.xml").is_file():
        pytest.fail("the colcon build is missing (install/mm_compress_ros): run `make build`", pytrace=False)
    env = dict(os.environ)
    env.pop("MM_COMPRESS_MODELS", None)
    if VENV is not None:  # ros_env.sh uses the venv the tests run from
        env["MMC_VENV"] = str(VENV)
    return ["bash", "-c", f"source {shlex.quote(str(ROS_ENV))} && {command}"], env


def mm_compress(way: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    quoted = " ".join(map(shlex.quote, args))
    if way == "venv-plain":
        argv, env = [str(venv_script()), *args], plain_env()
    elif way == "path-ros":
        argv, env = ros_shell(f"mm-compress {quoted}")
    elif way == "venv-ros":
        argv, env = ros_shell(f"{shlex.quote(str(venv_script()))} {quoted}")
    else:
        argv, env = ros_shell(f"{ROS2_RUN_EXE} {quoted}")
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)


def shipped_models() -> set[tuple[str, str]]:
    """(name, sha256) of every model in models/, the folder both installs ship."""
    cards = [json.loads(p.read_text()) for p in sorted((REPO / "models").glob("*.json"))]
    out = {(c["name"], c["sha256"]) for c in cards if "sha256" in c}
    assert out, "no model cards in models/"
    return out


@pytest.mark.parametrize("way", WAYS)
def test_models_lists_the_shipped_models(way, tmp_path):
    res = mm_compress(way, ["models", "--json"], tmp_path)
    assert res.returncode == 0, f"rc {res.returncode}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-4000:]}"
    assert "Traceback" not in res.stderr, res.stderr
    models = json.loads(res.stdout)
    assert {(m["name"], m["sha256"]) for m in models} == shipped_models()
    # which copy of the package ran: the source checkout (pip -e) finds models/ beside it; the colcon
    # install's copy finds share/mm_compress_ros/models through the ament index
    where = REPO / "models" if way == "venv-plain" else SHARE_DIR / "models"
    for m in models:
        assert Path(m["file"]).parent == where and Path(m["file"]).is_file(), m["file"]


@pytest.mark.parametrize("way", WAYS)
def test_expected_failure_is_one_line_and_status_2(way, tmp_path):
    missing = tmp_path / "no_such_dir" / "stream.mmc"
    res = mm_compress(way, ["info", str(missing)], tmp_path)
    assert res.returncode == 2, f"rc {res.returncode}\nstderr: {res.stderr[-4000:]}"
    assert res.stderr.splitlines() == [f"mm-compress: error: no such stream file: {missing}"], res.stderr
    assert res.stdout == ""


def test_ros_env_puts_the_install_command_first_on_path(tmp_path):
    """With the ROS environment sourced, `mm-compress` is the colcon install's (bin/, from
    CMakeLists.txt), and `ros2 run` finds the same script under lib/mm_compress_ros."""
    argv, env = ros_shell(f'command -v mm-compress && echo {ROS2_RUN_EXE}')
    res = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    on_path, ros2_run = res.stdout.splitlines()
    assert Path(on_path) == INSTALL_PKG / "bin" / "mm-compress"
    assert Path(ros2_run) == LIB_DIR / "mm-compress"
    for exe in (Path(on_path), Path(ros2_run)):
        assert os.access(exe, os.X_OK) and exe.read_bytes() == (REPO / "scripts" / "mm-compress").read_bytes()
