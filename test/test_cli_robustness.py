"""What a robotics user hits in the first hour with `mm-compress` (issue 22): a damaged stream file
loses only the frames that depend on the damage, outputs are never overwritten without --force,
the figures are the input's (frame rate, per-frame levels), and a closed pipe is no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from codec_fixtures import DATA, write_crops

pytestmark = pytest.mark.needs_data


def cli(*args, cwd, check=None):
    res = subprocess.run([sys.executable, "-m", "mm_compress_ros.cli", *map(str, args)], cwd=cwd,
                         capture_output=True, text=True, timeout=300)
    if check is not None:
        assert res.returncode == check, res.stderr
    return res


@pytest.fixture(scope="module")
def stream20(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s20")
    src = write_crops(tmp / "src", 20, h=96, w=128)
    s = tmp / "s.mmc"
    cli("encode", "--rgb", src / "rgb", "--thermal", src / "thermal", "--out", s, "--gop", 10, "--quiet",
        cwd=tmp, check=0)
    return s


def _offsets(data: bytes):
    from mm_compress_ros.codec.packet import scan_stream

    return [o for o, _ in scan_stream(data)]


def test_one_corrupt_byte_loses_only_its_gop_and_says_which_frame(stream20, tmp_path):
    data = bytearray(stream20.read_bytes())
    offs = _offsets(bytes(data))
    assert len(offs) == 20
    data[offs[3] + 80] ^= 0xFF          # a payload byte of frame 3
    bad = tmp_path / "bad.mmc"
    bad.write_bytes(bytes(data))
    res = cli("decode", bad, "--out", tmp_path / "dec", "--quiet", cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    lines = res.stderr.strip().splitlines()
    assert any("frame 3:" in ln and "CRC32" in ln for ln in lines), lines
    summary = json.loads(res.stdout)
    # frames 0-2 and the next GOP (10-19) survive; 3 is damaged, 4-9 waited for the key frame
    assert (summary["frames"], summary["damaged"], summary["skipped_until_key_frame"]) == (13, 1, 6)
    assert len(list((tmp_path / "dec" / "thermal").iterdir())) == 13


def test_a_damaged_length_field_resynchronises_at_the_next_packet(stream20, tmp_path):
    data = bytearray(stream20.read_bytes())
    offs = _offsets(bytes(data))
    data[offs[12] + 9] ^= 0x7F          # the total-length field of frame 12
    bad = tmp_path / "bad.mmc"
    bad.write_bytes(bytes(data))
    res = cli("decode", bad, "--out", tmp_path / "dec", "--quiet", cwd=tmp_path)
    assert res.returncode == 3 and "after frame 11" in res.stderr, res.stderr
    assert json.loads(res.stdout)["frames"] == 12       # 0-11; 12 damaged, 13-19 wait for a key frame


def test_outputs_are_never_overwritten_without_force(stream20, tmp_path):
    src = write_crops(tmp_path / "src", 2, h=64, w=64)
    out = tmp_path / "x.mmc"
    out.write_bytes(b"keep me")
    res = cli("encode", "--rgb", src / "rgb", "--thermal", src / "thermal", "--out", out, "--quiet", cwd=tmp_path)
    assert res.returncode == 2 and "exists already" in res.stderr and "--force" in res.stderr
    assert out.read_bytes() == b"keep me"
    cli("encode", "--rgb", src / "rgb", "--thermal", src / "thermal", "--out", out, "--quiet", "--force",
        cwd=tmp_path, check=0)
    assert out.read_bytes()[:4] == b"MMCP"
    # decode into a used folder: refused; with --force no stale frame of the earlier run is left
    dec = tmp_path / "dec"
    cli("decode", stream20, "--out", dec, "--quiet", cwd=tmp_path, check=0)
    assert len(list((dec / "rgb").iterdir())) == 20
    res = cli("decode", out, "--out", dec, "--quiet", cwd=tmp_path)
    assert res.returncode == 2 and "exists already" in res.stderr
    cli("decode", out, "--out", dec, "--quiet", "--force", cwd=tmp_path, check=0)
    assert len(list((dec / "rgb").iterdir())) == 2


def test_bag_commands_follow_the_same_rule(stream20, tmp_path):
    from mm_compress_ros.bag.rawbag import write_raw_bag
    from codec_fixtures import crop_pair

    write_raw_bag(tmp_path / "raw", [crop_pair(i, h=64, w=64) for i in range(3)])
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "old").write_text("x")
    args = ("bag", "encode", tmp_path / "raw", tmp_path / "enc", "--rgb-topic", "/rgb/image",
            "--thermal-topic", "/thermal/image", "--quiet")
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 2 and "exists already" in res.stderr and "--force" in res.stderr
    cli(*args, "--force", cwd=tmp_path, check=0)
    assert not (tmp_path / "enc" / "old").exists()


def test_the_frame_rate_comes_from_a_video_input(tmp_path):
    clip = DATA / "m3svd_video" / "1230_1202"     # a 22 fps clip
    res = cli("encode", "--rgb", clip / "rgb.mp4", "--thermal", clip / "thermal.mp4", "--out", tmp_path / "v.mmc",
              "--frames", 3, "--quiet", cwd=tmp_path, check=0)
    summary = json.loads(res.stdout)
    assert summary["fps"] == pytest.approx(22.0) and summary["fps_from"] == "input"


def test_target_bitrate_figures_agree_between_encode_and_info(tmp_path):
    src = write_crops(tmp_path / "src", 12, h=64, w=64)
    res = cli("encode", "--rgb", src / "rgb", "--thermal", src / "thermal", "--out", tmp_path / "t.mmc",
              "--gop", 3, "--target-kbps", 30, "--quiet", cwd=tmp_path, check=0)
    summary = json.loads(res.stdout)
    info = json.loads(cli("info", tmp_path / "t.mmc", cwd=tmp_path, check=0).stdout)
    levels = [f["level"] for f in info["frames"]]
    assert summary["quality"] == levels[0] == info["quality"]
    assert summary["quality_range"] == info["quality_range"] == [min(levels), max(levels)]
    assert len(set(levels)) > 1          # the controller moved the knob: each frame says its level
    assert all(f["rgb_qp"] is not None and f["thermal_qp"] is not None for f in info["frames"])


def test_a_closed_pipe_is_no_traceback(stream20, tmp_path):
    p = subprocess.run(f"'{sys.executable}' -m mm_compress_ros.cli info '{stream20}' --pretty | head -c 20",
                       shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.stdout.startswith("{") and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
