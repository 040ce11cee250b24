"""The pair decoder (mm_compress_ros.link.pair_decoder): the decoding policy of decoder_node, `bag
decode` and `mm-compress decode` on real frame crops, without ROS: each packet parsed once and the
parsed packet handed on, one waiting-for-a-key-frame state, sequence gaps, corrupt packets, the
model the stream names (codec/zoo.decoding_choice), and the notes it says."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from codec_fixtures import crop_pair
from mm_compress_ros.codec import packet as P
from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder
from mm_compress_ros.link.notes import Throttle
from mm_compress_ros.link.pair_decoder import PairDecoder

pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def packets():
    """Eight standard-profile packets of real crops, GOP 4: key frames at 0 and 4."""
    enc = StreamEncoder(None, gop=4, reference_codec="h264", thermal_codec="h264", encoder="software")
    return [enc.encode(*crop_pair(i, 64, 96)) for i in range(8)]


def kinds(result):
    return [n.kind for n in result.notes]


def test_decodes_like_the_stream_decoder_and_hands_the_parsed_packet_on(packets):
    dec, ref = PairDecoder(), StreamDecoder(None)
    for i, pkt in enumerate(packets):
        res = dec.decode(pkt, sequence=i)
        want = ref.decode(pkt)
        assert np.array_equal(res.pair.rgb, want.rgb) and np.array_equal(res.pair.thermal, want.thermal)
        assert isinstance(res.packet, P.Packet) and res.packet.header == P.read_packet(pkt).header
        assert res.header is res.packet.header and res.error is None
    assert kinds(dec.decode(packets[0], sequence=8)) == []   # a key frame while decoding: nothing to say
    c = dec.counts
    assert (c.received, c.decoded, c.key_frames, c.skipped, c.gaps, c.lost, c.corrupt) == (9, 9, 3, 0, 0, 0, 0)
    assert dec.model is None and not dec.waiting_for_key and not dec.want_key
    # A parsed packet is taken as it is (not parsed again), by the pair decoder and the stream decoder.
    parsed = P.read_packet(packets[0])
    assert P.read_packet(parsed) is parsed
    assert StreamDecoder(None).decode(parsed).frame_type == "key"
    assert PairDecoder().decode(parsed).pair.index == 0


def test_one_waiting_state_gaps_and_corrupt_packets(packets):
    dec = PairDecoder()
    assert dec.waiting_for_key
    late = dec.decode(packets[1], sequence=1)   # joined mid-GOP: waits, and asks for a key frame
    assert late.pair is None and kinds(late) == [] and dec.want_key and dec.counts.skipped == 1
    first = dec.decode(packets[4], sequence=4)
    assert first.pair.frame_type == "key" and kinds(first) == ["decoding"]
    assert first.notes[0].text == "key frame at sequence 4: decoding again"
    assert not dec.want_key and not dec.waiting_for_key
    assert (dec.counts.gaps, dec.counts.lost) == (1, 2)
    # Two messages lost: the next predicted frame is not output; said once, when the wait begins.
    lost = dec.decode(packets[7], sequence=7)
    assert lost.pair is None and kinds(lost) == ["waiting"] and dec.waiting_for_key and dec.want_key
    assert lost.notes[0].text == "waiting for a key frame: 2 message(s) lost before sequence 7"
    assert (dec.counts.gaps, dec.counts.lost, dec.counts.skipped) == (2, 4, 2)
    # A corrupt packet: counted, its frame index still reported; the stream waits for a key frame.
    dec = PairDecoder()
    assert dec.decode(packets[0]).pair is not None
    bad = bytearray(packets[1])
    bad[-10] ^= 0xFF
    res = dec.decode(bytes(bad))
    assert res.pair is None and res.packet is None and isinstance(res.error, P.CorruptPacket)
    assert res.header.frame_index == 1 and kinds(res) == ["corrupt", "waiting"]
    assert res.notes[0].text.startswith("corrupt packet: frame 1: CRC32 mismatch")
    assert dec.decode(packets[2]).pair is None and dec.decode(packets[3]).pair is None
    assert dec.decode(packets[4]).pair.frame_type == "key"
    assert (dec.counts.corrupt, dec.counts.skipped, dec.counts.decoded) == (1, 2, 2)
    # An error beside the packet (a model that would not load): counted, waits for a key frame.
    notes = dec.error(RuntimeError("boom"))
    assert [n.kind for n in notes] == ["waiting"] and dec.waiting_for_key and dec.counts.corrupt == 2


def test_model_follows_the_stream(packets):
    from mm_compress_ros.codec.zoo import decoding_choice, load_model

    model = load_model("mmvc", direction="thermal_given_rgb", device="cpu")
    enc = StreamEncoder(model, gop=2, quality=3, reference_codec="h264", encoder="software")
    learned = [enc.encode(*crop_pair(i, 64, 96)) for i in range(3)]
    h = P.read_header(learned[0])
    assert decoding_choice(h) == ("mmvc", "thermal_given_rgb", None)
    assert decoding_choice(P.read_header(packets[0])) is None            # standard profile: no model
    assert decoding_choice(P.read_header(packets[0]), "mmrt")[0] == "mmrt"  # one named wins
    dec = PairDecoder(device="cpu")
    assert dec.decode(packets[0]).pair is not None and dec.model is None
    res = dec.decode(learned[0])   # another stream at a key frame: no frame lost, nothing waited for
    assert kinds(res) == ["model"] and res.pair is not None and dec.model.model_id == "mmvc"
    assert res.notes[0].text.startswith("stream uses model mmvc (thermal_given_rgb)")
    assert [dec.decode(p).pair is not None for p in learned[1:]] == [True, True]
    back = dec.decode(packets[4])   # the stream goes back to the standard profile at a key frame
    assert back.pair is not None and dec.model is None
    assert back.notes[0].text == "stream is in the standard profile: no model needed"
    # A model loaded at start (the decoder node's ``model``) serves a stream that names it.
    pre = PairDecoder(device="cpu", preload=("mmvc", "thermal_given_rgb"))
    assert pre.model is not None and kinds(pre.decode(learned[0])) == ["decoding"]


def test_throttle_says_a_kind_at_most_once_per_period():
    now = [0.0]
    t = Throttle(clock=lambda: now[0])
    assert t.ready("a", 5.0) and not t.ready("a", 5.0) and t.ready("b", 5.0)
    now[0] = 4.9
    assert not t.ready("a", 5.0)
    now[0] = 5.0
    assert t.ready("a", 5.0) and t.ready("a", 0.0)


def test_link_imports_no_rclpy():
    code = ("import sys, mm_compress_ros.link.pair_decoder, mm_compress_ros.link.pair_encoder, "
            "mm_compress_ros.link.synchronizer, mm_compress_ros.bag.encode, mm_compress_ros.bag.decode; "
            "sys.exit(1 if 'rclpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_codec_imports_no_message_shapes():
    """codec/ is numpy in, bytes out: it imports neither ROS nor the message modules (io/ros_image,
    io/encoded_frame) nor link/."""
    code = ("import sys, mm_compress_ros.codec.stream, mm_compress_ros.codec.zoo, mm_compress_ros.codec.keyframes; "
            "bad = [m for m in sys.modules if m == 'rclpy' or m.startswith(('mm_compress_ros.io', "
            "'mm_compress_ros.link', 'mm_compress_ros.ros', 'mm_compress_ros.bag'))]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
