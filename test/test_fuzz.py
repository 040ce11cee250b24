"""Fuzzing the packet decoder with mutated and truncated real packets (a bounded run for CI).

Every outcome must be a decoded pair, ``None`` (a dropped predicted frame) or a ``PacketError``;
anything else (a crash, another exception type, a hang) fails. Half of the mutants get a fresh
CRC32 so that the mutation reaches the entropy decoder and the networks, not only the CRC check.
Every kind of section is covered: learned, hybrid (H.264 + the real-time codec), standard H.264 /
H.265, 12-bit H.265 and lossless thermal. The 100,000-mutant run is ``python
benchmarks/fuzz_packets.py`` (figures in docs/reliability.md).
"""

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_fixtures import crop_pair
from mm_compress_ros.codec.packet import PacketError
from mm_compress_ros.codec.stream import StreamDecoder, StreamEncoder
from mm_compress_ros.codec.zoo import load_model

# every kind of section a packet can carry: (model name or None, StreamEncoder arguments, 16-bit thermal)
STREAM_KINDS = {
    "learned": ("mmvc", {"reference_codec": "learned"}, False),          # learned y/z, alignment
    "hybrid": ("mmrt", {"reference_codec": "h264"}, False),              # H.264 video + integer codec y/z
    "standard-h264": (None, {"reference_codec": "h264", "thermal_codec": "h264"}, False),
    "standard-h265": (None, {"reference_codec": "h265", "thermal_codec": "h265"}, False),
    "standard-12bit": (None, {"reference_codec": "h264", "thermal_codec": "h265"}, True),
    "lossless": (None, {"reference_codec": "h264", "thermal_codec": "lossless"}, True),
}
_STREAMS: dict = {}


def stream(kind: str):
    """(model or None, 3 real packets: key, predicted, predicted) of one stream kind (cached)."""
    if kind not in _STREAMS:
        import numpy as np

        name, kw, sixteen = STREAM_KINDS[kind]
        model = load_model(name, device="cpu") if name else None
        enc = StreamEncoder(model, gop=3, **kw)
        pairs = [crop_pair(i, h=64, w=64) for i in range(3)]
        if sixteen:
            pairs = [(r, t.astype(np.uint16) * 37 + 5000) for r, t in pairs]
        _STREAMS[kind] = (model, [enc.encode(r, t) for r, t in pairs])
    return _STREAMS[kind]


def decode_mutant(model, packets, which: int, bad: bytes):
    """Decodes ``bad`` with a decoder that holds the right reference (the packets before it):
    returns the pair or None, raises PacketError; anything else is a bug."""
    dec = StreamDecoder(model)
    for p in packets[:which]:
        assert dec.decode(p) is not None
    try:
        return dec.decode(bad)
    except PacketError:
        assert dec.waiting_for_key
        raise


def mutate(data: bytes, ops, fix_crc: bool) -> bytes:
    b = bytearray(data)
    for kind, pos, val in ops:
        if not b:
            break
        p = pos % len(b)
        if kind == "flip":
            b[p] ^= 1 << (val % 8)
        elif kind == "set":
            b[p] = val
        elif kind == "cut":
            del b[p:]
        elif kind == "insert":
            b[p:p] = bytes([val]) * (1 + val % 7)
        elif kind == "delete":
            del b[p:p + 1 + val % 7]
    if fix_crc and len(b) > 4:
        b[-4:] = struct.pack("<I", zlib.crc32(bytes(b[:-4])))
    return bytes(b)


OPS = st.lists(st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "delete"]),
                         st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)


@pytest.mark.timeout(600)
@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(kind=st.sampled_from(sorted(STREAM_KINDS)), which=st.integers(0, 2), ops=OPS, fix_crc=st.booleans())
def test_mutated_packets_give_typed_errors_only(kind, which, ops, fix_crc):
    model, packets = stream(kind)
    try:
        out = decode_mutant(model, packets, which, mutate(packets[which], ops, fix_crc))
    except PacketError:
        return
    if out is not None:
        assert out.rgb.shape[2] == 3 and out.rgb.ndim == 3


@pytest.mark.parametrize("kind", sorted(STREAM_KINDS))
def test_random_bytes_and_empty_input(kind):
    model, _ = stream(kind)
    dec = StreamDecoder(model)
    for junk in (b"", b"MMCP", bytes(range(256)) * 3, b"MMCP\x01" + bytes(100)):
        with pytest.raises(PacketError):
            dec.decode(junk)
