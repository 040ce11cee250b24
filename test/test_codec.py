"""The multi-modality codec on real frames: round trips, exactness, errors, formats, directions."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from codec_fixtures import REPO, crop_pair, half_thermal_pair, psnr
from mm_compress_ros.codec import packet as P
from mm_compress_ros.codec.multimodal import ModelConfig, MultiModalCodec
from mm_compress_ros.codec.stream import InputError, StreamDecoder, StreamEncoder
from mm_compress_ros.codec.zoo import ModelError, export_model, load_model


@pytest.fixture(scope="module")
def model():
    return load_model("mmvc", direction="thermal_given_rgb", device="cpu")


@pytest.fixture(scope="module")
def reverse_model(tmp_path_factory):
    """The rgb_given_thermal direction with freshly initialised weights: it tests the mechanics
    of the reverse direction (shapes, channel counts, bitstream), not its quality."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("rev") / "rev-rgb_given_thermal.safetensors"
    export_model(MultiModalCodec(ModelConfig(direction="rgb_given_thermal")), path, {"name": "rev"})
    return load_model(path=path, direction="rgb_given_thermal", device="cpu")


def _roundtrip(model, pairs, gop=3, quality=3):
    enc, dec = StreamEncoder(model, quality=quality, gop=gop), StreamDecoder(model)
    out = []
    for rgb, th in pairs:
        pkt = enc.encode(rgb, th)
        pair = dec.decode(pkt)
        assert pair is not None
        # the encoder's own reconstruction (its temporal context) equals what the decoder outputs
        ref = enc.last_decoded.ref if model.net.ref_name == "rgb" else enc.last_decoded.dep
        h, w = rgb.shape[:2]
        mine = (ref[0, :, :h, :w].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.array_equal(mine, pair.rgb)
        out.append((pkt, pair, enc.last_frame_type))
    return out


def test_round_trip_on_real_frames_with_predicted_frames(model):
    pairs = [crop_pair(i) for i in range(4)]
    out = _roundtrip(model, pairs, gop=3)
    assert [t for _, _, t in out] == ["key", "predicted", "predicted", "key"]
    for (rgb, th), (_, pair, _) in zip(pairs, out):
        assert pair.rgb.shape == rgb.shape and pair.rgb.dtype == np.uint8
        assert pair.thermal.shape == th.shape and pair.thermal.dtype == np.uint8
        assert psnr(rgb, pair.rgb) > 18 and psnr(th, pair.thermal) > 20
    assert {P.read_header(p).frame_index for p, _, _ in out} == {0, 1, 2, 3}


def test_higher_quality_spends_more_bits_and_gains_psnr(model):
    rgb, th = crop_pair(0)
    sizes, quality = [], []
    for q in (1, model.levels):
        (pkt, pair, _), = _roundtrip(model, [(rgb, th)], quality=q)
        sizes.append(len(pkt))
        quality.append(psnr(rgb, pair.rgb) + psnr(th, pair.thermal))
    assert sizes[1] > sizes[0] and quality[1] > quality[0]


def test_reverse_direction(reverse_model):
    pairs = [crop_pair(i) for i in range(2)]
    out = _roundtrip(reverse_model, pairs, gop=2)
    h = P.read_header(out[0][0])
    assert h.direction == "rgb_given_thermal" and out[1][2] == "predicted"
    assert out[0][1].rgb.shape == pairs[0][0].shape


def test_rgb_at_twice_the_thermal_resolution(model):
    pairs = [half_thermal_pair(i) for i in range(2)]
    out = _roundtrip(model, pairs, gop=2)
    for (rgb, th), (_, pair, _) in zip(pairs, out):
        assert pair.rgb.shape == (192, 256, 3) and pair.thermal.shape == (96, 128)
        assert psnr(th, pair.thermal) > 20


def test_odd_sizes_are_padded_and_cropped_back(model):
    rgb, th = crop_pair(0, h=101, w=77)
    (_, pair, _), = _roundtrip(model, [(rgb, th)])
    assert pair.rgb.shape == (101, 77, 3) and pair.thermal.shape == (101, 77)


def test_sixteen_bit_thermal_comes_back_as_sixteen_bit(model):
    rgb, th8 = crop_pair(0)
    th16 = (th8.astype(np.uint16) * 8 + 7000).astype(np.uint16)  # a radiometric-like range
    enc, dec = StreamEncoder(model, quality=model.levels, gop=2), StreamDecoder(model)
    for fmt in ("mono16", "16UC1"):
        for _ in range(2):
            pair = dec.decode(enc.encode(rgb, th16, thermal_format=fmt))
            assert pair.thermal.dtype == np.uint16 and pair.thermal_format == fmt
            assert abs(float(pair.thermal.mean()) - float(th16.mean())) < 40
            # error relative to the 16-bit signal's span, as PSNR on 8-bit would measure it
            assert psnr(th16, pair.thermal, peak=float(th16.max() - th16.min())) > 20
    with pytest.raises(InputError):
        enc.encode(rgb, th8, thermal_format="mono16")


def test_bgr_input_comes_back_as_bgr(model):
    rgb, th = crop_pair(0)
    enc, dec = StreamEncoder(model, gop=1), StreamDecoder(model)
    pair = dec.decode(enc.encode(rgb, th, rgb_format="bgr8"))
    assert pair.rgb_format == "bgr8"
    assert psnr(rgb[..., ::-1], pair.rgb) > 18


def test_typed_errors_for_damaged_and_foreign_streams(model, reverse_model):
    rgb, th = crop_pair(0)
    pkt = StreamEncoder(model, gop=1).encode(rgb, th)
    dec = StreamDecoder(model)
    with pytest.raises(P.TruncatedPacket):
        dec.decode(pkt[: len(pkt) // 2])
    bad = bytearray(pkt)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(P.CorruptPacket):
        dec.decode(bytes(bad))
    foreign = StreamEncoder(reverse_model, gop=1).encode(rgb, th)
    with pytest.raises(P.ModelMismatch, match="rev"):
        dec.decode(foreign)
    with pytest.raises(P.BadMagic):
        dec.decode(b"\x89PNG\r\n\x1a\n" + pkt[8:])
    assert dec.decode(pkt) is not None  # a good key frame is decoded after all of that


def test_bad_inputs_to_the_encoder(model):
    enc = StreamEncoder(model)
    rgb, th = crop_pair(0)
    for bad_rgb, bad_th in ((rgb[..., 0], th), (rgb, rgb), (rgb.astype(np.float32), th), (rgb[:8, :8], th)):
        with pytest.raises(InputError):
            enc.encode(bad_rgb, bad_th)
    with pytest.raises(ValueError):
        StreamEncoder(model, quality=model.levels + 1)


def test_model_hash_must_match_its_card(tmp_path, model):
    torch.manual_seed(0)
    path = tmp_path / "x-thermal_given_rgb.safetensors"
    export_model(MultiModalCodec(), path, {"name": "x"})
    load_model(path=path, device="cpu")
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card"):
        load_model(path=path, device="cpu")


_DECODE_ELSEWHERE = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[2]))
from mm_compress_ros.codec.zoo import load_model
from mm_compress_ros.codec.stream import StreamDecoder
from mm_compress_ros.codec.packet import iter_stream
dec = StreamDecoder(load_model("mmvc", device="cpu"))
h = hashlib.sha256()
for pkt in iter_stream(open(sys.argv[1], "rb")):
    p = dec.decode(pkt)
    h.update(p.rgb.tobytes()); h.update(p.thermal.tobytes())
print(h.hexdigest())
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_bit_exact_decoding_in_another_process_with_other_threads(model, tmp_path, threads):
    import hashlib

    pairs = [crop_pair(i) for i in range(3)]
    out = _roundtrip(model, pairs, gop=3)
    stream = tmp_path / "s.mmc"
    stream.write_bytes(b"".join(p for p, _, _ in out))
    h = hashlib.sha256()
    for _, pair, _ in out:
        h.update(pair.rgb.tobytes())
        h.update(pair.thermal.tobytes())
    res = subprocess.run([sys.executable, "-c", _DECODE_ELSEWHERE, str(stream), str(threads)],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == h.hexdigest()


def test_cross_modal_context_carries_information(model):
    """The dependent (thermal) codec with the real decoded RGB beats the same codec fed a blank
    reference: fewer bits or better quality at the same level."""
    from mm_compress_ros.codec.stream import to_tensor

    net = model.net
    rgb, th = crop_pair(0, h=192, w=256, y=96, x=160)
    lv = torch.tensor([2])
    results = {}
    with torch.inference_mode():
        for name, ref_img in (("real", rgb), ("blank", np.zeros_like(rgb))):
            ref, dep = to_tensor(ref_img, "cpu"), to_tensor(th, "cpu")
            sections, _, dec = net.compress_key(ref, dep, lv)
            bits = 8 * sum(len(s) for s in sections[2:])
            err = float(((dec.dep - dep) ** 2).mean())
            results[name] = (bits, err)
    lam = 0.0067 * 255 ** 2
    n = th.size
    cost = {k: b / n + lam * e for k, (b, e) in results.items()}
    assert cost["real"] < cost["blank"], results


def test_encoder_and_decoder_states_are_identical_over_a_gop(model):
    enc, dec = StreamEncoder(model, gop=4), StreamDecoder(model)
    for i in range(4):
        rgb, th = crop_pair(i)
        dec.decode(enc.encode(rgb, th))
        assert torch.equal(enc.last_decoded.ref, dec._prev.ref)
        assert torch.equal(enc.last_decoded.dep, dec._prev.dep)


def test_key_frames_on_request_on_stamp_gaps_and_size_changes(model):
    enc = StreamEncoder(model, gop=100)
    types = []
    stamps = [0, 33, 66, 99, 2000, 2033, 1000, 1033]  # ms: a 1.9 s gap, then stamps going back
    for i, ms in enumerate(stamps):
        if i == 2:
            enc.request_key_frame()
        rgb, th = crop_pair(i % 4)
        enc.encode(rgb, th, stamp_ns=ms * 1_000_000)
        types.append(enc.last_frame_type[0])
    assert "".join(types) == "kpkpkpkp"
    enc.encode(*crop_pair(0, h=96, w=96))
    assert enc.last_frame_type == "key"


def test_recovery_after_a_dropped_packet(model):
    enc, dec = StreamEncoder(model, gop=3), StreamDecoder(model)
    packets = [enc.encode(*crop_pair(i % 4)) for i in range(7)]  # k p p k p p k
    outputs = [dec.decode(p) for i, p in enumerate(packets) if i != 1]  # packet 1 lost
    # frame 2 references the lost frame 1: never output; decoding resumes at the key frame 3
    assert [o.index if o else None for o in outputs] == [0, None, 3, 4, 5, 6]
    assert dec.dropped == 1 and dec.lost == 1
    # a reordered predicted frame is never decoded against the wrong reference either
    dec2 = StreamDecoder(model)
    order = [0, 2, 1, 3]
    got = [dec2.decode(packets[i]) for i in order]
    assert [o.index if o else None for o in got] == [0, None, None, 3]


def test_ten_percent_loss_and_reordering_never_yield_a_wrong_frame(model):
    """Every frame the decoder outputs is bit-identical to the clean decode of that frame."""
    import random

    enc = StreamEncoder(model, gop=5)
    packets = [enc.encode(*crop_pair(i % 4, h=64, w=64, y=160 + 8 * (i % 3))) for i in range(40)]
    clean_dec = StreamDecoder(model)
    clean = {p.index: p for p in map(clean_dec.decode, packets)}
    rng = random.Random(7)
    received = [p for p in packets if rng.random() >= 0.10]
    for i in range(0, len(received) - 1, 7):  # swap some neighbours
        received[i], received[i + 1] = received[i + 1], received[i]
    dec = StreamDecoder(model)
    outputs = [o for o in map(dec.decode, received) if o is not None]
    for o in outputs:
        ref = clean[o.index]
        assert np.array_equal(o.rgb, ref.rgb) and np.array_equal(o.thermal, ref.thermal), o.index
    assert dec.dropped > 0 and len(outputs) + dec.dropped == len(received)
    assert len(outputs) < len(received) <= 40
    assert all(o.frame_type == "key" for o in outputs[:1])
