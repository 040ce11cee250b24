"""Target-bitrate mode on real frames: the controller holds the pair's rate and moves the one
quality knob of both layers only at key frames."""

import numpy as np
import pytest

from codec_fixtures import crop_pair
from mm_compress_ros.codec import packet as P
from mm_compress_ros.codec.ratecontrol import RateController
from mm_compress_ros.codec.stream import StreamEncoder
from mm_compress_ros.codec.zoo import load_model

FPS = 10


@pytest.fixture(scope="module")
def model():
    return load_model("mmvc", direction="thermal_given_rgb", device="cpu")


def _play(model, target, frames=100):
    clip = [crop_pair(i, h=192, w=256, y=100, x=150) for i in range(10)]
    order = list(range(10)) + list(range(8, 0, -1))
    enc = StreamEncoder(model, gop=10, reference_codec="h264", target_kbps=target, fps=FPS, quality=3)
    bits, headers = [], []
    for k in range(frames):
        pkt = enc.encode(*clip[order[k % len(order)]], stamp_ns=k * 100_000_000)
        bits.append(8 * len(pkt))
        headers.append(P.read_header(pkt))
    return bits, headers


@pytest.mark.parametrize("target", [110, 220])
def test_the_rate_after_the_first_gops_is_within_10_percent_of_the_target(model, target):
    bits, headers = _play(model, target)
    rate = sum(bits[30:]) / ((len(bits) - 30) / FPS) / 1000
    assert abs(rate / target - 1) < 0.10, rate
    # quality level and QP change only at key frames
    for prev, h in zip(headers, headers[1:]):
        if h.frame_type_name == "predicted":
            assert (h.quality, h.reference_qp) == (prev.quality, prev.reference_qp)


def test_more_bits_buy_a_finer_qp_and_level(model):
    _, low = _play(model, 110, 40)
    _, high = _play(model, 220, 40)
    assert high[-1].reference_qp < low[-1].reference_qp and high[-1].quality >= low[-1].quality


def test_controller_knob_and_bounds():
    rc = RateController(100_000, levels=6, fps=10, start=3)
    assert (rc.level, rc.qp) == (3, 31)
    for _ in range(10):            # far too many bits: the knob goes to its lowest setting
        rc.frame_coded(1_000_000)
    rc.key_frame()
    assert rc.level == 1 and rc.qp > 37
    for _ in range(50):
        for _ in range(10):
            rc.frame_coded(1)      # far too few bits: up to the top, QP bounded
        rc.key_frame()
    assert rc.level == 6 and rc.qp == 12
    with pytest.raises(ValueError):
        RateController(0, levels=6)


def test_quality_and_target_change_at_the_next_key_frame(model):
    enc = StreamEncoder(model, gop=3, reference_codec="h264", quality=3)
    clip = [crop_pair(i) for i in range(7)]
    levels = []
    for k, pair in enumerate(clip):
        if k == 1:
            enc.set_rate(quality=5)                  # mid-GOP: the GOP keeps level 3
        if k == 4:
            enc.set_rate(target_kbps=50)             # the controller takes over at frame 6
        h = P.read_header(enc.encode(*pair, stamp_ns=k * 100_000_000))
        levels.append((h.frame_type_name, h.quality, h.reference_qp))
    assert [q for _, q, _ in levels[:3]] == [3, 3, 3] and levels[3][:2] == ("key", 5)
    assert enc.rate is not None and levels[6][0] == "key"
    with pytest.raises(ValueError):
        enc.set_rate(quality=99)
    enc.set_rate(target_kbps=0)
    enc.request_key_frame()
    enc.encode(*clip[0])
    assert enc.rate is None
