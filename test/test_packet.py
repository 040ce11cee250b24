"""The packet format: round trip, and a typed error for every kind of damage."""

import io
import struct
import zlib

import pytest

from mm_compress_ros.codec import packet as P


def _header(**kw):
    h = dict(frame_type=P.FRAME_KEY, direction="thermal_given_rgb", quality=3, stream_id=0xDEADBEEF,
             frame_index=41, model_hash=bytes(range(8)), model_id="mmvc", rgb_size=(480, 640),
             rgb_format="bgr8", thermal_size=(240, 320), thermal_format="mono16",
             thermal_range=(7000, 9000), index_digests=(0xBEEF, 0x1234))
    h.update(kw)
    return P.PacketHeader(**h)


SECTIONS = [b"ref-y" * 10, b"ref-z", b"al", b"dep-y" * 7, b"dz"]


def test_round_trip_keeps_every_field():
    data = P.write_packet(_header(), SECTIONS)
    h, sections = P.read_packet(data)
    assert sections == SECTIONS
    assert (h.frame_type, h.direction, h.quality, h.stream_id, h.frame_index) == (0, "thermal_given_rgb", 3, 0xDEADBEEF, 41)
    assert (h.rgb_size, h.rgb_format, h.thermal_size, h.thermal_format) == ((480, 640), "bgr8", (240, 320), "mono16")
    assert h.thermal_range == (7000, 9000) and h.model_hash == bytes(range(8)) and h.model_id == "mmvc"
    assert h.total_length == len(data) and h.index_digests == (0xBEEF, 0x1234)


@pytest.mark.parametrize("cut", [0, 3, 11, 20, P.MIN_PACKET - 1, -1])
def test_truncated_packet_is_a_typed_error(cut):
    data = P.write_packet(_header(), SECTIONS)
    with pytest.raises(P.TruncatedPacket):
        P.read_packet(data[:cut] if cut >= 0 else data[:-1])


def test_bad_magic_version_and_crc():
    data = bytearray(P.write_packet(_header(), SECTIONS))
    with pytest.raises(P.BadMagic):
        P.read_packet(b"JUNK" + bytes(data[4:]))
    bad = bytearray(data)
    bad[4] = 99
    with pytest.raises(P.UnsupportedVersion):
        P.read_packet(bytes(bad))
    bad = bytearray(data)
    bad[-10] ^= 0x40  # a payload byte
    with pytest.raises(P.CorruptPacket, match="CRC"):
        P.read_packet(bytes(bad))
    with pytest.raises(P.CorruptPacket, match="trailing"):
        P.read_packet(bytes(data) + b"x")


def _forge(width, height, total=None):
    """A header claiming ``width`` x ``height`` thermal pixels (checked before any payload)."""
    data = bytearray(P.write_packet(_header(), SECTIONS))
    off = struct.calcsize("<4sBBBBIIIQ16sHHB")  # thermal width follows the RGB format byte
    struct.pack_into("<HH", data, off, width, height)
    if total is not None:
        struct.pack_into("<I", data, 8, total)
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    return bytes(data)


def test_huge_sizes_are_refused_from_the_header_alone():
    # 100000 does not fit the 16-bit field; the largest claim is 65535 x 65535, above the limits
    with pytest.raises(P.LimitExceeded):
        P.read_header(_forge(65535, 65535))
    with pytest.raises(P.LimitExceeded):
        P.read_header(_forge(640, 480), P.Limits(max_width=320))
    with pytest.raises(P.LimitExceeded, match="claims"):
        P.packet_length(_forge(640, 480, total=0xFFFFFFF0))
    # a 12-byte prefix that claims a gigantic packet is refused without reading further
    with pytest.raises(P.LimitExceeded):
        list(P.iter_stream(io.BytesIO(b"MMCP\x01\x00\x00\x03" + struct.pack("<I", 1 << 31))))


def test_stream_of_packets_and_truncated_stream():
    pk = [P.write_packet(_header(frame_index=i), SECTIONS) for i in range(3)]
    assert list(P.iter_stream(io.BytesIO(b"".join(pk)))) == pk
    with pytest.raises(P.TruncatedPacket):
        list(P.iter_stream(io.BytesIO(b"".join(pk)[:-5])))


def test_every_error_is_a_packet_error_and_a_value_error():
    for cls in (P.BadMagic, P.UnsupportedVersion, P.TruncatedPacket, P.CorruptPacket, P.LimitExceeded,
                P.ModelMismatch, P.EntropyMismatch):
        assert issubclass(cls, P.PacketError) and issubclass(cls, ValueError)
