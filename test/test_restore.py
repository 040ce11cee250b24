"""The joint restoration (mm_compress_ros/restore): identity start, training under torchrun (DDP,
two CPU processes over gloo), the shipped model on real decoded frames, and what it never changes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec_fixtures import REPO, crop_pair, psnr

from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder
from mm_compress_ros.restore.data import code_chain, save_chain
from mm_compress_ros.restore.net import JointRestorer
from mm_compress_ros.restore.restorer import Restorer, load_restorer

VENV_BIN = Path(sys.executable).parent


def _decoded(n: int, quality: int = 8, **crop):
    enc, dec = StreamEncoder(None, quality=quality, gop=10, stream_id=1), StreamDecoder(None)
    out = []
    for i in range(n):
        rgb, th = crop_pair(i, **crop)
        packet = enc.encode(rgb, th)
        out.append(((rgb, th), packet, dec.decode(packet)))
    return out


def test_untrained_network_is_the_identity():
    (rgb, th), _, pair = _decoded(1)[0]
    out = Restorer(JointRestorer().eval()).restore(pair)
    assert np.array_equal(out.rgb, pair.rgb) and np.array_equal(out.thermal, pair.thermal)


def test_torchrun_trains_two_processes_in_sync(tmp_path):
    chains = tmp_path / "chains"
    chains.mkdir()
    index = []
    for level, start in ((8, 0), (40, 3)):
        pairs = [crop_pair(i) for i in range(start, start + 3)]
        save_chain(chains, index, code_chain([p[0] for p in pairs], [p[1] for p in pairs], level), level,
                   source="m3svd_seq/0111_1716", kind="paired", start=start)
    out = tmp_path / "run"
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "mm_compress_ros.restore.train",
           str(chains), str(out), "--steps", "4", "--batch", "2", "--crop", "64", "--log-every", "2", "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log if "gain_rgb_db" in x] == [2, 4]
    assert all(x["processes"] == 2 for x in log)
    assert log[-1]["ranks_in_sync"] is True
    trained = load_restorer(path=out / "checkpoint.safetensors").net
    assert any(bool(torch.any(p != 0)) for n, p in trained.named_parameters() if "tail" in n)
    # resumable: a second run continues from step 4
    cmd[cmd.index("--steps") + 1] = "6"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log if "gain_rgb_db" in x] == [2, 4, 6]


def test_shipped_model_restores_real_frames_and_changes_only_pictures():
    restorer = load_restorer()
    frames = _decoded(4, quality=1, h=160, w=224, y=120, x=160)
    gain = {"rgb": [], "thermal": []}
    for (rgb, th), packet, pair in frames:
        out = restorer.restore(pair)
        assert out.header is pair.header and out.frame_type == pair.frame_type and out.index == pair.index
        assert out.rgb.shape == pair.rgb.shape and out.rgb.dtype == np.uint8
        assert out.thermal.shape == pair.thermal.shape and out.thermal.dtype == np.uint8
        gain["rgb"].append(psnr(rgb, out.rgb) - psnr(rgb, pair.rgb))
        gain["thermal"].append(psnr(th, out.thermal) - psnr(th, pair.thermal))
    # frames the model never saw (m3svd_seq), lowest level: restoration must not lose quality
    assert np.mean(gain["rgb"]) > 0 and np.mean(gain["thermal"]) > 0, gain


def test_sixteen_bit_and_lossless_thermal_pass_unchanged():
    rgb, th = crop_pair(0)
    th16 = th.astype(np.uint16) * 64 + 5000
    restorer = Restorer(JointRestorer().eval())
    for codec, thermal in (("lossless", th16), ("h265", th16), ("lossless", th)):
        enc, dec = StreamEncoder(None, quality=8, stream_id=2, thermal_codec=codec), StreamDecoder(None)
        pair = dec.decode(enc.encode(rgb, thermal))
        out = restorer.restore(pair)
        assert out.thermal is pair.thermal, codec
