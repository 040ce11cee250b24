"""Frame sources of the sample publisher (no ROS needed)."""
import numpy as np
import pytest

from conftest import DATA_ROOT
from mm_compress_ros.ros.sources import SyntheticScene, detect_source, open_source, thermal_to_encoding

SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"
CLIP = DATA_ROOT / "m3svd_video" / "1230_1202"


def test_synthetic_scene_is_deterministic_and_moves():
    a, b = SyntheticScene(96, 64), SyntheticScene(96, 64)
    r0, t0 = a.frame(0)
    assert r0.shape == (64, 96, 3) and r0.dtype == np.uint8 and t0.shape == (64, 96) and t0.dtype == np.uint8
    np.testing.assert_array_equal(r0, b.frame(0)[0])
    np.testing.assert_array_equal(t0, b.frame(0)[1])
    r5, t5 = a.frame(5)
    assert np.mean(np.abs(r5.astype(int) - r0)) > 0.5  # things move
    assert t0.max() > 180 and np.median(t0) < 140      # hot objects on a cooler background


def test_thermal_encodings():
    th8 = np.array([[0, 1, 255]], np.uint8)
    np.testing.assert_array_equal(thermal_to_encoding(th8, "mono16"), [[0, 257, 65535]])
    assert thermal_to_encoding(th8, "16UC1").dtype == np.uint16
    assert thermal_to_encoding(th8, "mono8") is th8
    np.testing.assert_array_equal(thermal_to_encoding(np.array([[0x1234]], np.uint16), "mono8"), [[0x12]])
    with pytest.raises(ValueError):
        thermal_to_encoding(th8, "rgb8")


def test_detect_source(tmp_path):
    assert detect_source("") == "synthetic"
    with pytest.raises(ValueError):
        detect_source(tmp_path)


def test_folder_source_reads_real_pairs_resized():
    if not SEQ.is_dir():
        pytest.fail(f"test data missing: {SEQ}", pytrace=False)
    assert detect_source(SEQ) == "folder"
    it = open_source("auto", str(SEQ), (160, 120), loop=False)
    pairs = list(it)
    assert len(pairs) == 20
    rgb, th = pairs[0]
    assert rgb.shape == (120, 160, 3) and th.shape == (120, 160) and th.dtype == np.uint8


def test_video_source_reads_paired_clips():
    if not CLIP.is_dir():
        pytest.fail(f"test data missing: {CLIP}", pytrace=False)
    assert detect_source(CLIP) == "video"
    it = open_source("video", str(CLIP), (64, 48), loop=False)
    rgb, th = next(it)
    assert rgb.shape == (48, 64, 3) and th.shape == (48, 64)
