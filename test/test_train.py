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


def test_train_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--run", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mm-compress: error:") and len(err.strip().splitlines()) == 1
    assert main(["train", "--data", str(DATA / "roadscene"), "--run", str(tmp_path / "r"), "--steps", "1",
                 "--stage", "video", "--limit", "2"]) == 2
    assert "needs sequences" in capsys.readouterr().err
