"""Training data loaders on real files in every supported layout, and a resumable training run."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from codec_fixtures import DATA
from mm_compress_ros.cli import main
from mm_compress_ros.io.frames import FrameSourceError
from mm_compress_ros.train.data import CropSampler, detect_layout, load_training_set


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def test_shared_layouts_are_detected_and_loaded():
    assert detect_layout(DATA / "roadscene") == "pairs"
    assert detect_layout(DATA / "m3svd_seq") == "sequences"
    assert detect_layout(DATA / "m3svd_video") == "videos"
    ts = load_training_set([DATA / "roadscene", DATA / "m3svd_seq", DATA / "m3svd_video"], limit=3)
    assert len(ts.stills) == 3
    assert len(ts.sequences) == 5 + 4 and all(len(s.rgb) == 3 for s in ts.sequences)
    for s in ts.sequences:
        assert s.rgb.shape[1:] == (480, 640, 3) and s.thermal.shape[1:] == (480, 640)
        assert s.rgb.dtype == np.uint8 and s.thermal.dtype == np.uint8


def test_flir_adas_and_kaist_layouts(tmp_path):
    """The published FLIR ADAS (aligned) and KAIST folder layouts, filled with real frames."""
    rs = sorted((DATA / "roadscene" / "rgb").iterdir())[:2]
    for p in rs:
        stem = p.stem
        _link(p, tmp_path / "flir" / "JPEGImages" / f"{stem}_RGB.jpg")
        _link(DATA / "roadscene" / "thermal" / p.name, tmp_path / "flir" / "JPEGImages" / f"{stem}_PreviewData.jpeg")
    seq = DATA / "m3svd_seq" / "0111_1716"
    for i in range(3):
        _link(seq / "rgb" / f"{i:04d}.png", tmp_path / "kaist" / "set00" / "V000" / "visible" / f"I{i:05d}.png")
        _link(seq / "thermal" / f"{i:04d}.png", tmp_path / "kaist" / "set00" / "V000" / "lwir" / f"I{i:05d}.png")
    assert detect_layout(tmp_path / "flir") == "flir"
    assert detect_layout(tmp_path / "kaist") == "kaist"
    ts = load_training_set([tmp_path / "flir", tmp_path / "kaist"])
    assert len(ts.stills) == 2 and len(ts.sequences) == 1 and len(ts.sequences[0].rgb) == 3
    with pytest.raises(FrameSourceError, match="no RGB"):
        load_training_set([tmp_path / "flir" / "JPEGImages"])


def test_crops_are_aligned_and_deterministic():
    ts = load_training_set([DATA / "m3svd_seq"], limit=4)
    a = CropSampler(ts, 64, seed=3).pairs(4)
    b = CropSampler(ts, 64, seed=3).pairs(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    rp, tp, rc, tc = a
    assert rp.shape == (4, 64, 64, 3) and tp.shape == (4, 64, 64)


def test_train_resume_and_export(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(DATA / "m3svd_seq"), "--run", str(run), "--limit", "3", "--crop", "64",
            "--batch", "2", "--N", "16", "--M", "16", "--save-every", "2", "--log-every", "1", "--quiet",
            "--device", "cpu"]
    assert main(args + ["--steps", "2"]) == 0
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 2 and meta["seconds"] > 0
    first = (run / "checkpoint.safetensors").read_bytes()
    assert main(args + ["--steps", "3"]) == 0  # resumes at step 2, runs one more
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 3
    assert (run / "checkpoint.safetensors").read_bytes() != first
    lines = [json.loads(line) for line in (run / "train.log").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3] and all(np.isfinite(line["loss"]) for line in lines)
    out = tmp_path / "tiny-thermal_given_rgb.safetensors"
    assert main(["export", str(run), "--name", "tiny", "--out", str(out)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["steps"] == 3 and card["config"]["N"] == 16
    capsys.readouterr()
    assert main(["info", str(out)]) == 2  # not a stream: one-line error
    assert "error" in capsys.readouterr().err


def test_real_time_codec_trains_resumes_exports_and_streams(tmp_path, capsys):
    """`mm-compress train --arch rt` (its defaults: H.265/H.264-coded references, chains of a key
    frame and 2 predicted frames) on real clips, resumed, exported; the exported model codes and
    decodes a stream identically, on either thread count."""
    import torch

    from codec_fixtures import crop_pair
    from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder
    from mm_compress_ros.codec.zoo import load_model

    run = tmp_path / "rt"
    args = ["train", "--arch", "rt", "--data", str(DATA / "m3svd_seq"), "--run", str(run), "--limit", "3",
            "--crop", "64", "--batch", "2", "--save-every", "1", "--log-every", "1", "--quiet", "--device", "cpu"]
    assert main(args + ["--steps", "1"]) == 0
    assert main(args + ["--steps", "2"]) == 0   # resumes
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 2 and meta["train"]["chain"] == 2 and meta["train"]["reference_codecs"] == ["h265", "h264"]
    line = json.loads((run / "train.log").read_text().splitlines()[-1])
    assert {"key_bpp", "p1_psnr", "p2_skip"} <= set(line) and np.isfinite(line["loss"])
    out = tmp_path / "rt-thermal_given_rgb.safetensors"
    assert main(["export", str(run), "--name", "rt", "--out", str(out)]) == 0
    capsys.readouterr()
    model = load_model(path=out, device="cpu")
    assert model.card["config"]["arch"] == "rt" and model.net.exact and model.levels == 64
    enc, dec = StreamEncoder(model, gop=3, reference_codec="h265", encoder="software"), StreamDecoder(model)
    threads = torch.get_num_threads()
    try:
        for i in range(4):
            torch.set_num_threads(1 + i % 2)
            pair = dec.decode(enc.encode(*crop_pair(i)))
            assert np.array_equal(pair.thermal, enc.last_pair().thermal), i
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="codes only the dependent modality"):
        StreamEncoder(model, reference_codec="learned")


def test_train_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--run", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mm-compress: error:") and len(err.strip().splitlines()) == 1
    assert main(["train", "--data", str(DATA / "roadscene"), "--run", str(tmp_path / "r"), "--steps", "1",
                 "--stage", "video", "--limit", "2"]) == 2
    assert "needs sequences" in capsys.readouterr().err
    assert main(["train", "--data", str(DATA / "roadscene"), "--run", str(tmp_path / "r"), "--steps", "1",
                 "--still-every", "0", "--limit", "2"]) == 2
    assert "--still-every must be >= 1" in capsys.readouterr().err


def _tiny_run(tmp_path, name, *extra, steps=1):
    run = tmp_path / name
    assert main(["train", "--data", str(DATA / "m3svd_seq"), "--run", str(run), "--limit", "3", "--crop", "64",
                 "--batch", "2", "--N", "16", "--M", "16", "--save-every", "1", "--log-every", "1", "--quiet",
                 "--device", "cpu", "--steps", str(steps), *extra]) == 0
    return run


def test_export_assembles_staged_runs(tmp_path, capsys):
    """Stage runs trained side by side become one model: each run contributes the parts it trained."""
    from safetensors.torch import load_file

    from mm_compress_ros.codec.zoo import load_model
    from mm_compress_ros.train.trainer import PARTS

    ref = _tiny_run(tmp_path, "ref", "--stage", "ref", "--seed", "1", "--still-every", "1")
    video = _tiny_run(tmp_path, "video", "--stage", "video", "--seed", "2", steps=2)
    out = tmp_path / "staged-thermal_given_rgb.safetensors"
    assert main(["export", str(ref), str(video), "--name", "staged", "--out", str(out)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert [h["stage"] for h in card["training"]["history"]] == ["ref", "video"]
    assert [h["still_every"] for h in card["training"]["history"]] == [1, 4]
    assert card["training"]["steps"] == 3 and "reference_input" not in card
    net = load_model(path=out, device="cpu").net
    got = net.state_dict()
    for run, stage, other in ((ref, "ref", "video"), (video, "video", "ref")):
        theirs = {k[6:]: v for k, v in load_file(str(run / "checkpoint.safetensors")).items()
                  if k.startswith("model/")}
        mine = [k for k, _ in net.named_parameters() if k.startswith(PARTS[stage])]
        assert mine and all(torch_close(got[k], theirs[k]) for k in mine)
    # the ref run never trained the temporal codecs: its (initial) values are not the video run's
    k = next(k for k, _ in net.named_parameters() if k.startswith(PARTS["video"]) and k.endswith("weight"))
    ref_w = load_file(str(ref / "checkpoint.safetensors"))["model/" + k]
    assert not torch_close(got[k], ref_w)
    other = _tiny_run(tmp_path, "wide", "--N", "24")
    capsys.readouterr()
    assert main(["export", str(ref), str(other), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "another model configuration" in capsys.readouterr().err


def torch_close(a, b) -> bool:
    """Equal up to the float16 rounding of an exported model."""
    import torch

    return bool(torch.allclose(a.float(), b.float(), rtol=2e-3, atol=1e-4))


def test_single_modality_baseline_is_trained_with_a_blank_reference(tmp_path, capsys):
    run = _tiny_run(tmp_path, "blank", "--stage", "dep", "--blank-reference")
    out = tmp_path / "single-thermal_given_rgb.safetensors"
    assert main(["export", str(run), "--name", "single", "--out", str(out)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["reference_input"] == "blank" and card["training"]["history"][0]["blank_reference"]
    capsys.readouterr()
    assert main(["train", "--data", str(DATA / "m3svd_seq"), "--run", str(tmp_path / "r"), "--limit", "3",
                 "--stage", "ref", "--blank-reference", "--steps", "1"]) == 2
    assert "stage 'dep' only" in capsys.readouterr().err


def test_training_from_an_exported_model_keeps_the_layer_constants(tmp_path):
    """Exported weights are float16; float16 would turn the 1e-9 likelihood bound into 0 (an infinite
    rate on the first unlikely symbol). Export keeps buffers as they are and --init loads parameters."""
    import torch
    from safetensors.torch import load_file

    from mm_compress_ros.codec.multimodal import ModelConfig, MultiModalCodec
    from mm_compress_ros.codec.zoo import export_model
    from mm_compress_ros.train.data import load_training_set
    from mm_compress_ros.train.trainer import TrainConfig, Trainer

    cfg = ModelConfig(N=16, M=16)
    path = tmp_path / "m-thermal_given_rgb.safetensors"
    export_model(MultiModalCodec(cfg), path, {"name": "m"})
    stored = load_file(str(path))
    bounds = [k for k in stored if k.endswith("likelihood_lower_bound.bound")]
    assert bounds and all(stored[k].dtype == torch.float32 and stored[k].item() > 0 for k in bounds)
    assert stored["ref_intra.g_a.net.0.weight"].dtype == torch.float16
    stored = {k: (v.half() if v.is_floating_point() else v) for k, v in stored.items()}  # an older export
    from safetensors.torch import save_file

    save_file(stored, str(path))
    data = load_training_set([DATA / "m3svd_seq"], limit=3)
    t = Trainer(TrainConfig(stage="video", steps=1, batch=2, crop=64, model=cfg), data, tmp_path / "run",
                init_weights=path)
    got = [m.likelihood_lower_bound.bound.item() for m in t.model.modules()
           if hasattr(m, "likelihood_lower_bound")]
    assert got and all(b == pytest.approx(1e-9) for b in got)
    w = t.model.ref_intra.g_a.net[0].weight
    assert w.dtype == torch.float32 and torch.equal(w, stored["ref_intra.g_a.net.0.weight"].float())


def test_clips_and_chained_predicted_frames(tmp_path):
    ts = load_training_set([DATA / "m3svd_seq"], limit=6)
    frames = CropSampler(ts, 64, seed=5, max_gap=2).clips(3, 3)
    assert len(frames) == 6 and all(f.shape[0] == 3 for f in frames)
    # consecutive clip frames differ (real motion / noise) but share the crop window
    assert not np.array_equal(frames[0], frames[2]) and frames[2].shape == (3, 64, 64, 3)
    run = _tiny_run(tmp_path, "chain", "--stage", "video", "--chain", "2")
    line = json.loads((run / "train.log").read_text().splitlines()[-1])
    assert {"p_ref_psnr", "p2_ref_psnr", "p2_dep_bpp"} <= set(line) and np.isfinite(line["loss"])
    with pytest.raises(ValueError, match="fewer than a clip"):
        CropSampler(ts, 64, seed=5).clips(1, 7)


def test_downscaled_crops_are_shrunk_windows_aligned_across_modalities(tmp_path, capsys):
    """--downscale: each crop is a larger window shrunk by area averaging, the same window for both
    modalities (and every frame of a clip)."""
    import cv2

    from mm_compress_ros.train.data import Sequence, TrainingSet

    ts = load_training_set([DATA / "m3svd_seq"], limit=2)
    s = ts.sequences[0]
    # the thermal channel is the RGB's first channel: an aligned window shows as equal arrays
    same = TrainingSet(sequences=[Sequence("same", s.rgb, np.ascontiguousarray(s.rgb[..., 0]))])
    rgb, th, _, _ = CropSampler(same, 64, seed=1, downscale=0.5).pairs(8)
    assert rgb.shape == (8, 64, 64, 3) and th.shape == (8, 64, 64)
    assert np.array_equal(rgb[..., 0], th)
    # one still pair: the crop is the window the sampler's random draws select, shrunk to 64x64
    r0, t0 = s.rgb[0], s.thermal[0]
    got_rgb, _ = CropSampler(TrainingSet(stills=[(r0, t0)]), 64, seed=7, downscale=0.25).stills(1)
    rng = np.random.default_rng(7)
    rng.integers(1)  # which still
    src = min(int(round(64 / float(rng.uniform(max(0.25, 64 / 480), 1.0)))), 480)
    y, x, flip = int(rng.integers(0, 480 - src + 1)), int(rng.integers(0, 640 - src + 1)), bool(rng.integers(0, 2))
    want = cv2.resize(r0[y:y + src, x:x + src], (64, 64), interpolation=cv2.INTER_AREA)
    assert src > 64 and np.array_equal(got_rgb[0], want[:, ::-1] if flip else want)
    run = _tiny_run(tmp_path, "ds", "--stage", "ref", "--downscale", "0.6")
    assert json.loads((run / "checkpoint.json").read_text())["train"]["downscale"] == 0.6
    capsys.readouterr()
    assert main(["train", "--data", str(DATA / "m3svd_seq"), "--run", str(tmp_path / "r"), "--limit", "2",
                 "--steps", "1", "--downscale", "0"]) == 2
    assert "--downscale must be in (0, 1]" in capsys.readouterr().err


def test_a_model_trained_from_a_shipped_one_keeps_its_history_and_schedules(tmp_path, capsys):
    """Export from a run that started from an exported model: the card lists the earlier model's
    runs and keeps its --schedule note, so the whole cost and recipe of the weights stays on record."""
    first = _tiny_run(tmp_path, "first", "--stage", "ref")
    m1 = tmp_path / "m1-thermal_given_rgb.safetensors"
    assert main(["export", str(first), "--name", "m1", "--out", str(m1), "--schedule", "first: one step"]) == 0
    second = _tiny_run(tmp_path, "second", "--stage", "video", "--init", str(m1))
    m2 = tmp_path / "m2-thermal_given_rgb.safetensors"
    assert main(["export", str(second), "--name", "m2", "--out", str(m2), "--schedule", "second: one step"]) == 0
    t = json.loads(m2.with_suffix(".json").read_text())["training"]
    assert [h["run"] for h in t["history"]] == ["first", "second"] and t["steps"] == 2
    assert t["schedule"] == "second: one step" and t["earlier_schedules"] == ["first: one step"]


def test_dependent_codec_trains_on_standard_codec_references(tmp_path, capsys):
    """--reference-codec h264,learned: steps alternate between libavcodec's decode of the RGB (at the
    level's QP) and the learned reference; only the dependent codec's parameters move."""
    from safetensors.torch import load_file

    from mm_compress_ros.train.trainer import PARTS

    dep = _tiny_run(tmp_path, "dep", "--stage", "dep", "--reference-codec", "h264,learned", steps=2)
    lines = [json.loads(x) for x in (dep / "train.log").read_text().splitlines()]
    assert "key_ref_bpp" not in lines[0] and lines[0]["key_ref_psnr"] > 20   # step 0: H.264 reference
    assert "key_ref_bpp" in lines[1]                                          # step 1: the learned one
    video = _tiny_run(tmp_path, "video", "--stage", "video", "--chain", "2", "--reference-codec", "h265",
                      "--init", str(dep / "checkpoint.safetensors"))
    line = json.loads((video / "train.log").read_text().splitlines()[-1])
    assert line["p_ref_bpp"] == 0 and line["p2_ref_psnr"] > 20 and np.isfinite(line["loss"])
    before, after = load_file(str(dep / "checkpoint.safetensors")), load_file(str(video / "checkpoint.safetensors"))
    moved = {k[6:] for k in after if k.startswith("model/") and not np.array_equal(after[k].numpy(), before[k].numpy())}
    assert moved and all(k.startswith(PARTS["video"]) for k in moved)
    assert not any(k.startswith(("ref_temporal.", "ref_inter.")) for k in moved if not k.endswith("quantiles"))
    out = tmp_path / "m-thermal_given_rgb.safetensors"
    assert main(["export", str(dep), str(video), "--name", "m", "--out", str(out)]) == 0
    history = json.loads(out.with_suffix(".json").read_text())["training"]["history"]
    assert [h.get("reference_codecs") for h in history[-2:]] == [["h264", "learned"], ["h265"]]
    assert main(["train", "--data", str(DATA / "m3svd_seq"), "--run", str(tmp_path / "bad"), "--limit", "3",
                 "--stage", "ref", "--reference-codec", "h264", "--steps", "1"]) == 2
    assert "stages dep and video only" in capsys.readouterr().err
