"""Key frames by the stream's own rhythm (issue 22): a gap ends the GOP only when it is long for
*this* stream (codec/keyframes.py, StampRhythm: more than 3 frame intervals, at least 1 s, or a fixed
``max_gap_ns``). A camera throttled to 1 Hz codes predicted frames; a 10 s pause at 10 Hz and a
clock going back still bring a key frame. Unit tests of the rule, then the pair encoder (the
encoder node's and ``bag encode``'s) and the stream encoder on real crops at 1 Hz."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mm_compress_ros.codec.keyframes import MAX_GAP_NS, StampRhythm, stamp_step

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def stamps(rate_hz: float, n: int, start: int = T0, jitter_s: float = 0.0, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    period = S / rate_hz
    return [start + int(round(i * period + rng.uniform(-jitter_s, jitter_s) * S)) for i in range(n)]


def steps(rhythm: StampRhythm, ts) -> list[str]:
    return [rhythm.step(t) for t in ts]


@pytest.mark.parametrize("rate", [0.2, 0.5, 1.0])
def test_a_slow_camera_is_one_stream_not_all_jumps(rate):
    """1 Hz (and slower) with 20 ms of jitter: after the first frame every step is ``next``,
    except the first step of a stream slower than one frame in 3 s (no rhythm measured yet)."""
    r = StampRhythm()
    kinds = steps(r, stamps(rate, 30, jitter_s=0.02))
    assert kinds[0] == "first"
    if rate >= 1 / 3:
        assert set(kinds[1:]) == {"next"}, kinds
    else:   # 5 s between frames: the first step is a jump, then the rhythm is known
        assert kinds[1] == "jump" and set(kinds[2:]) == {"next"}, kinds
    assert abs(r.interval_ns - S / rate) < 0.05 * S
    assert r.gap_ns == pytest.approx(3 * S / rate, rel=0.05)


def test_the_old_fixed_gap_made_a_1hz_camera_all_key_frames():
    """What issue 22 saw: with a fixed 1 s gap a 1 Hz camera with jitter jumps at about every step."""
    ts = stamps(1.0, 10, jitter_s=0.02, seed=3)
    fixed = [stamp_step(a, b, MAX_GAP_NS) for a, b in zip(ts, ts[1:])]
    assert fixed.count("jump") >= 3, fixed
    assert steps(StampRhythm(), ts)[1:] == ["next"] * 9


@pytest.mark.parametrize("rate,jitter", [(10.0, 0.0), (10.0, 0.01), (30.0, 0.008), (9.0, 0.005)])
def test_fast_streams_keep_the_1s_floor_and_a_pause_is_a_jump(rate, jitter):
    r = StampRhythm()
    ts = stamps(rate, 40, jitter_s=jitter)
    kinds = steps(r, ts)
    assert set(kinds[1:]) == {"next"}, kinds
    assert r.gap_ns == MAX_GAP_NS   # 3 intervals are far below the 1 s floor
    # a few frames dropped (0.5 s): still the same GOP
    assert r.step(ts[-1] + S // 2) == "next"
    # the bag paused for 10 s: a jump; the stream goes on at its rhythm after it
    resume = ts[-1] + S // 2 + 10 * S
    assert r.step(resume) == "jump"
    assert steps(r, stamps(rate, 10, start=resume + int(S / rate)))[:] == ["next"] * 10
    # 1.5 s without frames is a jump too (above the 1 s floor), as with the fixed gap
    assert r.step(r.last + 3 * S // 2) == "jump"


def test_a_pause_of_a_slow_stream_is_a_jump_and_does_not_move_its_rhythm():
    r = StampRhythm()
    ts = stamps(1.0, 10, jitter_s=0.02)
    steps(r, ts)
    assert r.step(ts[-1] + int(2.5 * S)) == "next"    # one or two frames lost: same GOP
    assert r.step(r.last + 10 * S) == "jump"           # paused 10 s
    assert steps(r, stamps(1.0, 5, start=r.last + S)) == ["next"] * 5
    assert r.interval_ns == pytest.approx(S, rel=0.05)  # the median ignores the pauses


def test_a_stream_that_slows_down_for_good_is_learnt():
    r = StampRhythm()
    ts = stamps(10.0, 20)
    steps(r, ts)
    slow = stamps(0.2, 12, start=ts[-1] + 5 * S)   # now one frame every 5 s
    kinds = steps(r, slow)
    assert kinds[0] == "jump"
    assert kinds[-6:] == ["next"] * 6, kinds   # within half the window it is the rhythm


@pytest.mark.parametrize("rate", [1.0, 10.0, 30.0])
def test_clock_going_back(rate):
    r = StampRhythm()
    ts = stamps(rate, 20)
    steps(r, ts)
    # a pair that completed out of order, 300 ms before the last one: "back" (the session skips it)
    assert r.classify(ts[-1] - 300_000_000) == "back"
    assert r.classify(ts[-1]) == "same"
    # a clock reset (bag loop, sim time, driver restart): 20 s back
    assert r.step(ts[-1] - 20 * S) == "reset"
    # the new clock's rhythm is measured again; the stream goes on
    assert steps(r, stamps(rate, 5, start=ts[-1] - 20 * S + int(S / rate))) == ["next"] * 5


def test_classify_changes_nothing_and_accept_takes_the_stamp():
    r = StampRhythm()
    r.step(T0)
    assert r.classify(T0 + S) == "next" and r.last == T0 and r.interval_ns is None
    assert r.accept(T0 + S) == "next" and r.last == T0 + S and r.interval_ns == S
    r.accept(T0 + S - 100, "back")   # a coder that codes a "back" frame takes its stamp
    assert r.last == T0 + S - 100 and r.interval_ns == S


def test_a_fixed_gap_overrides_the_rhythm():
    r = StampRhythm(max_gap_ns=S)
    kinds = steps(r, [T0, T0 + S, T0 + 2 * S + 1, T0 + 2 * S + 1 - S])
    assert kinds == ["first", "next", "jump", "reset"]
    assert StampRhythm(max_gap_ns=5 * S).step(T0) == "first"
    with pytest.raises(ValueError):
        StampRhythm(max_gap_ns=0)


def test_first_step_before_any_rhythm():
    """Before a step is measured the interval is taken as 1 s: the second frame may come up to
    3 s after the first."""
    assert steps(StampRhythm(), [T0, T0 + 3 * S]) == ["first", "next"]
    assert steps(StampRhythm(), [T0, T0 + 3 * S + 1]) == ["first", "jump"]
    assert steps(StampRhythm(), [T0, T0 - 3 * S]) == ["first", "reset"]


def test_stamp_step_without_a_limit():
    assert [stamp_step(10, s, None) for s in (10, 11, 10**12, 9, -10**12)] == \
        ["same", "next", "next", "back", "back"]


# -- the pair encoder and the stream encoder on real crops --------------------------------------

@pytest.fixture(scope="module")
def model():
    from mm_compress_ros.codec.zoo import load_model

    return load_model("mmrt", direction="thermal_given_rgb", device="cpu")


def _image(arr: np.ndarray, encoding: str, ns: int):
    h, w = arr.shape[:2]
    stamp = SimpleNamespace(sec=ns // S, nanosec=ns % S)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id="f"), height=h, width=w,
                           encoding=encoding, is_bigendian=0, step=arr.strides[0],
                           data=arr.tobytes())


@pytest.mark.needs_codec
@pytest.mark.needs_data
def test_pair_encoder_at_1hz_codes_one_key_frame_per_gop(model):
    from codec_fixtures import crop_pair
    from mm_compress_ros.link.pair_encoder import PairEncoder

    enc = PairEncoder(model, quality=32, gop=10, reference_codec="h264", encoder="software")
    ts = stamps(1.0, 10, jitter_s=0.02, seed=1)
    results = []
    for i, t in enumerate(ts):
        rgb, th = crop_pair(i)
        results.append(enc.encode(_image(rgb, "rgb8", t), _image(th, "mono8", t + 4_000_000)))
    types = [r.frame_type for r in results]
    assert types == ["key"] + ["predicted"] * 9, (types, [r.notes for r in results])
    assert not any(r.notes for r in results)
    assert enc.counts.key_frames == 1 and enc.counts.pairs == 10

    # the camera paused for 10 s: a key frame, said why
    rgb, th = crop_pair(10)
    t = ts[-1] + 10 * S
    after = enc.encode(_image(rgb, "rgb8", t), _image(th, "mono8", t))
    assert after.frame_type == "key" and [n.kind for n in after.notes] == ["stamp_jump"]
    assert after.notes[0].text == "capture stamps jumped 10.0 s ahead of the last encoded pair: key frame"


@pytest.mark.needs_codec
@pytest.mark.needs_data
def test_pair_encoder_with_a_fixed_gap_keys_every_late_frame(model):
    """``max_gap_ns`` (encoder_node's ``max_gap``) still gives the fixed rule."""
    from codec_fixtures import crop_pair
    from mm_compress_ros.link.pair_encoder import PairEncoder

    enc = PairEncoder(model, quality=32, gop=10, reference_codec="h264", encoder="software", max_gap_ns=S)
    types = []
    for i, t in enumerate([T0, T0 + S, T0 + 2 * S + 10_000_000, T0 + 3 * S]):
        rgb, th = crop_pair(i)
        types.append(enc.encode(_image(rgb, "rgb8", t), _image(th, "mono8", t)).frame_type)
    assert types == ["key", "predicted", "key", "predicted"]


@pytest.mark.needs_codec
@pytest.mark.needs_data
def test_stream_encoder_at_1hz_codes_one_key_frame_per_gop(model):
    """The stream encoder (mm-compress, bag tools) follows the same rhythm rule."""
    from codec_fixtures import crop_pair
    from mm_compress_ros.codec.stream import StreamEncoder

    enc = StreamEncoder(model, quality=32, gop=10, reference_codec="h264", encoder="software")
    types = []
    for i, t in enumerate(stamps(1.0, 12, jitter_s=0.02, seed=2)):
        rgb, th = crop_pair(i)
        enc.encode(rgb, th, stamp_ns=t)
        types.append(enc.last_frame_type)
    assert types == ["key"] + ["predicted"] * 9 + ["key", "predicted"], types
    rgb, th = crop_pair(0)
    enc.encode(rgb, th, stamp_ns=T0 + 100 * S)   # a 10 s-plus jump
    assert enc.last_frame_type == "key"
