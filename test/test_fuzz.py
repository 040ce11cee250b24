"""Fuzzing the packet decoder with mutated and truncated real packets (a bounded run for CI).

Every outcome must be a decoded pair, ``None`` (a dropped predicted frame) or a ``PacketError``;
anything else (a crash, another exception type, a hang) fails. Half of the mutants get a fresh
CRC32 so that the mutation reaches the entropy decoder and the networks, not only the CRC check.
The longer run is ``python benchmarks/fuzz_packets.py`` (figures in docs/reliability.md).
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

_MODEL = None
_PACKETS = None


def _setup():
    global _MODEL, _PACKETS
    if _MODEL is None:
        model = load_model("mmvc", device="cpu")
        enc = StreamEncoder(model, gop=3)
        _PACKETS = [enc.encode(*crop_pair(i, h=64, w=64)) for i in range(3)]
        _MODEL = model
    return _MODEL, _PACKETS


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
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(which=st.integers(0, 2), ops=OPS, fix_crc=st.booleans())
def test_mutated_packets_give_typed_errors_only(which, ops, fix_crc):
    model, packets = _setup()
    dec = StreamDecoder(model)
    if which > 0:  # a decoder that holds the right reference, so predicted frames are decoded too
        for p in packets[:which]:
            assert dec.decode(p) is not None
    bad = mutate(packets[which], ops, fix_crc)
    try:
        out = dec.decode(bad)
    except PacketError:
        assert dec.waiting_for_key
        return
    if out is not None:
        assert out.rgb.shape[2] == 3 and out.rgb.ndim == 3


def test_random_bytes_and_empty_input():
    model, _ = _setup()
    dec = StreamDecoder(model)
    for junk in (b"", b"MMCP", bytes(range(256)) * 3, b"MMCP\x01" + bytes(100)):
        with pytest.raises(PacketError):
            dec.decode(junk)
