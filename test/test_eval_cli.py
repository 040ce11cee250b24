"""`mm-compress eval` end to end on crops of a few real frames: the default (standard) profile, the
learned profile with a freshly exported temp model, and the one-line errors before any coding."""

import json

import numpy as np
import pytest

from conftest import DATA_ROOT
from mm_compress_ros.cli import main

SEQS = DATA_ROOT / "m3svd_seq"
pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained (freshly initialised) model exported like a shipped one; never committed."""
    import torch

    from mm_compress_ros.codec.multimodal import ModelConfig, MultiModalCodec
    from mm_compress_ros.codec.zoo import export_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny-thermal_given_rgb.safetensors"
    export_model(MultiModalCodec(ModelConfig(N=16, M=24, ctx=8, align=8, levels=3)), path,
                 {"name": "tiny", "summary": "untrained, for tests"})
    return path


def test_split_bits_adds_up_to_the_packet(tiny_model):
    from mm_compress_ros.codec.packet import read_packet
    from mm_compress_ros.codec.zoo import load_model
    from mm_compress_ros.eval.learned import run_sequence, split_bits
    from mm_compress_ros.codec.stream import StreamEncoder
    from mm_compress_ros.eval.sequences import center_crop
    from mm_compress_ros.io.frames import read_rgb, read_thermal

    model = load_model(path=tiny_model, device="cpu")
    seq = SEQS / "0111_1716"
    rgb = [center_crop(read_rgb(seq / "rgb" / f"{i:04d}.png"), (96, 64)) for i in range(2)]
    th = [center_crop(read_thermal(seq / "thermal" / f"{i:04d}.png"), (96, 64)) for i in range(2)]
    enc = StreamEncoder(model, quality=2, gop=2, stream_id=0)
    for r, t, kind in zip(rgb, th, ("key", "predicted")):
        pkt = enc.encode(r, t)
        assert enc.last_frame_type == kind
        h, sections = read_packet(pkt)
        bits = split_bits(pkt)
        assert bits["rgb"] + bits["thermal"] == pytest.approx(8 * len(pkt))
        payload_rgb = 8 * (len(sections[0]) + len(sections[1]))
        assert payload_rgb < bits["rgb"] < payload_rgb + 8 * (len(pkt) - sum(map(len, sections)))
        if kind == "key":  # the alignment section belongs to the dependent (thermal) side
            assert bits["thermal"] >= 8 * sum(len(s) for s in sections[2:5])
    res = run_sequence(model, rgb, th, quality=2, gop=2)
    assert [r.frame_type for r in res] == ["key", "predicted"]
    assert all(r.decoded["thermal"].shape == th[0].shape and r.decoded["rgb"].shape == rgb[0].shape for r in res)
    assert all(sum(r.bits.values()) == pytest.approx(r.packet_bits) for r in res)


def test_eval_cli_on_a_crop(tiny_model, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["eval", str(SEQS), "--sequences", "0111_1716", "--frames", "3", "--crop", "96x64",
               "--weights", str(tiny_model), "--reference-codec", "learned", "--quality", "1", "3",
               "--gop", "2", "--keyint", "2",
               "--qp", "27", "37", "47", "--jpeg-quality", "20", "60", "90", "--out", str(out),
               "--quiet", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    res = json.loads((out / "rd.json").read_text())
    assert set(res["codecs"]) == {"x265-intra", "x265-video", "jpeg", "tiny-image", "tiny-video"}
    assert res["sequences"] == [{"name": "0111_1716", "frames": 3, "rgb_size": [64, 96], "thermal_size": [64, 96]}]
    for name, c in res["codecs"].items():
        assert len(c["points"]) == (2 if name.startswith("tiny") else 3)
        for p in c["points"]:
            for m in ("thermal", "rgb"):
                f = p[m]["frames"]
                assert len(f["bits"]) == 3 and all(b > 0 for b in f["bits"])
                assert p[m]["bpp"] == pytest.approx(np.mean(f["bits"]) / (96 * 64))
                assert 5 < p[m]["psnr"] < 100 and 0 < p[m]["msssim"] <= 1
    # model frame types follow the GOP; image mode is all key frames
    assert res["codecs"]["tiny-video"]["points"][0]["thermal"]["frames"]["type"] == ["key", "predicted", "key"]
    assert set(res["codecs"]["tiny-image"]["points"][0]["rgb"]["frames"]["type"]) == {"key"}
    assert res["codecs"]["x265-video"]["points"][0]["rgb"]["frames"]["type"] == ["key", "predicted", "key"]
    assert set(res["codecs"]["x265-intra"]["points"][0]["thermal"]["frames"]["type"]) == {"key"}
    # anchors behave like anchors on real data: more bits, better PSNR, per modality
    for name in ("x265-intra", "jpeg"):
        pts = sorted(res["codecs"][name]["points"], key=lambda p: p["rgb"]["bpp"])
        assert [p["rgb"]["psnr"] for p in pts] == sorted(p["rgb"]["psnr"] for p in pts)
    bd = res["bd"]
    for m in ("thermal", "rgb"):
        assert isinstance(bd[m]["x265-video"]["bd_rate_psnr"], float)
        assert bd[m]["jpeg"]["bd_rate_psnr"] is None or bd[m]["jpeg"]["bd_rate_psnr"] > 0
    md = (out / "rd.md").read_text()
    assert "| codec | setting | bpp | PSNR (dB) | MS-SSIM |" in md and "BD-rate against x265-intra" in md
    for m in ("thermal", "rgb"):
        assert (out / f"rd_{m}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert printed["json"] == str(out / "rd.json")


@pytest.mark.parametrize("extra, message", [
    (["--crop", "12x12"], "smaller than 16x16"),
    (["--crop", "abc"], "WIDTHxHEIGHT"),
    (["--crop", "2000x100"], "larger than"),
    (["--sequences", "nope"], "no sequence nope"),
    (["--thermal-codec", "learned", "--weights", "/nonexistent/m.safetensors"], "--no-model"),
    (["--qp", "60"], "QP 60"),
    (["--frames", "-1"], "--frames"),
])
def test_eval_cli_one_line_errors(extra, message, tmp_path, capsys):
    args = ["eval", str(SEQS), "--no-model", "--frames", "1", "--anchors", "jpeg", "--out", str(tmp_path), "--quiet"]
    if "--weights" in extra:
        args.remove("--no-model")
    rc = main(args + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("mm-compress: error:") and message in err


def test_eval_measures_the_default_profile(tmp_path, capsys):
    """No profile flags: the product's default (standard: RGB and thermal as H.264 streams, no model),
    at levels of its 64; the cache keeps profiles apart."""
    from mm_compress_ros.codec.profiles import DEFAULT_REFERENCE_CODEC, DEFAULT_THERMAL_CODEC

    assert (DEFAULT_REFERENCE_CODEC, DEFAULT_THERMAL_CODEC) == ("h264", "auto")
    cache = tmp_path / "cache"
    base = ["eval", str(SEQS), "--sequences", "0111_1716", "--frames", "3", "--crop", "96x64", "--quality", "1", "64",
            "--modes", "video", "--gop", "2", "--keyint", "2", "--anchors", "x265-video", "--qp", "27", "47",
            "--no-msssim", "--quiet", "--threads", "1", "--cache", str(cache)]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    res = json.loads((tmp_path / "a" / "rd.json").read_text())
    assert res["profile"] == printed["profile"] == {"name": "standard", "reference_codec": "h264", "thermal_codec": "auto",
                                                    "thermal_codec_used": "h264", "model": None}
    assert "model" not in res
    assert list(res["codecs"]) == ["x265-video", "standard-h264+h264-video"]
    ours = res["codecs"]["standard-h264+h264-video"]
    assert ours["kind"] == "model" and ours["gop"] == 2 and "no model" in ours["label"]
    low, high = sorted(ours["points"], key=lambda p: p["setting"])
    assert (low["setting"], high["setting"]) == (1, 64)
    for m in ("rgb", "thermal"):
        assert low[m]["frames"]["type"] == ["key", "predicted", "key"]
        assert all(b > 0 for b in low[m]["frames"]["bits"] + high[m]["frames"]["bits"])
        assert low[m]["bpp"] == pytest.approx(np.mean(low[m]["frames"]["bits"]) / (96 * 64))
        assert low[m]["bpp"] < high[m]["bpp"] and 15 < low[m]["psnr"] < high[m]["psnr"]
    assert "| standard-h264+h264-video | level 64 |" in (tmp_path / "a" / "rd.md").read_text()
    assert printed["points_from_cache"] == 0 and len(list(cache.glob("*.json"))) == 4
    # the same profile again: every point from the cache; another profile: only the anchor's
    assert main(base + ["--out", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["points_from_cache"] == 4
    assert main(base + ["--thermal-codec", "h265", "--out", str(tmp_path / "c")]) == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["points_from_cache"] == 2 and printed["profile"]["thermal_codec_used"] == "h265"
    assert "standard-h264+h265-video" in json.loads((tmp_path / "c" / "rd.json").read_text())["codecs"]


@pytest.mark.parametrize("extra, message", [
    (["--thermal-codec", "h264", "--model", "mmrt"], "takes no model"),                                     # the default profile is standard
    (["--model", "mmrt", "--reference-codec", "learned"], "codes only the dependent modality"),
    (["--reference-codec", "learned", "--thermal-codec", "h264"], "needs a standard RGB layer"),
    (["--quality", "65"], "quality 65 is outside 1..64"),
    (["--thermal-codec", "learned", "--quality", "0"], "quality 0 is outside 1..64"),   # mmrt: 64 levels
    (["--reference-codec", "learned", "--quality", "7"], "quality 7 is outside 1..6"),  # mmvc: 6 levels
])
def test_eval_profile_errors_come_before_any_coding(extra, message, tmp_path, capsys):
    """What the profile cannot do is one line and exit status 2 before any point is coded (no cache
    entry written), not a traceback after the anchors."""
    cache = tmp_path / "cache"
    rc = main(["eval", str(SEQS), "--frames", "1", "--crop", "64x48", "--anchors", "jpeg", "--jpeg-quality", "50",
               "--out", str(tmp_path / "out"), "--cache", str(cache), "--quiet"] + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("mm-compress: error:") and message in err, err
    assert not cache.exists() and not (tmp_path / "out").exists()


def test_eval_cli_bad_data(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing"), "--no-model", "--quiet"]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing"), "--model", "mmrt", "--thermal-codec", "learned", "--quiet"]) == 2
    assert "no such file or directory" in capsys.readouterr().err   # the data, before any model is loaded
    (tmp_path / "empty").mkdir()
    assert main(["eval", str(tmp_path / "empty"), "--no-model", "--quiet"]) == 2
    assert "no sequences" in capsys.readouterr().err


def test_eval_cli_one_sequence_folder_anchors_only(tmp_path, capsys):
    out = tmp_path / "one"
    rc = main(["eval", str(SEQS / "0114_1551"), "--no-model", "--frames", "2", "--crop", "64x48",
               "--anchors", "jpeg", "--jpeg-quality", "30", "80", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "rd.json").read_text())
    assert list(res["codecs"]) == ["jpeg"] and res["sequences"][0]["name"] == "0114_1551"
    assert res["bd"]["rgb"]["jpeg"] == {"bpp_at_35dB": res["bd"]["rgb"]["jpeg"]["bpp_at_35dB"]}


def test_eval_cache_reuses_points_measured_on_the_same_frames(tmp_path, capsys):
    cache = tmp_path / "cache"
    base = ["eval", str(SEQS), "--sequences", "0111_1716", "--frames", "2", "--crop", "64x48", "--no-model",
            "--anchors", "jpeg", "x265-video", "--qp", "40", "--jpeg-quality", "40", "--quiet", "--cache", str(cache)]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["points_from_cache"] == 0 and len(list(cache.glob("*.json"))) == 2
    assert main(base + ["--out", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["points_from_cache"] == 2
    a = json.loads((tmp_path / "a" / "rd.json").read_text())["codecs"]
    b = json.loads((tmp_path / "b" / "rd.json").read_text())["codecs"]
    assert a == b
    # other frames (another crop) or another key-frame interval: measured again, not reused
    assert main(base[:7] + ["72x48"] + base[8:] + ["--out", str(tmp_path / "c")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["points_from_cache"] == 0
    assert main(base + ["--keyint", "1", "--out", str(tmp_path / "d")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["points_from_cache"] == 1  # jpeg only


def test_eval_single_modality_baseline(tiny_model, tmp_path, capsys):
    """The baseline codes thermal with a constant RGB input; only its thermal bits and quality count."""
    import torch

    from mm_compress_ros.codec.multimodal import ModelConfig, MultiModalCodec
    from mm_compress_ros.codec.zoo import export_model

    torch.manual_seed(1)
    single = tmp_path / "single-thermal_given_rgb.safetensors"
    export_model(MultiModalCodec(ModelConfig(N=16, M=24, ctx=8, align=8, levels=3)), single,
                 {"name": "single", "reference_input": "blank"})
    out = tmp_path / "eval"
    args = ["eval", str(SEQS), "--sequences", "0111_1716", "--frames", "2", "--crop", "96x64",
            "--weights", str(tiny_model), "--reference-codec", "learned", "--quality", "1", "3",
            "--modes", "image", "--anchors",
            "--out", str(out), "--quiet", "--threads", "1", "--no-msssim"]
    assert main(args + ["--baseline-weights", str(single)]) == 0, capsys.readouterr().err
    res = json.loads((out / "rd.json").read_text())
    assert set(res["codecs"]) == {"tiny-image", "single-image"}
    pts = res["codecs"]["single-image"]["points"]
    assert [p["setting"] for p in pts] == [1, 3]
    for p in pts:
        assert p["rgb"]["bpp"] is None and p["rgb"]["frames"]["bits"] == []
        assert len(p["thermal"]["frames"]["bits"]) == 2 and p["thermal"]["bpp"] > 0
    assert "single-image" in res["bd"]["thermal"] and "single-image" not in res["bd"]["rgb"]
    assert "| single-image | level 1 |" in (out / "rd.md").read_text()
    capsys.readouterr()
    assert main(args + ["--baseline-weights", str(tiny_model)]) == 2
    err = capsys.readouterr().err
    assert "not a single-modality model" in err and len(err.strip().splitlines()) == 1


def test_a_baseline_model_is_refused_for_streaming(tmp_path):
    from mm_compress_ros.codec.multimodal import ModelConfig, MultiModalCodec
    from mm_compress_ros.codec.zoo import ModelError, export_model, load_model

    single = tmp_path / "single-thermal_given_rgb.safetensors"
    export_model(MultiModalCodec(ModelConfig(N=16, M=16, levels=2)), single,
                 {"name": "single", "reference_input": "blank"})
    with pytest.raises(ModelError, match="evaluation baseline"):
        load_model(path=single, device="cpu")
    assert load_model(path=single, device="cpu", baseline_ok=True).card["reference_input"] == "blank"
