"""The one-shot GPU run proven on the CPU: scripts/device_train.sh trains the shipped model for a
wall-clock budget on real frames, writes its weights as shards that fit what comes back from the
device machine, and `mm-compress export` turns them into a loadable model with its card; the
pieces it relies on (OpenCV decoding where PyAV is missing, crops drawn on the device, the shards,
the pack that travels) on real data."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from codec_fixtures import DATA, REPO
from mm_compress_ros.cli import main
from mm_compress_ros.train.data import load_training_set, read_video

MIB = 1 << 20
CLIP = DATA / "m3svd_video" / "1230_1202"


def test_opencv_decodes_the_clips_as_pyav_does():
    """The GPU machine has no PyAV: its OpenCV must give the very frames training sees here."""
    for name, gray in (("rgb", False), ("thermal", True)):
        a = read_video(CLIP / f"{name}.mp4", gray, limit=6, decoder="av")
        b = read_video(CLIP / f"{name}.mp4", gray, limit=6, decoder="cv2")
        assert len(a) == len(b) == 6
        assert all(x.dtype == y.dtype == np.uint8 and np.array_equal(x, y) for x, y in zip(a, b))
    every_2nd = read_video(CLIP / "thermal.mp4", True, limit=3, stride=2, decoder="cv2")
    assert [np.array_equal(x, b[i]) for x, i in zip(every_2nd, (0, 2, 4))] == [True] * 3


def test_device_sampler_crops_are_windows_of_the_frames():
    """Each crop drawn on the device is its frame's window (flipped or not), the same window in
    both modalities and every frame of a clip; stills smaller than the crop are left out."""
    import torch

    from mm_compress_ros.train.sampler import DeviceSampler

    ts = load_training_set([DATA / "m3svd_video", DATA / "roadscene"], limit=5, decoder="cv2")
    crop = 192
    small = sum(min(t.shape[:2]) < crop for _, t in ts.stills)
    s = DeviceSampler(ts, crop, seed=4, device="cpu")
    assert s.dropped_stills == small and len(s.data.stills) == len(ts.stills) - small
    frames = [f for q in s.data.sequences for f in zip(q.rgb, q.thermal)]
    stills = [(r, t) for r, t in s.data.stills]
    for draw, source in ((lambda: s.clips(3, 3), frames), (lambda: s.stills(4), stills)):
        out = draw()
        last = s.last
        for b in range(out[0].shape[0]):
            y, x, flip = int(last["y"][b]), int(last["x"][b]), bool(last["flip"][b])
            for k, f in enumerate(last["frames"][b].tolist()):
                r, t = source[f]
                want_r, want_t = r[y:y + crop, x:x + crop], t[y:y + crop, x:x + crop]
                if flip:
                    want_r, want_t = want_r[:, ::-1], want_t[:, ::-1]
                got_r = (out[2 * k][b] * 255).round().byte().permute(1, 2, 0).numpy()
                got_t = (out[2 * k + 1][b, 0] * 255).round().byte().numpy()
                assert np.array_equal(got_r, want_r) and np.array_equal(got_t, want_t)
    clip = s.clips(8, 3)
    f = s.last["frames"].numpy()
    assert all(len(c) == 8 and c.shape[1:] == (3, crop, crop) for c in clip[::2])
    assert ((np.diff(f, axis=1) >= 1) & (np.diff(f, axis=1) <= 3)).all()  # gaps of 1..3 frames
    shrunk = DeviceSampler(ts, 64, seed=1, device="cpu", downscale=0.5)
    rgb, th = shrunk.stills(2)
    assert shrunk.last["src"] > 64 and rgb.shape == (2, 3, 64, 64) and th.shape == (2, 1, 64, 64)
    assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    with pytest.raises(ValueError, match="larger than some frames"):
        DeviceSampler(ts, 512, seed=0, device="cpu")
    assert torch.equal(DeviceSampler(ts, 64, seed=3, device="cpu").clips(2, 2)[1],
                       DeviceSampler(ts, 64, seed=3, device="cpu").clips(2, 2)[1])


def test_pack_fills_the_room_in_order_with_copies(tmp_path):
    """make device-pack: paired clips first (whole clips), then stills big enough for a crop, all
    copied (links would not travel), never past the room the working tree leaves."""
    from mm_compress_ros.train.pack import build_pack, tree_bytes

    assert tree_bytes() > 30 * MIB  # the shipped models alone are 2 x 19 MB
    out = tmp_path / "pack"
    room = 14 * MIB
    m = build_pack(out, DATA, crop=256, wheels=[], limit=room, margin=0, tree=0)
    clips = sorted(p.name for p in (DATA / "m3svd_video").iterdir())
    size = {c: sum((DATA / "m3svd_video" / c / f).stat().st_size for f in ("rgb.mp4", "thermal.mp4"))
            for c in clips}
    want, used = [], 0
    for c in clips:
        if used + size[c] <= room:
            want.append(c)
            used += size[c]
    assert m["data"]["m3svd_video"]["clips"] == want and len(want) < len(clips)
    assert "no room" in m["left_out"]["m3svd_video"] and "m3svd_thermal_video" in m["left_out"]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert m["pack_bytes"] == sum(p.stat().st_size for p in files if p.name != "MANIFEST.json") <= room
    stills = sorted((out / "data" / "roadscene" / "thermal").iterdir())
    assert m["data"]["roadscene"]["pairs"] == len(stills) > 0
    import cv2

    for p in stills:
        assert min(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape[:2]) >= 256
        assert p.read_bytes() == (DATA / "roadscene" / "thermal" / p.name).read_bytes()
    assert json.loads((out / "MANIFEST.json").read_text())["data"] == m["data"]


def test_one_shot_run_on_the_cpu_and_its_export(tmp_path, capsys):
    """The CPU proof: the script itself, a 24 s budget, the shipped model, real frames, the video
    decoder of the GPU machine; then the export and a load of the model it makes."""
    out = tmp_path / "OUT"
    env = {**os.environ, "OUT": str(out), "DEVICE": "cpu", "PYTHON": sys.executable,
           "PACK": str(tmp_path / "no-pack"), "DATA": f"{DATA / 'm3svd_video'} {DATA / 'roadscene'}"}
    r = subprocess.run(["bash", "scripts/device_train.sh", "0.4", "--batch", "2", "--crop", "64", "--limit", "6",
                        "--video-decoder", "cv2", "--threads", "1", "--save-every-s", "6", "--log-every-s", "5",
                        "--reserve-s", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    progress = [x for x in lines if re.search(r"\] step \d+ .* steps/s \|", x)]
    assert {re.search(r"s (\w+) \d/3\]", x).group(1) for x in progress} == {"ref", "dep", "video"}
    summary = json.loads(lines[-1])
    # what comes back from the device machine: at most 8 files of at most 16 MiB, plain names
    files = sorted(p for p in out.rglob("*"))
    assert len(files) <= 8 and all(p.is_file() and p.parent == out for p in files)
    assert all(p.stat().st_size <= 16 * MIB and re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)
    meta = json.loads((out / "checkpoint.json").read_text())
    assert len(meta["shards"]) >= 2  # the full model's 39 MB of float32 weights need several
    assert meta["complete"] and meta["step"] == summary["steps"] == sum(g["steps"] for g in meta["stages"])
    assert all(g["steps"] > 0 and g["steps_per_s"] > 0 for g in meta["stages"])
    assert meta["device"] == "cpu" and meta["minutes"] == 0.4 and meta["amp"] == "bf16"
    assert meta["wall_seconds"] <= 0.4 * 60 + 5
    with capsys.disabled():  # on record: the measured speed of this CPU (batch 2 x 64^2, 1 thread)
        print(f"\nCPU proof, steps/s per stage (batch 2, 64x64, 1 thread, bf16): {summary['steps_per_s']}")

    model = tmp_path / "gpuproof-thermal_given_rgb.safetensors"
    assert main(["export", str(out), "--name", "gpuproof", "--out", str(model), "--data-note", "proof"]) == 0
    card = json.loads(model.with_suffix(".json").read_text())
    run = card["training"]["history"][-1]
    assert run["stage"] == "ref+dep+video" and run["device"] == "cpu" and run["minutes"] == 0.4
    assert run["steps"] == meta["step"] and [g["stage"] for g in run["stages"]] == ["ref", "dep", "video"]
    assert run["init_sha256"] == json.loads((REPO / "models" / "mmvc-thermal_given_rgb.json").read_text())["sha256"]
    assert card["training"]["history"][0]["run"] == "mmvc"  # the shipped model's own history comes along
    assert "gpu_minutes" not in card["training"]
    from mm_compress_ros.codec.zoo import load_model

    loaded = load_model(path=model, device="cpu")
    assert loaded.card["sha256"] == card["sha256"] and loaded.levels == 6

    # a shard cut off or from another save is refused, in one line
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    shard = bad / meta["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["export", str(bad), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "SHA-256 does not match" in capsys.readouterr().err


def test_budget_and_schedule_errors(tmp_path, capsys):
    from mm_compress_ros.train.timed import main as timed_main, parse_schedule

    assert parse_schedule("ref:1,dep:2,video:1") == [("ref", 0.25), ("dep", 0.5), ("video", 0.25)]
    for bad, msg in (("dep:0", "must be > 0"), ("warp:1", "unknown stage"), ("dep:x", "bad share")):
        with pytest.raises(ValueError, match=msg):
            parse_schedule(bad)
    args = ["--out", str(tmp_path / "o"), "--data", str(DATA / "m3svd_video"), "--limit", "3",
            "--device", "cpu", "--crop", "64", "--batch", "2", "--N", "16", "--M", "16", "--video-decoder", "cv2"]
    assert timed_main(args + ["--minutes", "0.01", "--reserve-s", "5"]) == 2
    assert "no time left to train" in capsys.readouterr().err
    assert timed_main(args + ["--minutes", "1", "--chain", "3"]) == 2
    assert "--chain 3 needs sequences of 4 frames" in capsys.readouterr().err


# -- the real-time dependent codec's run (ARCH=rt): coded references instead of an encoder --------

@pytest.fixture(scope="module")
def rt_pack(tmp_path_factory):
    """make device-pack ARCH=rt in small: 8 frames of each paired clip coded at the packed QPs."""
    from mm_compress_ros.train.pack import build_rt_pack

    out = tmp_path_factory.mktemp("rtpack")
    m = build_rt_pack(out, DATA, wheels=[], limit=12 * MIB, margin=0, tree=0, frames=8, progress=False)
    return out, m


def test_coded_references_decode_as_the_hybrid_decoder_does(tmp_path):
    """PyAV gives the very pictures the hybrid decoder conditions on; the GPU machine's OpenCV (no
    chroma planes) comes within the bound docs/training.md states."""
    from mm_compress_ros.codec.videocodec import LowDelayEncoder, VideoDecoder
    from mm_compress_ros.train.coded import code_clip, read_coded

    frames = read_video(CLIP / "rgb.mp4", False, limit=12)
    path = tmp_path / "rgb_h264_qp30.h264"
    path.write_bytes(code_clip(frames, 30))
    enc, dec = LowDelayEncoder("h264", "software"), VideoDecoder("h264")
    want = [dec.decode(enc.encode(f, 30, k % 10 == 0), f.shape[:2], 3) for k, f in enumerate(frames)]
    exact = read_coded(path, decoder="av")
    assert len(exact) == 12 and all(np.array_equal(a, b) for a, b in zip(exact, want))
    near = np.stack(read_coded(path, decoder="cv2")).astype(int)
    d = near - np.stack(want).astype(int)
    psnr = 10 * np.log10(255 ** 2 / max(float((d ** 2).mean()), 1e-9))
    assert np.abs(d).max() <= 8 and psnr > 50, (np.abs(d).max(), psnr)
    assert len(read_coded(path, limit=5, decoder="cv2")) == 5


def test_rt_pack_codes_the_rgb_and_fills_the_room(rt_pack):
    """Paired clips travel as thermal.mp4 plus the RGB coded at each packed QP (no rgb.mp4), then
    thermal-only clips in name order while they fit; nothing past the room."""
    from mm_compress_ros.train.coded import CODED_QPS, coded_files, read_coded

    out, m = rt_pack
    clips = sorted(p.name for p in (DATA / "m3svd_video").iterdir())
    assert [c["clip"] for c in m["data"]["m3svd_video"]["clips"]] == clips
    for c in clips:
        d = out / "data" / "m3svd_video" / c
        assert sorted(p.name for p in d.iterdir()) == sorted(
            ["thermal.mp4"] + [f"rgb_h264_qp{q}.h264" for q in CODED_QPS])
        assert (d / "thermal.mp4").read_bytes() == (DATA / "m3svd_video" / c / "thermal.mp4").read_bytes()
        for qp, f in coded_files(d).items():
            assert len(read_coded(f)) == 8
    kept = m["data"]["m3svd_thermal_video"]["clips"]
    assert kept and "no room" in m["left_out"]["m3svd_thermal_video"]
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "MANIFEST.json"]
    assert m["pack_bytes"] == sum(p.stat().st_size for p in files) <= 12 * MIB
    assert sorted(p.name for p in (out / "data" / "m3svd_thermal_video").iterdir()) == kept


def test_device_sampler_draws_coded_references(rt_pack):
    """With a coded index per sample the RGB crop is that QP's coded picture, same window as the
    thermal; thermal-only clips come with their blank reference at the blank share."""
    import torch

    from mm_compress_ros.train.sampler import DeviceSampler

    out, _ = rt_pack
    ts = load_training_set([out / "data" / "m3svd_video", out / "data" / "m3svd_thermal_video"],
                           limit=6, decoder="cv2")
    s = DeviceSampler(ts, 64, seed=2, device="cpu", blank_share=0.0)
    assert s.coded_qps == (22, 30, 37)
    seqs = s.data.sequences
    starts = np.cumsum([0] + [len(q.thermal) for q in seqs])
    coded = torch.tensor([0, 1, 2, 2])
    out_ = s.clips(4, 2, coded)
    last = s.last
    for b in range(4):
        y, x, flip = int(last["y"][b]), int(last["x"][b]), bool(last["flip"][b])
        for k, f in enumerate(last["frames"][b].tolist()):
            i = int(np.searchsorted(starts, f, side="right") - 1)
            q, j = seqs[i], f - starts[i]
            assert not q.blank  # blank share 0: paired clips only
            want_r = q.coded[s.coded_qps[int(coded[b])]][j][y:y + 64, x:x + 64]
            want_t = q.thermal[j][y:y + 64, x:x + 64]
            if flip:
                want_r, want_t = want_r[:, ::-1], want_t[:, ::-1]
            assert np.array_equal((out_[2 * k][b] * 255).round().byte().permute(1, 2, 0).numpy(), want_r)
            assert np.array_equal((out_[2 * k + 1][b, 0] * 255).round().byte().numpy(), want_t)
    every_blank = DeviceSampler(ts, 64, seed=2, device="cpu", blank_share=1.0)
    rgb = every_blank.clips(6, 2, torch.zeros(6, dtype=torch.long))[0]
    assert torch.all((rgb * 255).round() == 128)  # the blank reference, at every QP
    with pytest.raises(ValueError, match="--blank-share must be in"):
        DeviceSampler(ts, 64, seed=2, device="cpu", blank_share=1.5)


def test_one_shot_rt_run_on_the_cpu_and_its_export(rt_pack, tmp_path, capsys):
    """ARCH=rt: the script trains the shipped real-time model on the pack's coded references with
    the GPU machine's video decoder; the export is a loadable 64-level model whose card carries
    the shipped model's history and this run."""
    pack, _ = rt_pack
    out = tmp_path / "OUT"
    env = {**os.environ, "OUT": str(out), "DEVICE": "cpu", "PYTHON": sys.executable, "PACK": str(pack),
           "ARCH": "rt"}
    r = subprocess.run(["bash", "scripts/device_train.sh", "0.3", "--batch", "2", "--crop", "64", "--limit", "6",
                        "--video-decoder", "cv2", "--threads", "1", "--save-every-s", "6", "--log-every-s", "4",
                        "--reserve-s", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert any(re.search(r"\] step \d+ .* steps/s \| .*key_psnr .*p2_psnr", x) for x in lines)
    summary = json.loads(lines[-1])
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["complete"] and meta["amp"] == "off" and meta["step"] == summary["steps"] > 0
    assert meta["train"]["coded_qps"] == [22, 30, 37] and meta["train"]["reference_codecs"] == ["h264"]
    assert json.loads((out / "pack.json").read_text())["arch"] == "rt"
    with capsys.disabled():  # on record: this CPU's speed on the real-time codec
        print(f"\nCPU proof (ARCH=rt), steps/s (batch 2, 64x64, 1 thread): {summary['steps_per_s']}")

    model = tmp_path / "rtproof-thermal_given_rgb.safetensors"
    assert main(["export", str(out), "--name", "rtproof", "--out", str(model), "--data-note", "proof"]) == 0
    card = json.loads(model.with_suffix(".json").read_text())
    run = card["training"]["history"][-1]
    shipped = json.loads((REPO / "models" / "mmrt-thermal_given_rgb.json").read_text())
    assert run["init_sha256"] == shipped["sha256"] and run["coded_qps"] == [22, 30, 37]
    assert card["training"]["history"][:-1] == shipped["training"]["history"]
    from mm_compress_ros.codec.zoo import load_model

    loaded = load_model(path=model, device="cpu")
    assert loaded.levels == 64 and loaded.card["sha256"] == card["sha256"]
    from codec_fixtures import crop_pair
    from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder

    enc = StreamEncoder(loaded, quality=32, gop=10, reference_codec="h264", encoder="software")
    dec = StreamDecoder(loaded)
    for i in range(2):
        pair = dec.decode(enc.encode(*crop_pair(i)))
        assert np.array_equal(pair.thermal, enc.last_pair().thermal)
