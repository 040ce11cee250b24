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
        list(P.iter_stream(io.BytesIO(b"MMCP" + bytes([P.VERSION]) + b"\x00\x00\x03" + struct.pack("<I", 1 << 31))))


def test_stream_of_packets_and_truncated_stream():
    pk = [P.write_packet(_header(frame_index=i), SECTIONS) for i in range(3)]
    assert list(P.iter_stream(io.BytesIO(b"".join(pk)))) == pk
    with pytest.raises(P.TruncatedPacket):
        list(P.iter_stream(io.BytesIO(b"".join(pk)[:-5])))


def test_every_error_is_a_packet_error_and_a_value_error():
    for cls in (P.BadMagic, P.UnsupportedVersion, P.TruncatedPacket, P.CorruptPacket, P.LimitExceeded,
                P.ModelMismatch, P.EntropyMismatch):
        assert issubclass(cls, P.PacketError) and issubclass(cls, ValueError)


def test_a_packet_of_another_format_version_is_refused_naming_both_versions():
    data = bytearray(P.write_packet(_header(), SECTIONS))
    data[4] = 1
    with pytest.raises(P.UnsupportedVersion, match=r"version 1 is not supported .*reads versions 2, 3"):
        P.read_packet(bytes(data))


def _as_version2(data: bytes) -> bytes:
    """The same packet as a version-2 writer (no thermal-layer fields) wrote it."""
    body = bytearray(data[:-4])
    del body[64:68]           # thermal codec, thermal QP, thermal max error (after the reference QP at 63)
    body[4] = 2
    body[8:12] = struct.pack("<I", len(body) + 4)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def test_version_2_packets_are_still_read_as_a_learned_thermal_layer():
    v3 = P.write_packet(_header(reference_codec="h264", reference_qp=30, frame_type=P.FRAME_PREDICTED),
                        [b"au" * 9, b"y" * 5, b"z"])
    h, sections = P.read_packet(_as_version2(v3))
    assert h.version == 2 and h.thermal_codec == "learned" and h.thermal_max_error == P.NO_MAX_ERROR
    assert sections == [b"au" * 9, b"y" * 5, b"z"] and h.reference_qp == 30 and h.profile == "hybrid"


@pytest.mark.parametrize("thermal", ["h264", "h265", "lossless"])
def test_standard_thermal_packet_round_trip_and_layout(thermal):
    secs = [b"\x00\x00\x00\x01" + b"r" * 200, b"\x00\x00\x00\x01" + b"t" * 50]
    for ftype in (P.FRAME_KEY, P.FRAME_PREDICTED):
        data = P.write_packet(_header(reference_codec="h264", reference_qp=30, thermal_codec=thermal, thermal_qp=29,
                                      thermal_max_error=17, model_id="", model_hash=bytes(8), frame_type=ftype), secs)
        h, sections = P.read_packet(data)
        assert sections == secs and h.profile == "standard" and not h.needs_model
        assert (h.thermal_codec, h.thermal_qp, h.thermal_max_error) == (thermal, 29, 17)
        assert [n for _, n in h.layout] == ["video", "lossless" if thermal == "lossless" else "video"]
        split = h.modality_bytes()
        assert split["rgb"] + split["thermal"] == len(data) and split["thermal"] > 54
    # a learned RGB layer with a standard thermal layer is no profile: refused, named
    bad = bytearray(P.write_packet(_header(reference_codec="h264", thermal_codec=thermal), secs))
    bad[62] = P.REFERENCE_CODECS["learned"]
    body = bytes(bad[:-4])
    with pytest.raises(P.CorruptPacket, match="not a profile"):
        P.read_packet(body + struct.pack("<I", zlib.crc32(body)))


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_hybrid_packet_round_trip_layout_and_bytes_per_modality(codec):
    video = [b"\x00\x00\x00\x01" + b"v" * 300, b"al", b"dep-y" * 7, b"dz"]
    data = P.write_packet(_header(reference_codec=codec, reference_qp=31), video)
    h, sections = P.read_packet(data)
    assert sections == video and h.reference_codec == codec and h.reference_qp == 31
    assert h.profile == "hybrid"
    assert [n for _, n in h.layout] == ["video", "align", "y", "z"]
    split = h.modality_bytes()
    assert split["rgb"] + split["thermal"] == len(data)
    assert split["rgb"] > 300 and split["thermal"] > len(b"al" + b"dep-y" * 7 + b"dz")
    # a predicted hybrid frame has 3 sections; the key frame's 4 are refused for it
    with pytest.raises(P.CorruptPacket, match="expected 3"):
        P.read_packet(P.write_packet(_header(reference_codec=codec, frame_type=P.FRAME_PREDICTED), video))


def test_learned_packet_layout_and_wrong_section_count():
    h, _ = P.read_packet(P.write_packet(_header(), SECTIONS))
    assert h.profile == "learned" and len(h.layout) == 5
    with pytest.raises(P.CorruptPacket, match="expected 5"):
        P.read_packet(P.write_packet(_header(), SECTIONS[:4]))
