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


@pytest.fixture(scope="module")
def trained_weights(tmp_path_factory):
    """A restoration trained for a few steps on real coded crops (far from the identity: high lr)."""
    from mm_compress_ros.restore import train

    root = tmp_path_factory.mktemp("restore")
    chains, index = root / "chains", []
    chains.mkdir()
    pairs = [crop_pair(i) for i in range(4)]
    save_chain(chains, index, code_chain([p[0] for p in pairs], [p[1] for p in pairs], 4), 4,
               source="m3svd_seq/0111_1716", kind="paired", start=0)
    assert train.main([str(chains), str(root / "run"), "--steps", "12", "--batch", "2", "--crop", "64",
                       "--lr", "0.01", "--threads", "1", "--log-every", "6"]) == 0
    return root / "run" / "checkpoint.safetensors"


def test_restoration_changes_only_the_pictures(trained_weights):
    from mm_compress_ros.link.pair_decoder import PairDecoder

    packets = [p for _, p, _ in _decoded(4)]
    plain, restored = PairDecoder(restore=False), PairDecoder(restore=True, restore_weights=str(trained_weights))
    changed = 0
    for data in packets:
        a, b = plain.decode(data), restored.decode(data)
        assert not a.restored and b.restored
        assert a.header == b.header and a.packet.sections == b.packet.sections   # what is forwarded/recorded
        assert a.pair.frame_type == b.pair.frame_type and a.pair.index == b.pair.index
        assert b.pair.rgb.shape == a.pair.rgb.shape and b.pair.thermal.dtype == a.pair.thermal.dtype
        changed += not (np.array_equal(a.pair.rgb, b.pair.rgb) and np.array_equal(a.pair.thermal, b.pair.thermal))
    assert changed == len(packets)
    assert restored.counts.restored == len(packets) and plain.counts.restored == 0


def test_cli_decode_restore_switch(trained_weights, tmp_path):
    from codec_fixtures import write_crops

    src = write_crops(tmp_path / "src", 3)
    cli = str(VENV_BIN / "mm-compress")
    stream = tmp_path / "s.mmc"
    subprocess.run([cli, "encode", "--rgb", str(src / "rgb"), "--thermal", str(src / "thermal"), "--out", str(stream),
                    "--quiet"], check=True, capture_output=True, timeout=120)
    outs = {}
    for flag in ("--no-restore", "--restore"):
        out = tmp_path / flag.strip("-")
        r = subprocess.run([cli, "decode", str(stream), "--out", str(out), "--quiet", flag,
                            "--restore-weights", str(trained_weights)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        outs[flag] = (out, json.loads(r.stdout.strip().splitlines()[-1]))
    assert outs["--no-restore"][1]["restored"] == 0 and outs["--restore"][1]["restored"] == 3
    from mm_compress_ros.io.frames import read_rgb
    a = read_rgb(outs["--no-restore"][0] / "rgb" / "0000.png")
    b = read_rgb(outs["--restore"][0] / "rgb" / "0000.png")
    assert a.shape == b.shape and not np.array_equal(a, b)
    r = subprocess.run([cli, "decode", str(stream), "--out", str(tmp_path / "x"), "--restore",
                        "--restore-weights", str(tmp_path / "missing.safetensors")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and "no restoration model" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_sixteen_bit_and_lossless_thermal_pass_unchanged():
    rgb, th = crop_pair(0)
    th16 = th.astype(np.uint16) * 64 + 5000
    restorer = Restorer(JointRestorer().eval())
    for codec, thermal in (("lossless", th16), ("h265", th16), ("lossless", th)):
        enc, dec = StreamEncoder(None, quality=8, stream_id=2, thermal_codec=codec), StreamDecoder(None)
        pair = dec.decode(enc.encode(rgb, thermal))
        out = restorer.restore(pair)
        assert out.thermal is pair.thermal, codec
