"""`make demo DATA=...` tells the truth (issue 22): on real 640x480 frames it runs at the data's own
size and a camera's rate, and says loudly when it was told to change them."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import DATA_ROOT, REPO, ros_base_env

pytestmark = pytest.mark.ros

SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"


def demo(*args):
    env = ros_base_env()
    return subprocess.run([sys.executable, "-m", "mm_compress_ros.ros.demo", "--data", str(SEQ), "--frames", "3",
                           "--no-x265", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=240)


def test_demo_runs_real_data_at_its_own_size_and_a_camera_rate():
    res = demo()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "3 frames at 10 Hz" in res.stdout and "640x480" in res.stdout, res.stdout
    assert "CHANGED FROM THE DATA" not in res.stdout
    assert "profile: standard" in res.stdout


def test_demo_says_loudly_what_it_changed():
    res = demo("--width", "320", "--height", "240")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "CHANGED FROM THE DATA: size 320x240 instead of the data's 640x480" in res.stdout, res.stdout
