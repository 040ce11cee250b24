"""The pair encoder (mm_compress_ros.link.pair_encoder) and the EncodedFrame bridge
(mm_compress_ros.io.encoded_frame) on real frame crops, with rosbags messages (what `bag encode`
reads; encoder_node hands it rclpy messages, test_node_bad_input.py runs that over DDS): stale
pairs, clock resets, stamp gaps, input changes, resize, key-frame requests, and images decoded
back into their original headers and encodings."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from codec_fixtures import crop_pair, half_thermal_pair
from mm_compress_ros.bag.bagio import make_image
from mm_compress_ros.bag.types import ENCODED_FRAME, IMAGE, typestore
from mm_compress_ros.codec.packet import read_header
from mm_compress_ros.link.pair_encoder import PairEncoder, PairResult
from mm_compress_ros.io.encoded_frame import decoded_image, encoded_frame
from mm_compress_ros.io.ros_image import from_rgb, image_to_numpy, stamp_to_ns

pytestmark = [pytest.mark.needs_codec, pytest.mark.needs_data]

T0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000   # 10 Hz
STORE = typestore()


@pytest.fixture(scope="module")
def model():
    from mm_compress_ros.codec.zoo import load_model

    return load_model("mmvc", direction="thermal_given_rgb", device="cpu")


def _stamp(ns: int):
    return SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9)


def messages(i: int, stamp_ns: int, pair=None, rgb_encoding="rgb8", thermal_encoding="mono8"):
    """rosbags sensor_msgs/Image messages of real frame crop ``i`` (or ``pair``), thermal 4 ms after RGB."""
    rgb, th = crop_pair(i) if pair is None else pair
    if thermal_encoding == "mono16":  # a scaled copy of real thermal, as a radiometric camera gives
        th = (th.astype(np.uint16) * 40 + 3000).astype(np.uint16)
    return (make_image(STORE, from_rgb(rgb, rgb_encoding), rgb_encoding, _stamp(stamp_ns), "rgb_optical"),
            make_image(STORE, th, thermal_encoding, _stamp(stamp_ns + 4_000_000), "thermal_optical"))


def kinds(result: PairResult) -> list[str]:
    return [n.kind for n in result.notes]


def test_stale_pair_clock_reset_and_stamp_gap(model):
    enc = PairEncoder(model, quality=3, gop=100)
    first = enc.encode(*messages(0, T0))
    second = enc.encode(*messages(1, T0 + PERIOD))
    assert (first.frame_type, second.frame_type) == ("key", "predicted")
    assert (first.sequence, second.sequence) == (0, 1) and not first.notes and not second.notes
    assert (first.codec, first.quality) == ("mmvc", 3) and first.encode_ms > 0

    # Out of order: 300 ms before the last encoded pair. Skipped and counted; the stream is untouched.
    stale = enc.encode(*messages(2, T0 + PERIOD - 300_000_000))
    assert stale.packet is None and kinds(stale) == ["stale"]
    assert stale.notes[0].text == ("capture stamps went back 300 ms: pair not newer than the last "
                                   "encoded one skipped (1 stale so far)")
    same = enc.encode(*messages(2, T0 + PERIOD))  # the same stamp again: not newer either
    assert same.packet is None and enc.counts.stale == 2
    nxt = enc.encode(*messages(2, T0 + 2 * PERIOD))
    assert nxt.frame_type == "predicted" and nxt.sequence == 2 and not nxt.notes

    # A clock reset: 20 s back. The stream restarts with a key frame and goes on from there.
    reset = enc.encode(*messages(3, T0 - 20 * 10**9))
    assert reset.frame_type == "key" and kinds(reset) == ["clock_reset"]
    assert reset.notes[0].text == "capture stamps went back 20.2 s (clock reset?): stream restarted with a key frame"
    after = enc.encode(*messages(4, T0 - 20 * 10**9 + PERIOD))
    assert after.frame_type == "predicted" and not after.notes

    # A gap of more than 1 s ahead: key frame.
    gap = enc.encode(*messages(0, T0 - 20 * 10**9 + PERIOD + 1_500_000_000))
    assert gap.frame_type == "key" and kinds(gap) == ["stamp_jump"]
    assert gap.notes[0].text == "capture stamps jumped 1.5 s ahead of the last encoded pair: key frame"

    c = enc.counts
    assert (c.pairs, c.key_frames, c.stale, c.clock_resets, c.unsupported) == (6, 3, 2, 1, 0)
    # Gap-free sequence numbers and frame indexes over the encoded pairs only.
    assert [r.sequence for r in (first, second, nxt, reset, after, gap)] == list(range(6))
    assert [read_header(r.packet).frame_index for r in (first, second, nxt, reset, after, gap)] == list(range(6))


@pytest.mark.parametrize("last,stamp,step", [
    (None, 5, "first"), (10, 10, "same"), (10, 11, "next"), (0, 10**9, "next"), (0, 10**9 + 1, "jump"),
    (10**9, 1, "back"), (10**9, 0, "reset"), (5 * 10**9, 0, "reset")])
def test_one_stamp_rule_for_the_stream_and_the_session(last, stamp, step):
    from mm_compress_ros.codec.keyframes import stamp_step

    assert stamp_step(last, stamp, 10**9) == step


def test_input_change_unsupported_input_bad_data_and_key_requests(model):
    enc = PairEncoder(model, quality=3, gop=100)
    enc.encode(*messages(0, T0))
    small = tuple(np.ascontiguousarray(a[:64, :96]) for a in crop_pair(1))
    changed = enc.encode(*messages(1, T0 + PERIOD, pair=small))
    assert changed.frame_type == "key" and kinds(changed) == ["input_changed"]
    assert changed.notes[0].text == ("input changed from rgb 192x128 rgb8, thermal 192x128 mono8 to rgb "
                                     "96x64 rgb8, thermal 96x64 mono8: key frame")
    h = read_header(changed.packet)
    assert (h.rgb_size, h.thermal_size) == ((64, 96), (64, 96))
    # An encoding change at the same size is an input change too.
    bgr = enc.encode(*messages(2, T0 + 2 * PERIOD, pair=small, rgb_encoding="bgr8"))
    assert bgr.frame_type == "key" and "96x64 rgb8" in bgr.notes[0].text and "96x64 bgr8" in bgr.notes[0].text

    # Encodings the codec cannot take: skipped and counted, nothing else changes.
    rgb_msg, th_msg = messages(3, T0 + 3 * PERIOD, pair=small, rgb_encoding="bgr8")
    rgb_msg.encoding, th_msg.encoding = "bayer_rggb8", "32FC1"
    bad = enc.encode(rgb_msg, th_msg)
    assert bad.packet is None and kinds(bad) == ["unsupported"]
    assert bad.notes[0].text == "unsupported encodings bayer_rggb8/32FC1 (expected rgb8/bgr8 and mono8/mono16/16UC1)"

    # Image data shorter than step * height: an exception, and the stream state is as it was.
    rgb_msg, th_msg = messages(3, T0 + 3 * PERIOD, pair=small, rgb_encoding="bgr8")
    rgb_msg.data = rgb_msg.data[: rgb_msg.data.size // 2]
    with pytest.raises(ValueError, match="image data has"):
        enc.encode(rgb_msg, th_msg)
    ok = enc.encode(*messages(3, T0 + 3 * PERIOD, pair=small, rgb_encoding="bgr8"))
    assert ok.frame_type == "predicted" and not ok.notes and ok.sequence == 3

    enc.request_key_frame()
    asked = enc.encode(*messages(4, T0 + 4 * PERIOD, pair=small, rgb_encoding="bgr8"))
    assert asked.frame_type == "key" and not asked.notes
    last = enc.encode(*messages(0, T0 + 5 * PERIOD, pair=small, rgb_encoding="bgr8"))
    assert last.frame_type == "predicted"
    c = enc.counts
    assert (c.pairs, c.key_frames, c.unsupported, c.stale, c.clock_resets) == (6, 4, 1, 0, 0)


def test_resize_scales_thermal_by_the_rgb_factors_and_keys_on_input_changes(model):
    enc = PairEncoder(model, resize=(96, 72), quality=3, gop=100)
    first = enc.encode(*messages(0, T0, pair=half_thermal_pair(0)))   # RGB 256x192, thermal 128x96
    h = read_header(first.packet)
    assert (h.rgb_size, h.thermal_size) == ((72, 96), (36, 48))   # both scaled by 0.375
    assert enc.encode(*messages(1, T0 + PERIOD, pair=half_thermal_pair(1))).frame_type == "predicted"
    # Another input size that resizes to the same coded sizes: still a new input, so a key frame
    # (the codec alone would see no change).
    rgb, th = half_thermal_pair(2)
    bigger = (np.ascontiguousarray(np.repeat(np.repeat(rgb, 2, 0), 2, 1)),
              np.ascontiguousarray(np.repeat(np.repeat(th, 2, 0), 2, 1)))
    changed = enc.encode(*messages(2, T0 + 2 * PERIOD, pair=bigger))
    assert changed.frame_type == "key" and kinds(changed) == ["input_changed"]
    h = read_header(changed.packet)
    assert (h.rgb_size, h.thermal_size) == ((72, 96), (36, 48))
    with pytest.raises(ValueError, match="resize"):
        PairEncoder(model, resize=(8, 8))


def test_decoded_images_keep_headers_and_original_encodings(model):
    """bgr8 + mono16 in, through an EncodedFrame (serialized as bag encode writes it), decoded:
    the images come back bgr8 and mono16 with their own stamps and frame_ids."""
    from mm_compress_ros.codec.stream import StreamDecoder

    enc, dec = PairEncoder(model, quality=3, gop=2), StreamDecoder(model)
    cls = STORE.types[ENCODED_FRAME]
    for i in range(3):
        rgb_msg, th_msg = messages(i, T0 + i * PERIOD, rgb_encoding="bgr8", thermal_encoding="mono16")
        res = enc.encode(rgb_msg, th_msg)
        raw = STORE.serialize_cdr(encoded_frame(cls, rgb_msg, th_msg, res,
                                                data=np.frombuffer(res.packet, np.uint8)), ENCODED_FRAME)
        msg = STORE.deserialize_cdr(raw, ENCODED_FRAME)
        assert (msg.sequence, msg.frame_type, msg.codec, msg.quality) == (
            i, cls.FRAME_KEY if i % 2 == 0 else cls.FRAME_PREDICTED, "mmvc", 3)
        assert (msg.rgb_encoding, msg.thermal_encoding, msg.thermal_frame_id) == ("bgr8", "mono16", "thermal_optical")
        pair = dec.decode(msg.data.tobytes())
        images = {m: make_image(STORE, *decoded_image(msg, pair, m)) for m in ("rgb", "thermal")}
        for m, src, arr in (("rgb", rgb_msg, pair.rgb), ("thermal", th_msg, pair.thermal)):
            img = images[m]
            assert (img.encoding, img.width, img.height) == (src.encoding, src.width, src.height)
            assert stamp_to_ns(img.header.stamp) == stamp_to_ns(src.header.stamp)
            assert img.header.frame_id == src.header.frame_id
            assert np.array_equal(image_to_numpy(img), arr)
        assert image_to_numpy(images["thermal"]).dtype == np.uint16
    # The packet's formats describe the pixels: they win over the message's encoding fields.
    msg.rgb_encoding, msg.thermal_encoding = "rgb8", "mono8"
    assert [decoded_image(msg, pair, m)[1] for m in ("rgb", "thermal")] == ["bgr8", "mono16"]
    # A packet of thermal format 8UC1 (StreamEncoder takes it; sensor_msgs users know it as mono8).
    from mm_compress_ros.codec.stream import StreamEncoder

    rgb, th = crop_pair(0)
    pair = StreamDecoder(model).decode(StreamEncoder(model, gop=1).encode(rgb, th, thermal_format="8UC1"))
    assert pair.thermal_format == "8UC1" and decoded_image(msg, pair, "thermal")[1] == "mono8"


def test_session_and_bridge_do_not_import_rclpy():
    code = ("import sys, mm_compress_ros.link.pair_encoder, mm_compress_ros.io.encoded_frame; "
            "sys.exit(1 if 'rclpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
