"""benchmarks/results.py (docs/results.md generator) and benchmarks/video_gop.py on tiny real crops."""

import json
import sys
from pathlib import Path

import pytest

from conftest import DATA_ROOT

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
SEQS = DATA_ROOT / "m3svd_seq"
pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    from mm_compress_ros.codec.multimodal import ModelConfig, MultiModalCodec
    from mm_compress_ros.codec.zoo import export_model

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("model") / "tiny-thermal_given_rgb.safetensors"
    export_model(MultiModalCodec(ModelConfig(N=16, M=24, ctx=8, align=8, levels=2)), path,
                 {"name": "tiny", "training": {"steps": 0, "cpu_hours": 0, "data": "none"}})
    return path


def test_video_gop_benchmark(tiny_model, tmp_path, capsys):
    import video_gop

    rc = video_gop.main(["--data", str(SEQS), "--sequences", "0111_1753", "--frames", "4", "--crop", "80x64",
                         "--cache", str(tmp_path / "cache"),
                         "--weights", str(tiny_model), "--quality", "2", "--gops", "2", "3", "8", "20",
                         "--x265-qp", "37", "--keyint", "2", "--out", str(tmp_path), "--quiet", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "video_gop.json").read_text())
    assert res["gops"] == [1, 2, 3, 8, 20]
    types = {g: [r["type"] for r in res["gop"][g]["rows"]] for g in ("1", "2", "3", "8")}
    assert types == {"1": ["key"] * 4, "2": ["key", "predicted"] * 2, "3": ["key", "predicted", "predicted", "key"],
                     "8": ["key"] + ["predicted"] * 3}
    assert res["same_as"] == {"20": 8}  # 4-frame sequences: GOP 20 codes exactly like GOP 8
    assert len(list((tmp_path / "cache").glob("*.json"))) == 4
    for g in ("1", "2", "3"):
        e = res["gop"][g]
        assert len(e["thermal"]["bits_by_index"]) == 4 and all(b > 0 for b in e["rgb"]["bits_by_index"])
        assert e["encode_s_per_pair"] > 0 and e["decode_s_per_pair"] > 0
    # key frames of every GOP are coded identically (same model, same input, fresh stream)
    assert res["gop"]["2"]["thermal"]["bits_by_index"][0] == res["gop"]["1"]["thermal"]["bits_by_index"][0]
    assert res["x265_video"]["thermal"]["psnr"] > 30
    md = (tmp_path / "video_gop.md").read_text()
    assert "| GOP | thermal bpp |" in md and "drift" in md
    assert (tmp_path / "video_gop.png").stat().st_size > 1000
    assert video_gop.main(["--data", str(SEQS), "--weights", str(tmp_path / "none.safetensors")]) == 2


