"""16-bit (radiometric) thermal that keeps its values through what users run (issue 21): the nodes
over real DDS and a bag, with the lossless thermal layer (every count exact) and the default
thermal layer (H.265 at 12 bits: counts within the bound the encoder reports)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from codec_fixtures import frame, need_data
from conftest import read_jsonl, start_launch, wait_for_log
from test_pipeline import last_diag, records, start_monitor, wait_until_drained

W, H = 160, 120


def radiometric_folder(root, n: int):
    """root/rgb/NNNN.png + root/thermal/NNNN.png: real RGB and synthetic 14-bit radiometric thermal
    (from the real 8-bit thermal: a camera's offset and gain, fixed-pattern and read noise)."""
    import cv2

    from mm_compress_ros.io.frames import write_rgb, write_thermal
    from mm_compress_ros.io.radiometric import synthetic_radiometric

    need_data()
    pairs = [frame(i) for i in range(n)]
    ths = synthetic_radiometric([cv2.resize(t, (W, H), interpolation=cv2.INTER_AREA) for _, t in pairs], seed=5)
    (root / "rgb").mkdir(parents=True)
    (root / "thermal").mkdir()
    for i, ((rgb, _), th) in enumerate(zip(pairs, ths)):
        write_rgb(root / "rgb" / f"{i:04d}.png", cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA))
        write_thermal(root / "thermal" / f"{i:04d}.png", th)
    return ths


@pytest.mark.ros
@pytest.mark.parametrize("thermal_codec", ["lossless", "auto"])
def test_mono16_through_the_nodes_over_dds(ros, tmp_path, thermal_codec):
    ths = radiometric_folder(tmp_path / "seq", 6)
    mon, out = start_monitor(ros, tmp_path)
    count = 6
    params = {"sample_publisher": {"count": count, "rate": 2.0, "width": W, "height": H, "loop": False,
                                   "wait_for_subscribers": 2, "wait_timeout": 60.0, "thermal_encoding": "mono16"},
              "encoder_node": {"torch_threads": 1, "gop": 3, "thermal_codec": thermal_codec},
              "decoder_node": {"torch_threads": 1}}
    args = {"path": str(tmp_path / "seq"), "device": "cpu"}
    nodes = start_launch(ros, "pipeline.launch.py", args, params, only=("encoder_node", "decoder_node"))
    for n in nodes.values():
        wait_for_log(n, "loaded in", 120, ros)
    sample = start_launch(ros, "pipeline.launch.py", args, params, only=("sample_publisher",))["sample_publisher"]
    try:
        assert sample.wait(timeout=120) == 0
        wait_until_drained(out, 60)
    finally:
        ros.stop_all()
    logs = ros.logs()
    enc = records(out, "encoded")
    dec_th = records(out, "decoded", "thermal")
    assert len(enc) == count and len(dec_th) == count, logs
    assert {e["thermal_encoding"] for e in enc} == {"mono16"}
    bound = max(e["thermal_max_error"] for e in enc)
    for r in dec_th:
        assert r["encoding"] == "mono16" and r["matched_raw"], r
        if thermal_codec == "lossless":
            assert r["max_abs_error"] == 0, r      # every count exact, over DDS
        else:
            assert 0 < r["max_abs_error"] <= bound, (r, bound)
    diag = last_diag(out, ": decoder")
    assert diag is not None and int(diag["thermal_max_error"]) == (0 if thermal_codec == "lossless" else bound), diag


@pytest.mark.needs_data
def test_mono16_lossless_through_a_bag_is_bit_exact(tmp_path):
    import subprocess

    from mm_compress_ros.bag.rawbag import write_raw_bag
    from mm_compress_ros.io.frames import read_thermal

    ths = radiometric_folder(tmp_path / "seq", 4)
    from mm_compress_ros.io.frames import read_rgb

    pairs = [(read_rgb(tmp_path / "seq" / "rgb" / f"{i:04d}.png"), th) for i, th in enumerate(ths)]
    write_raw_bag(tmp_path / "raw", pairs)

    def cli(*a):
        res = subprocess.run([sys.executable, "-m", "mm_compress_ros.cli", *map(str, a)], capture_output=True,
                             text=True, timeout=300, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    enc = cli("bag", "encode", tmp_path / "raw", tmp_path / "enc", "--rgb-topic", "/rgb/image",
              "--thermal-topic", "/thermal/image", "--thermal-codec", "lossless", "--quiet")
    assert enc["pairs"] == 4 and enc["thermal_codec"] == "lossless"
    cli("bag", "decode", tmp_path / "enc", "--frames", tmp_path / "dec", "--quiet")
    for i, th in enumerate(ths):
        back = read_thermal(tmp_path / "dec" / "thermal" / f"{i:04d}.png")
        assert back.dtype == np.uint16 and np.array_equal(back, th)
