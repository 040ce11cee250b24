"""The shipped real-time model (`mmrt`, the hybrid profile's dependent codec) as users run it: the
`mm-compress` command in separate processes with other thread counts, static scenes, every quality
level. Real frames from ../shared/data; the codec-level proofs are in test_rtcodec.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from codec_fixtures import REPO, crop_pair, frame, write_crops
from mm_compress_ros.codec.packet import read_header
from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder
from mm_compress_ros.codec.zoo import load_model
from mm_compress_ros.io.frames import read_rgb, read_thermal

MODEL = "mmrt"


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, direction="thermal_given_rgb", device="cpu")


def _cli(*args, threads: int):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", "mm_compress_ros.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=600)


def test_the_card_describes_an_integer_hybrid_model(model):
    assert model.card["config"]["arch"] == "rt" and model.levels == 64 and model.net.exact
    assert model.default_quality == 32
    assert model.card["training"]["steps"] > 0 and "history" in model.card["training"]


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_encode_and_decode_in_other_processes_with_other_thread_counts_agree_bit_for_bit(tmp_path, codec):
    src = write_crops(tmp_path / "src", 5, sixteen_bit=True, h=192, w=256, y=100, x=150)   # mono16
    stream = tmp_path / "s.mmc"
    r = _cli("encode", "--model", MODEL, "--rgb", src / "rgb", "--thermal", src / "thermal", "--out", stream,
             "--gop", 3, "--reference-codec", codec, "--encoder", "software", "--recon", tmp_path / "recon",
             "--quiet", "--device", "cpu", threads=2)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["quality"] == 32          # the model's middle level by default
    r = _cli("decode", stream, "--out", tmp_path / "dec", "--quiet", "--device", "cpu", threads=1)
    assert r.returncode == 0, r.stderr
    for i in range(5):
        for mod, read in (("rgb", read_rgb), ("thermal", read_thermal)):
            a, b = read(tmp_path / "recon" / mod / f"{i:04d}.png"), read(tmp_path / "dec" / mod / f"{i:04d}.png")
            assert a.dtype == b.dtype and np.array_equal(a, b), (mod, i)
    assert read_thermal(tmp_path / "dec" / "thermal" / "0000.png").dtype == np.uint16


@pytest.mark.parametrize("quality", [1, 16, 32, 48, 64])
def test_a_static_scene_costs_at_most_200_bytes_per_predicted_thermal_frame(model, quality):
    """The same 640x480 pair coded again: the predicted frame's thermal sections (skip mode)."""
    rgb, th = frame(0)
    enc = StreamEncoder(model, quality=quality, gop=10, reference_codec="h264", encoder="software")
    dec = StreamDecoder(model)
    dec.decode(enc.encode(rgb, th))
    for _ in range(2):
        packet = enc.encode(rgb, th)
        h = read_header(packet)
        dep = sum(n for (role, _), n in zip(h.layout, h.section_lengths) if role == "dep")
        assert h.frame_type_name == "predicted" and dep <= 200, (quality, dep)
        assert np.array_equal(dec.decode(packet).thermal, enc.last_pair().thermal)


def test_every_quality_level_codes_and_decodes_and_more_quality_costs_more_bits(model):
    rgb, th = crop_pair(3, h=128, w=192)
    sizes, psnrs = [], []
    for q in range(1, model.levels + 1):
        enc = StreamEncoder(model, quality=q, gop=1, reference_codec="h264", encoder="software")
        h = read_header(packet := enc.encode(rgb, th))
        pair = StreamDecoder(model).decode(packet)
        assert np.array_equal(pair.thermal, enc.last_pair().thermal), q
        sizes.append(sum(n for (role, _), n in zip(h.layout, h.section_lengths) if role == "dep"))
        err = (pair.thermal.astype(float) - th) ** 2
        psnrs.append(10 * np.log10(255.0 ** 2 / max(err.mean(), 1e-9)))
    assert sizes[-1] > 2 * sizes[0] and psnrs[-1] > psnrs[0] + 3, (sizes[::8], psnrs[::8])
