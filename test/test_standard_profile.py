"""The standard profile (issue 21): both cameras as standard streams, and 16-bit thermal that keeps
its values: H.264/H.265 thermal layers, 12-bit H.265 for mono16 counts, lossless, key frames when
16-bit values leave the GOP's range, the encoder's largest error in every header, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from codec_fixtures import DATA, crop_pair, frame, need_data, psnr

from mm_compress_ros.codec.packet import NO_MAX_ERROR, read_header
from mm_compress_ros.codec.stream import InputError, StreamDecoder, StreamEncoder

pytestmark = pytest.mark.needs_data


def _pairs(n, **crop):
    return [crop_pair(i, **crop) for i in range(n)]


def _radiometric(n, **crop):
    from mm_compress_ros.io.radiometric import synthetic_radiometric

    pairs = _pairs(n, **crop)
    return [r for r, _ in pairs], synthetic_radiometric([t for _, t in pairs], bits=14, seed=3)


def _round_trip(enc, rgbs, ths):
    dec = StreamDecoder(None)
    packets = [enc.encode(r, t) for r, t in zip(rgbs, ths)]
    return packets, [dec.decode(p) for p in packets]


@pytest.mark.parametrize("thermal_codec", ["h264", "h265"])
def test_standard_thermal_layer_round_trips_real_frames_without_a_model(thermal_codec):
    pairs = _pairs(6)
    enc = StreamEncoder(None, gop=3, reference_codec="h264", thermal_codec=thermal_codec)
    packets, out = _round_trip(enc, *zip(*pairs))
    heads = [read_header(p) for p in packets]
    assert [h.frame_type_name for h in heads] == ["key", "predicted", "predicted"] * 2
    assert all(h.profile == "standard" and not h.needs_model and h.model_id == "" for h in heads)
    assert all(h.thermal_codec == thermal_codec and h.thermal_qp == h.reference_qp for h in heads)
    assert [n for _, n in heads[1].layout] == ["video", "video"]
    for (rgb, th), pair, h in zip(pairs, out, heads):
        assert pair.thermal.dtype == np.uint8 and pair.thermal.shape == th.shape
        assert psnr(th, pair.thermal) > 36 and psnr(rgb, pair.rgb) > 28
        # the header's largest error is the decoded picture's, exactly
        assert h.thermal_max_error == int(np.abs(pair.thermal.astype(int) - th.astype(int)).max())
    # the encoder's own reconstruction is the decoder's output
    assert np.array_equal(enc.last_pair().thermal, out[-1].thermal)
    assert np.array_equal(enc.last_pair().rgb, out[-1].rgb)


def test_the_default_profile_is_the_standard_one_and_takes_no_model():
    rgb, th = crop_pair(0)
    enc = StreamEncoder(None)
    h = read_header(enc.encode(rgb, th))
    assert (h.reference_codec, h.thermal_codec, h.profile) == ("h264", "h264", "standard")
    # a radiometric camera with the default settings: H.265 at 12 bits (H.264 codes 8 bits only)
    rgbs, ths = _radiometric(1)
    h16 = read_header(enc.encode(rgbs[0], ths[0]))
    assert (h16.thermal_codec, h16.thermal_format, h16.frame_type_name) == ("h265", "mono16", "key")
    from mm_compress_ros.codec.zoo import encoding_model, load_model

    assert encoding_model("h264", "h264") is None
    with pytest.raises(ValueError, match="takes no model"):
        StreamEncoder(load_model("mmrt", device="cpu"), thermal_codec="h264")


def test_odd_sizes_and_a_thermal_camera_that_changes_resolution_mid_stream():
    pairs = _pairs(3, h=121, w=161)
    rgb3, th3 = crop_pair(3, h=121, w=161)
    th_small = np.ascontiguousarray(th3[:61, :81])   # the thermal camera switched resolution
    enc = StreamEncoder(None, gop=10)
    packets, out = _round_trip(enc, [*[r for r, _ in pairs], rgb3], [*[t for _, t in pairs], th_small])
    assert [read_header(p).frame_type_name for p in packets] == ["key", "predicted", "predicted", "key"]
    assert enc.last_key_reason == "input changed"
    assert out[-1].thermal.shape == (61, 81) and out[0].rgb.shape == (121, 161, 3)


def test_mono16_by_h265_at_12_bits_comes_back_as_counts_within_the_reported_bound():
    rgbs, ths = _radiometric(5)
    enc = StreamEncoder(None, gop=10, thermal_codec="h265", quality=48)
    packets, out = _round_trip(enc, rgbs, ths)
    heads = [read_header(p) for p in packets]
    for th, pair, h in zip(ths, out, heads):
        assert pair.thermal.dtype == np.uint16 and pair.thermal_format == "mono16"
        diff = pair.thermal.astype(int) - th.astype(int)
        span = int(th.max()) - int(th.min())
        assert int(np.abs(diff).max()) == h.thermal_max_error < 0.1 * span
        assert np.sqrt(np.mean(diff.astype(float) ** 2)) < 0.02 * span
        lo, hi = h.thermal_range
        assert lo <= th.min() and th.max() <= hi


def test_a_hot_object_entering_a_16_bit_gop_forces_a_new_range_and_is_never_clipped():
    """The reported bug: a hot patch of 30000 counts after the key frame came back as 18783."""
    rgbs, ths = _radiometric(4)
    hot = ths[2].copy()
    hot[20:40, 30:60] = 30000
    ths[2] = hot
    for codec in ("h265", "lossless"):
        enc = StreamEncoder(None, gop=10, thermal_codec=codec)
        packets, out = _round_trip(enc, rgbs, ths)
        types = [read_header(p).frame_type_name for p in packets]
        if codec == "h265":
            assert types == ["key", "predicted", "key", "predicted"]
            assert enc.last_key_reason == "thermal range"
        patch = out[2].thermal[22:38, 32:58].astype(int)
        assert abs(int(np.median(patch)) - 30000) <= read_header(packets[2]).thermal_max_error


def test_a_hot_object_in_the_learned_thermal_layer_forces_a_key_frame_too():
    from mm_compress_ros.codec.zoo import load_model

    rgbs, ths = _radiometric(3, h=64, w=64)
    hot = ths[1].copy()
    hot[10:30, 10:30] = 30000
    ths[1] = hot
    model = load_model("mmrt", device="cpu")
    enc = StreamEncoder(model, gop=10, reference_codec="h264")
    dec = StreamDecoder(model)
    packets = [enc.encode(r, t) for r, t in zip(rgbs, ths)]
    out = [dec.decode(p) for p in packets]
    assert [read_header(p).frame_type_name for p in packets] == ["key", "key", "predicted"]
    assert int(np.median(out[1].thermal[12:28, 12:28])) > 27000        # not clipped at the old range
    assert read_header(packets[1]).thermal_max_error != NO_MAX_ERROR


def test_lossless_is_exact_for_the_real_radiometric_frame_and_synthetic_14_bit_sequences():
    from mm_compress_ros.io.radiometric import read_radiometric

    need_data()
    real = read_radiometric(DATA / "radiometric" / "example_radiometric.tiff")
    rgb_full, _ = frame(0)
    rgb_real = np.ascontiguousarray(rgb_full[:real.shape[0] // 4 * 2, :real.shape[1] // 4 * 2])
    rgbs, ths = _radiometric(4, h=127, w=161)
    extremes = ths[0].copy()
    extremes[0, 0], extremes[-1, -1] = 0, 65535
    enc = StreamEncoder(None, gop=3, thermal_codec="lossless")
    packets, out = _round_trip(enc, [rgb_real, *rgbs, rgbs[0]], [real, *ths, extremes])
    for th, pair, p in zip([real, *ths, extremes], out, packets):
        assert pair.thermal.dtype == np.uint16 and np.array_equal(pair.thermal, th)
        assert read_header(p).thermal_max_error == 0
    # 8-bit thermal losslessly too
    pairs = _pairs(2)
    _, out8 = _round_trip(StreamEncoder(None, thermal_codec="lossless"), *zip(*pairs))
    assert all(o.thermal.dtype == np.uint8 and np.array_equal(o.thermal, t) for (_, t), o in zip(pairs, out8))


def test_16_bit_thermal_asked_for_an_8_bit_only_codec_is_a_one_line_error():
    rgbs, ths = _radiometric(1)
    enc = StreamEncoder(None, thermal_codec="h264")
    with pytest.raises(InputError, match=r"codes 8-bit thermal only; for mono16 use thermal codec h265"):
        enc.encode(rgbs[0], ths[0])
    # nothing was sent: the stream goes on with a key frame once the input is right
    rgb, th = crop_pair(0)
    assert read_header(enc.encode(rgb, th)).frame_type_name == "key"


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mm_compress_ros.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=240)


def test_cli_lossless_mono16_round_trip_is_bit_exact_and_info_reports_the_bound(tmp_path):
    from mm_compress_ros.io.frames import read_thermal, write_rgb, write_thermal

    rgbs, ths = _radiometric(4)
    for sub in ("rgb", "thermal"):
        (tmp_path / "in" / sub).mkdir(parents=True)
    for i, (r, t) in enumerate(zip(rgbs, ths)):
        write_rgb(tmp_path / "in" / "rgb" / f"{i:04d}.png", r)
        write_thermal(tmp_path / "in" / "thermal" / f"{i:04d}.png", t)
    for codec, exact in (("lossless", True), ("h265", False)):
        s = tmp_path / f"{codec}.mmc"
        res = _cli("encode", "--rgb", tmp_path / "in" / "rgb", "--thermal", tmp_path / "in" / "thermal",
                   "--out", s, "--thermal-codec", codec, "--quiet", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["profile"] == "standard"
        info = json.loads(_cli("info", s, cwd=tmp_path).stdout)
        assert info["thermal_codec"] == codec and info["thermal"]["format"] == "mono16"
        assert (info["thermal_max_error"] == 0) == exact and info["thermal_max_error"] is not None
        assert all("level" in f and "rgb_qp" in f for f in info["frames"])
        res = _cli("decode", s, "--out", tmp_path / f"dec_{codec}", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        for i, t in enumerate(ths):
            back = read_thermal(tmp_path / f"dec_{codec}" / "thermal" / f"{i:04d}.png")
            assert back.dtype == np.uint16
            err = int(np.abs(back.astype(int) - t.astype(int)).max())
            assert err == 0 if exact else 0 < err <= info["thermal_max_error"]


def test_cli_one_line_errors_for_profiles_that_cannot_be(tmp_path):
    from codec_fixtures import write_crops

    src = write_crops(tmp_path / "src", 2, sixteen_bit=True)
    cases = [(["--thermal-codec", "h264"], "codes 8-bit thermal only"),
             (["--thermal-codec", "h264", "--model", "mmrt"], "takes no model"),
             (["--thermal-codec", "h265", "--reference-codec", "learned"], "needs a standard RGB layer")]
    for extra, msg in cases:
        res = _cli("encode", "--rgb", src / "rgb", "--thermal", src / "thermal", "--out", tmp_path / "x.mmc",
                   "--quiet", *extra, cwd=tmp_path)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and msg in res.stderr, res.stderr
