"""The lossless 16-bit thermal codec (FFV1 level 1 through PyAV) on real radiometric data.

The real RAW16 frame in ../shared/data/radiometric and synthetic 14-bit sequences made from small
crops of a real m3svd_seq thermal sequence must come back value for value; damaged packets must
raise VideoCodecError with a one-line message.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from conftest import DATA_ROOT, REPO
from mm_compress_ros.codec.lossless import (HEADER_SIZE, Lossless16Decoder, Lossless16Encoder,
                                            decode_lossless16, encode_lossless16)
from mm_compress_ros.codec.videocodec import VideoCodecError
from mm_compress_ros.io.frames import read_thermal
from mm_compress_ros.io.radiometric import read_radiometric, synthetic_radiometric

pytestmark = pytest.mark.needs_data

RADIOMETRIC = DATA_ROOT / "radiometric" / "example_radiometric.tiff"
SEQ = DATA_ROOT / "m3svd_seq" / "0111_1716"


def _need(path) -> None:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (../shared/data must sit beside the repository)", pytrace=False)


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    _need(RADIOMETRIC)
    return read_radiometric(RADIOMETRIC)


def thermal8(n: int, h: int, w: int, y: int = 160, x: int = 224) -> list[np.ndarray]:
    _need(SEQ)
    return [np.ascontiguousarray(read_thermal(SEQ / "thermal" / f"{i:04d}.png")[y:y + h, x:x + w]) for i in range(n)]


def round_trip(frames: list[np.ndarray]) -> list[bytes]:
    """One encoder and one decoder for the whole sequence; every packet also decodes on its own."""
    enc, dec = Lossless16Encoder(), Lossless16Decoder()
    packets = [enc.encode(f) for f in frames]
    for f, p in zip(frames, packets):
        out = dec.decode(p, f.shape)
        assert out.dtype == np.uint16 and out.shape == f.shape
        assert np.array_equal(out, f)
    for f, p in zip(reversed(frames), reversed(packets)):     # self-contained: any order, fresh decoder
        assert np.array_equal(decode_lossless16(p, f.shape), f)
    return packets


def test_real_frame_exact_and_smaller_than_png(real):
    assert real.dtype == np.uint16 and real.shape == (512, 640)
    assert (int(real.min()), int(real.max())) == (6743, 7077)
    (packet,) = round_trip([real])
    ok, png3 = cv2.imencode(".png", real, [cv2.IMWRITE_PNG_COMPRESSION, 3])   # compressed_image_transport
    ok1, png_default = cv2.imencode(".png", real)
    assert ok and ok1
    assert len(packet) < 0.8 * min(png3.size, png_default.size), (len(packet), png3.size, png_default.size)
    assert encode_lossless16(real) == packet                   # deterministic, fresh or reused encoder


def test_synthetic_14bit_sequence_exact():
    frames = synthetic_radiometric(thermal8(5, 128, 160), bits=14, seed=3)
    assert len(frames) == 5 and all(f.dtype == np.uint16 and f.shape == (128, 160) for f in frames)
    hi = max(int(f.max()) for f in frames)
    lo = min(int(f.min()) for f in frames)
    assert hi < 2 ** 14 and 100 < hi - lo < 8000 and 5000 < np.mean(frames) < 10000
    assert 1 in np.diff(np.unique(frames[0]))              # interpolated: not multiples of the gain
    assert not np.array_equal(frames[0], frames[1])
    again = synthetic_radiometric(thermal8(5, 128, 160), bits=14, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))
    round_trip(frames)


def test_synthetic_noise_and_fixed_pattern():
    """Same 8-bit frame twice: the difference is temporal noise only (the column/row pattern stays)."""
    f8 = thermal8(1, 128, 160)[0]
    a, b = synthetic_radiometric([f8, f8], bits=14, seed=0, read_noise=3.0)
    d = a.astype(np.float64) - b
    assert 2.5 < d.std() / np.sqrt(2) < 3.5
    flat = np.full_like(f8, 128)
    c, e = synthetic_radiometric([flat, flat], seed=0, read_noise=0.0, column_fpn=6.0, row_fpn=2.0)
    assert np.array_equal(c, e)                            # no temporal noise: only the fixed pattern
    assert c.mean(axis=0).std() > 3.0 and c.mean(axis=1).std() > 1.0


def test_odd_sizes_exact():
    frames = synthetic_radiometric(thermal8(3, 97, 127, y=101, x=203), seed=1)
    round_trip(frames)
    _need(SEQ)
    full = synthetic_radiometric([read_thermal(SEQ / "thermal" / "0000.png")[:479, :639]], seed=2)
    round_trip(full)


def test_full_range_extremes_exact():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 65536, (33, 17), dtype=np.uint16),
              np.tile(np.array([0, 65535], dtype=np.uint16), (8, 5)),
              np.zeros((1, 1), np.uint16), np.full((2, 3), 65535, np.uint16)]
    frames[0].flat[0], frames[0].flat[-1] = 0, 65535
    enc, dec = Lossless16Encoder(), Lossless16Decoder()
    for f in frames:                                       # the size changes from frame to frame
        assert np.array_equal(dec.decode(enc.encode(f), f.shape), f)


def _one_line_error(data: bytes, size) -> str:
    with pytest.raises(VideoCodecError) as exc:
        Lossless16Decoder().decode(data, size)
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


def test_corrupt_data_raises(real):
    packet = encode_lossless16(real)
    flipped = bytearray(packet)
    flipped[len(packet) // 2] ^= 0x10
    assert "CRC" in _one_line_error(bytes(flipped), real.shape)
    assert "CRC" in _one_line_error(packet[:-100], real.shape)
    _one_line_error(b"", real.shape)
    _one_line_error(packet[:HEADER_SIZE], real.shape)
    _one_line_error(bytes(len(packet)), real.shape)
    _one_line_error(np.random.default_rng(1).bytes(4096), real.shape)
    assert "expected 640x480" in _one_line_error(packet, (480, 640))
    # a well-formed header and checksum around a payload FFV1 cannot parse
    head = packet[:HEADER_SIZE - 4]
    junk = bytes(64)
    _one_line_error(head + struct.pack("<I", zlib.crc32(junk, zlib.crc32(head))) + junk, real.shape)


def test_bad_inputs():
    enc = Lossless16Encoder()
    with pytest.raises(ValueError):
        enc.encode(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        enc.encode(np.zeros((4, 4, 3), np.uint16))
    _need(SEQ)
    with pytest.raises(ValueError) as exc:
        read_radiometric(SEQ / "thermal" / "0000.png")     # 8-bit, 3 channels
    assert "\n" not in str(exc.value) and "16-bit" in str(exc.value)


def test_no_rclpy_or_torch():
    code = ("import sys, mm_compress_ros.codec.lossless, mm_compress_ros.io.radiometric; "
            "bad = [m for m in ('rclpy', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
