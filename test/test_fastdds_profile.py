"""config/fastdds_shm.xml: with it, best-effort 640x480 rgb8 images between two processes arrive.

Measured on this project's machine (benchmarks/dds_large_images.py, docs/benchmarks.md): without
the profile, most such images are lost (4 to 13 of 50 arrived); with it, all of them.
"""
import re

import pytest

from conftest import PROCS, REPO, wait_for_log

pytestmark = pytest.mark.ros


def test_profile_is_the_one_the_environment_uses(ros):
    assert ros.env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(REPO / "config" / "fastdds_shm.xml")
    xml = (REPO / "config" / "fastdds_shm.xml").read_text()
    assert "<segment_size>16777216</segment_size>" in xml and "<type>SHM</type>" in xml


def test_large_best_effort_images_arrive_between_processes(ros):
    count = 40
    sub = ros.python("sub", PROCS / "image_sub.py", count, 30)
    wait_for_log(sub, "subscribed", 30, ros)
    pub = ros.python("pub", PROCS / "image_pub.py", count, 0.05)
    assert sub.wait(timeout=60) == 0, ros.logs()
    assert pub.wait(timeout=30) == 0, ros.logs()
    m = re.search(r"received (\d+) valid (\d+)", sub.output())
    assert m, ros.logs()
    received, valid = int(m.group(1)), int(m.group(2))
    assert received == valid
    assert received >= count - 1, f"only {received} of {count} images arrived"
