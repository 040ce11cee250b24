"""The hybrid profile: RGB as low-delay H.264/H.265 (libavcodec through PyAV), thermal coded by the
learned codec given libavcodec's decode of the exact bytes sent. Real frames, real encoders."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from codec_fixtures import REPO, crop_pair, frame, half_thermal_pair, psnr, write_crops
from mm_compress_ros.codec import packet as P
from mm_compress_ros.codec.stream import InputError, StreamDecoder, StreamEncoder
from mm_compress_ros.codec.videocodec import (LowDelayEncoder, VideoCodecError, VideoDecoder, from_yuv,
                                              to_yuv)
from mm_compress_ros.codec.zoo import load_model
from mm_compress_ros.io.frames import read_rgb, read_thermal

CODECS = ["h264", "h265"]
# NAL unit types: (parameter sets, IDR picture) per codec
NAL = {"h264": ({7, 8}, {5}), "h265": ({32, 33, 34}, {19, 20})}


@pytest.fixture(scope="module")
def model():
    return load_model("mmvc", direction="thermal_given_rgb", device="cpu")


def nal_types(au: bytes, codec: str) -> set[int]:
    types, i = set(), 0
    while (i := au.find(b"\x00\x00\x01", i)) >= 0:
        b = au[i + 3]
        types.add(b & 0x1F if codec == "h264" else (b >> 1) & 0x3F)
        i += 3
    return types


@pytest.mark.parametrize("codec", CODECS)
def test_low_delay_one_access_unit_per_frame_key_frames_on_request_with_parameter_sets(codec):
    enc, dec = LowDelayEncoder(codec, "software"), VideoDecoder(codec)
    keys = {0, 3}
    for i in range(5):
        rgb, _ = crop_pair(i)
        au = enc.encode(rgb, 30, key=i in keys)   # raises when the encoder holds a frame back
        types = nal_types(au, codec)
        params, idr = NAL[codec]
        assert au.startswith(b"\x00\x00\x00\x01") or au.startswith(b"\x00\x00\x01")  # Annex B
        if i in keys:
            assert params <= types and types & idr, (i, types)
        else:
            assert not (types & idr) and not (types & params), (i, types)
        out = dec.decode(au, rgb.shape[:2], 3)   # one picture out for this access unit, at once
        assert out.shape == rgb.shape and psnr(rgb, out) > 30


def test_a_late_joiner_decodes_from_the_next_key_frame():
    enc = LowDelayEncoder("h264", "software")
    aus = [enc.encode(crop_pair(i)[0], 28, key=i in (0, 3)) for i in range(5)]
    late = VideoDecoder("h264")
    with pytest.raises(VideoCodecError):   # a predicted picture without its references
        late.decode(aus[1], crop_pair(1)[0].shape[:2], 3)
    for i in (3, 4):
        assert psnr(crop_pair(i)[0], late.decode(aus[i], crop_pair(i)[0].shape[:2], 3)) > 30


def test_colour_conversion_round_trip_and_odd_sizes():
    rgb, th = crop_pair(0, h=101, w=77)
    y, u, v = to_yuv(rgb)
    assert y.shape == (102, 78) and u.shape == (51, 39)
    back = from_yuv(y, u, v, rgb.shape[:2], 3)
    assert back.shape == rgb.shape and psnr(rgb, back) > 38
    assert np.abs(from_yuv(*to_yuv(th), th.shape, 1).astype(int) - th).max() <= 1


def test_nvenc_without_a_gpu_is_a_one_line_error_and_auto_falls_back():
    rgb, _ = crop_pair(0)
    auto = LowDelayEncoder("h265", "auto")
    auto.encode(rgb, 30, key=True)
    assert auto.name in ("libx265", "hevc_nvenc")
    import torch
    if not torch.cuda.is_available():
        assert auto.name == "libx265"
        with pytest.raises(VideoCodecError) as e:
            LowDelayEncoder("h265", "nvenc").encode(rgb, 30, key=True)
        assert "\n" not in str(e.value) and "hevc_nvenc" in str(e.value)


@pytest.mark.parametrize("codec", CODECS)
def test_hybrid_stream_states_identical_and_rgb_far_better_than_learned(model, codec):
    pairs = [crop_pair(i) for i in range(4)]
    enc = StreamEncoder(model, quality=3, gop=3, reference_codec=codec, encoder="software")
    dec = StreamDecoder(model)
    learned = StreamEncoder(model, quality=3, gop=3, reference_codec="learned")
    types = []
    for rgb, th in pairs:
        pkt = enc.encode(rgb, th)
        h, _ = P.read_packet(pkt)
        assert h.reference_codec == codec and h.profile == "hybrid" and 22 <= h.reference_qp <= 37
        out = dec.decode(pkt)
        mine = enc.last_pair()
        assert np.array_equal(mine.rgb, out.rgb) and np.array_equal(mine.thermal, out.thermal)
        types.append(out.frame_type)
        assert psnr(rgb, out.rgb) > 31 and psnr(th, out.thermal) > 28
        learned.encode(rgb, th)
        assert psnr(rgb, out.rgb) > psnr(rgb, learned.last_pair().rgb) + 5
    assert types == ["key", "predicted", "predicted", "key"]


def test_hybrid_with_half_resolution_thermal_and_16_bit_thermal(model):
    rgb, th = half_thermal_pair(0)
    th16 = (th.astype(np.uint16) * 64 + 3000)
    enc, dec = StreamEncoder(model, reference_codec="h265"), StreamDecoder(model)
    for _ in range(2):
        out = dec.decode(enc.encode(rgb, th16, thermal_format="mono16"))
        assert out.thermal.dtype == np.uint16 and out.thermal.shape == th.shape
        assert out.rgb.shape == rgb.shape
        assert psnr(th16, out.thermal, peak=float(th16.max() - th16.min())) > 22


def test_a_damaged_reference_access_unit_is_a_typed_error_then_the_next_key_frame_decodes(model):
    enc, dec = StreamEncoder(model, gop=2, reference_codec="h264"), StreamDecoder(model)
    pkts = [enc.encode(*crop_pair(i)) for i in range(3)]
    h, sections = P.read_packet(pkts[0])
    bad = P.write_packet(h, [bytes(len(sections[0])), *sections[1:]])  # CRC-valid, video replaced by zeros
    with pytest.raises(P.CorruptPacket):
        dec.decode(bad)
    assert dec.decode(pkts[1]) is None and dec.dropped == 1   # its reference is gone
    assert dec.decode(pkts[2]).frame_type == "key"


def test_16_bit_thermal_cannot_be_the_standard_codecs_reference():
    from mm_compress_ros.codec.multimodal import ModelConfig, MultiModalCodec
    from mm_compress_ros.codec.zoo import export_model
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    export_model(MultiModalCodec(ModelConfig(direction="rgb_given_thermal")), d / "rev-rgb_given_thermal.safetensors",
                 {"name": "rev"})
    rev = load_model(path=d / "rev-rgb_given_thermal.safetensors", direction="rgb_given_thermal", device="cpu")
    rgb, th = crop_pair(0)
    with pytest.raises(InputError, match="8-bit"):
        StreamEncoder(rev, reference_codec="h264").encode(rgb, th.astype(np.uint16) * 200, thermal_format="mono16")
    # 8-bit thermal as the reference of the reverse direction works
    enc, dec = StreamEncoder(rev, reference_codec="h264"), StreamDecoder(rev)
    out = dec.decode(enc.encode(rgb, th))
    assert psnr(th, out.thermal) > 30 and np.array_equal(enc.last_pair().rgb, out.rgb)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mm_compress_ros.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=600)


@pytest.mark.parametrize("codec", CODECS)
def test_across_processes_encoder_and_decoder_hold_bit_identical_frames(tmp_path, codec):
    """`mm-compress encode --recon` (the encoder's own reconstruction, i.e. the references it
    conditions on) in one process and `mm-compress decode` in another give identical images over
    GOPs; `info` splits every packet's bytes between the modalities."""
    src = write_crops(tmp_path / "src", 5, h=192, w=256, y=100, x=150)
    stream = tmp_path / "s.mmc"
    r = _cli("encode", "--rgb", src / "rgb", "--thermal", src / "thermal", "--out", stream, "--gop", 3,
             "--reference-codec", codec, "--thermal-codec", "learned", "--encoder", "software",
             "--recon", tmp_path / "recon", "--quiet",
             "--device", "cpu")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["profile"] == "hybrid" and res["reference_encoder"] == {"h264": "libx264", "h265": "libx265"}[codec]
    r = _cli("decode", stream, "--out", tmp_path / "dec", "--quiet", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    for i in range(5):
        for mod, read in (("rgb", read_rgb), ("thermal", read_thermal)):
            a, b = read(tmp_path / "recon" / mod / f"{i:04d}.png"), read(tmp_path / "dec" / mod / f"{i:04d}.png")
            assert np.array_equal(a, b), (mod, i)
    info = json.loads(_cli("info", stream).stdout)
    assert info["reference_codec"] == codec and [f["type"] for f in info["frames"]] == \
        ["key", "predicted", "predicted", "key", "predicted"]
    for f in info["frames"]:
        assert f["rgb_bytes"] + f["thermal_bytes"] == f["bytes"]
        assert ("ref_video" in f["sections"]) and ("dep_y" in f["sections"])
    assert info["rgb_bytes"] + info["thermal_bytes"] == info["total_bytes"] == stream.stat().st_size