def test_results_generator(tiny_model, tmp_path, capsys):
    import results

    doc = tmp_path / "docs" / "results.md"
    rc = results.main(["--data", str(SEQS), "--sequences", "0111_1803", "--frames", "2", "--crop", "64x64",
                       "--weights", str(tiny_model), "--qp", "32", "42", "--jpeg-quality", "30", "70",
                       "--gop", "2", "--doc", str(doc), "--runs", str(tmp_path / "runs"), "--quiet", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    text = doc.read_text()
    assert "benchmarks/results.py --data" in text and "0111_1803" in text
    for needle in ("## thermal: rate-distortion", "## rgb: rate-distortion", "BD-rate against x265-intra",
                   "| tiny-video |", "| x265-video |", "Video mode against all-intra", "results/rd_thermal.png"):
        assert needle in text
    assets = doc.parent / "results"
    for name in ("rd_thermal.png", "rd_rgb.png", "video_gop.png", "rd.json"):
        assert (assets / name).is_file()
    summary = json.loads((assets / "rd.json").read_text())
    assert "frames" not in summary["codecs"]["jpeg"]["points"][0]["rgb"]  # per-frame data only in runs/
    # the GOP section reused the eval's points (level 1, GOP 1 and 2): the cache holds only eval's 10 points
    assert len(list((tmp_path / "runs" / "cache").glob("*.json"))) == 10
    assert "GOP 30 is GOP 2 here; GOP 100 is GOP 2 here" in text
    full = json.loads((tmp_path / "runs" / "rd.json").read_text())
    assert len(full["codecs"]["jpeg"]["points"][0]["rgb"]["frames"]["bits"]) == 2
    # --rebuild rewrites the same document from the stored run, without coding anything
    doc.unlink()
    assert results.main(["--rebuild", "--doc", str(doc), "--runs", str(tmp_path / "runs")]) == 0
    assert doc.read_text() == text
    assert results.main(["--rebuild", "--doc", str(doc), "--runs", str(tmp_path / "nothing")]) == 2


def test_results_with_baseline_updates_the_cards(tmp_path, monkeypatch, capsys):
    """Shipped-by-name models: the baseline section, video-vs-intra BD-rate and --update-cards."""
    import torch

    import results
    from mm_compress_ros.codec.multimodal import ModelConfig, MultiModalCodec
    from mm_compress_ros.codec.zoo import export_model

    models = tmp_path / "models"
    cfg = ModelConfig(N=16, M=24, ctx=8, align=8, levels=2)
    torch.manual_seed(2)
    export_model(MultiModalCodec(cfg), models / "tiny-thermal_given_rgb.safetensors", {"name": "tiny"})
    export_model(MultiModalCodec(cfg), models / "tinysingle-thermal_given_rgb.safetensors",
                 {"name": "tinysingle", "reference_input": "blank"})
    monkeypatch.setenv("MM_COMPRESS_MODELS", str(models))
    doc = tmp_path / "docs" / "results.md"
    rc = results.main(["--data", str(SEQS), "--sequences", "0111_1803", "--frames", "2", "--crop", "64x64",
                       "--model", "tiny", "--baseline", "tinysingle", "--update-cards", "--qp", "37",
                       "--jpeg-quality", "50", "--gop", "2", "--skip-gop", "--doc", str(doc),
                       "--runs", str(tmp_path / "runs"), "--quiet", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    text = doc.read_text()
    assert "## Cross-modal gain (key frames)" in text and "| tinysingle-image | level 1 |" in text
    card = json.loads((models / "tiny-thermal_given_rgb.json").read_text())
    pts = card["measured_rd"]["points"]
    assert set(pts) == {"tiny-image", "tiny-video"} and [p["level"] for p in pts["tiny-image"]] == [1, 2]
    assert pts["tiny-video"][0]["gop"] == 2 and pts["tiny-image"][0]["rgb"]["bpp"] > 0
    single = json.loads((models / "tinysingle-thermal_given_rgb.json").read_text())
    assert set(single["measured_rd"]["points"]) == {"tinysingle-image"}
    assert "rgb" not in single["measured_rd"]["points"]["tinysingle-image"][0]


def test_x265_yardstick_brackets_the_psnr_on_real_frames():
    """eval/yardstick.py (make demo's and benchmarks/profiles.py's x265 low-delay P at our PSNR):
    QPs stepped until two bracket the target, rate read in the log domain between them."""
    import numpy as np

    import profiles
    from mm_compress_ros.eval.sequences import load_sequences
    from mm_compress_ros.eval.yardstick import log_rate_at, x265_at_psnr, x265_point

    assert profiles._rate_at is log_rate_at
    seq = load_sequences(SEQS, frames=3, crop=(96, 64), sequences=["0111_1716"])[0]
    p32 = x265_point(seq.rgb, 32, keyint=2)["x"]
    for target, qps in ((p32["psnr"] + 1.0, [32, 27]), (p32["psnr"] - 1.0, [32, 37])):
        r = x265_at_psnr(seq.rgb, target, keyint=2)
        assert r["qps"] == qps and r["range"][0] < target < r["range"][1]
        lo, hi = sorted(r["points"], key=lambda p: p["psnr"])
        assert lo["bpp"] < r["bpp"] < hi["bpp"]
        t = (target - lo["psnr"]) / (hi["psnr"] - lo["psnr"])
        assert r["bpp"] == pytest.approx(float(np.exp((1 - t) * np.log(lo["bpp"]) + t * np.log(hi["bpp"]))))
    th = x265_at_psnr(seq.thermal, 99.0, keyint=2, start_qp=10)  # beyond what x265 reaches at QP 0: no extrapolation
    assert th["bpp"] is None and th["qps"][-1] == 0
    assert log_rate_at([{"x": {"bpp": 0.1, "psnr": 30.0}}, {"x": {"bpp": 0.4, "psnr": 40.0}}], "x", 35.0) == \
        pytest.approx(0.2)
    assert log_rate_at([{"x": {"bpp": 0.1, "psnr": 30.0}}], "x", 35.0) is None
