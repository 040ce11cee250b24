"""The wire format: one packet per coded RGB + thermal frame pair (specified in docs/bitstream.md).

This module is the only place that writes or reads packet bytes. Every malformed input raises a
subclass of :class:`PacketError`, and every size is checked against :class:`Limits` before
anything large is allocated.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

from .profiles import REFERENCE_CODEC_NAMES, THERMAL_CODEC_NAMES, profile_name

MAGIC = b"MMCP"
VERSION = 3
READABLE_VERSIONS = (2, 3)   # version 2 (no thermal-layer fields: thermal always learned) is still read

FRAME_KEY = 0
FRAME_PREDICTED = 1
FRAME_TYPES = {FRAME_KEY: "key", FRAME_PREDICTED: "predicted"}

DIRECTION_CODES = {"thermal_given_rgb": 0, "rgb_given_thermal": 1}
RGB_FORMATS = {"rgb8": 0, "bgr8": 1}
THERMAL_FORMATS = {"mono8": 0, "mono16": 1, "16UC1": 2, "8UC1": 3}
SIXTEEN_BIT = ("mono16", "16UC1")
# how the reference modality is coded: this model's learned reference codec, or a standard video codec
REFERENCE_CODECS = {name: code for code, name in enumerate(REFERENCE_CODEC_NAMES)}
# how the dependent (thermal) modality is coded: the model's dependent codec given the decoded
# reference, a standard low-delay video stream of its own, or losslessly (16-bit kept exact)
THERMAL_CODECS = {name: code for code, name in enumerate(THERMAL_CODEC_NAMES)}
STANDARD_THERMAL = ("h264", "h265", "lossless")
NO_MAX_ERROR = 0xFFFF   # thermal max error field: not measured


# The sections of a packet, in order, as (role, name); role "ref" or "dep" is the reference or the
# dependent modality (RGB / thermal for thermal_given_rgb). "video" is one Annex B access unit,
# "lossless" one self-contained lossless picture (codec/lossless.py).
SECTION_LAYOUT = {
    ("learned", "learned", "key"): (("ref", "y"), ("ref", "z"), ("dep", "align"), ("dep", "y"), ("dep", "z")),
    ("learned", "learned", "predicted"): (("ref", "y"), ("ref", "z"), ("dep", "y"), ("dep", "z")),
    ("video", "learned", "key"): (("ref", "video"), ("dep", "align"), ("dep", "y"), ("dep", "z")),
    ("video", "learned", "predicted"): (("ref", "video"), ("dep", "y"), ("dep", "z")),
    ("video", "video", "key"): (("ref", "video"), ("dep", "video")),
    ("video", "video", "predicted"): (("ref", "video"), ("dep", "video")),
    ("video", "lossless", "key"): (("ref", "video"), ("dep", "lossless")),
    ("video", "lossless", "predicted"): (("ref", "video"), ("dep", "lossless")),
}

# magic, version, frame type, direction, quality, total length, stream id, frame index,
# model hash (8 bytes), model id (16 bytes ASCII), rgb w, h, format, thermal w, h, format,
# thermal lo, hi (16-bit range), entropy index digests (reference, dependent), reference codec,
# reference QP (standard codecs; 0 for the learned one), [version 3: thermal codec, thermal QP,
# thermal max error], number of sections
_HEAD = struct.Struct("<4sBBBBIIIQ16sHHBHHBHHHHBBBBHB")
_HEAD_V2 = struct.Struct("<4sBBBBIIIQ16sHHBHHBHHHHBBB")
_CRC = struct.Struct("<I")
_LEN = struct.Struct("<I")
MIN_PACKET = _HEAD_V2.size + _CRC.size   # the smallest header a decoder reads
PREFIX = 12  # bytes needed to know a packet's total length (magic .. total length)


class PacketError(ValueError):
    """Base class of every error raised while reading a packet or a stream."""


class BadMagic(PacketError):
    pass


class UnsupportedVersion(PacketError):
    pass


class TruncatedPacket(PacketError):
    pass


class CorruptPacket(PacketError):
    pass


class LimitExceeded(PacketError):
    pass


class ModelMismatch(PacketError):
    pass


class EntropyMismatch(PacketError):
    """The decoder's entropy parameters differ from the encoder's (see docs/reliability.md)."""


@dataclass(frozen=True)
class Limits:
    """What a decoder accepts; checked on the fixed header before anything is allocated."""

    max_width: int = 8192
    max_height: int = 8192
    max_packet_bytes: int = 64 << 20
    max_sections: int = 8


@dataclass
class PacketHeader:
    frame_type: int
    direction: str
    quality: int
    stream_id: int
    frame_index: int
    model_hash: bytes
    model_id: str
    rgb_size: tuple[int, int]          # (height, width)
    rgb_format: str
    thermal_size: tuple[int, int]      # (height, width)
    thermal_format: str
    thermal_range: tuple[int, int]     # 16-bit values mapped to [0, 1]: lo, hi
    index_digests: tuple[int, int] = (0, 0)  # see ConditionalCodec.index_digest
    reference_codec: str = "learned"
    reference_qp: int = 0
    thermal_codec: str = "learned"
    thermal_qp: int = 0                # the standard thermal codec's QP (0: learned or lossless)
    thermal_max_error: int = NO_MAX_ERROR   # largest |decoded - input| thermal value the encoder saw
    version: int = VERSION
    section_lengths: list[int] = field(default_factory=list)
    total_length: int = 0

    @property
    def frame_type_name(self) -> str:
        return FRAME_TYPES[self.frame_type]

    @property
    def profile(self) -> str:
        return profile_name(self.reference_codec, self.thermal_codec)

    @property
    def needs_model(self) -> bool:
        """Whether decoding takes a learned model (the one ``model_id`` / ``model_hash`` name)."""
        return self.reference_codec == "learned" or self.thermal_codec == "learned"

    @property
    def layout(self) -> tuple[tuple[str, str], ...]:
        """The (role, name) of each section of this packet (see :data:`SECTION_LAYOUT`)."""
        return section_layout(self.reference_codec, self.frame_type_name, self.thermal_codec)

    def modality_bytes(self) -> dict[str, int]:
        """Bytes per modality (``rgb``, ``thermal``): each modality's sections plus the header,
        section table and CRC split in proportion (the remainder goes to the larger one)."""
        roles = {"ref": 0, "dep": 0}
        for (role, _), n in zip(self.layout, self.section_lengths):
            roles[role] += n
        payload = roles["ref"] + roles["dep"]
        overhead = self.total_length - payload
        ref_share = (overhead * roles["ref"] + payload // 2) // payload if payload else overhead // 2
        ref, dep = roles["ref"] + ref_share, roles["dep"] + overhead - ref_share
        return {"rgb": ref, "thermal": dep} if self.direction == "thermal_given_rgb" else {"rgb": dep, "thermal": ref}


def _kind(codec: str) -> str:
    return codec if codec in ("learned", "lossless") else "video"


def section_layout(reference_codec: str, frame_type: str,
                   thermal_codec: str = "learned") -> tuple[tuple[str, str], ...] | None:
    """The sections of such a packet; None for a combination no encoder writes."""
    return SECTION_LAYOUT.get((_kind(reference_codec), _kind(thermal_codec), frame_type))


def _inv(d: dict) -> dict:
    return {v: k for k, v in d.items()}


def write_packet(h: PacketHeader, sections: list[bytes]) -> bytes:
    """Serialises a header and its payload sections; the CRC32 covers all preceding bytes."""
    model_id = h.model_id.encode("ascii")
    if len(model_id) > 16:
        raise ValueError(f"model id {h.model_id!r} is longer than 16 bytes")
    if len(h.model_hash) != 8:
        raise ValueError("model hash must be 8 bytes")
    lens = b"".join(_LEN.pack(len(s)) for s in sections)
    total = _HEAD.size + len(lens) + sum(len(s) for s in sections) + _CRC.size
    head = _HEAD.pack(
        MAGIC, VERSION, h.frame_type, DIRECTION_CODES[h.direction], h.quality, total,
        h.stream_id, h.frame_index, int.from_bytes(h.model_hash, "little"), model_id,
        h.rgb_size[1], h.rgb_size[0], RGB_FORMATS[h.rgb_format],
        h.thermal_size[1], h.thermal_size[0], THERMAL_FORMATS[h.thermal_format],
        h.thermal_range[0], h.thermal_range[1], h.index_digests[0], h.index_digests[1],
        REFERENCE_CODECS[h.reference_codec], h.reference_qp, THERMAL_CODECS[h.thermal_codec], h.thermal_qp,
        h.thermal_max_error, len(sections),
    )
    body = head + lens + b"".join(sections)
    return body + _CRC.pack(zlib.crc32(body))


def packet_length(prefix: bytes, limits: Limits = Limits()) -> int:
    """Total length of the packet starting with ``prefix`` (at least :data:`PREFIX` bytes)."""
    if len(prefix) < PREFIX:
        raise TruncatedPacket(f"packet truncated: {len(prefix)} bytes, need at least {PREFIX}")
    if prefix[:4] != MAGIC:
        raise BadMagic(f"not an mm_compress_ros packet (magic {prefix[:4]!r}, expected {MAGIC!r})")
    if prefix[4] not in READABLE_VERSIONS:
        raise UnsupportedVersion(f"packet format version {prefix[4]} is not supported (this decoder reads versions "
                                 f"{', '.join(map(str, READABLE_VERSIONS))}); re-encode the stream or use the "
                                 "release that wrote it")
    total = _LEN.unpack_from(prefix, 8)[0]
    if total > limits.max_packet_bytes:
        raise LimitExceeded(f"packet claims {total} bytes, above the limit of {limits.max_packet_bytes}")
    if total < MIN_PACKET:
        raise CorruptPacket(f"packet claims {total} bytes, less than a header")
    return total


def read_header(data: bytes, limits: Limits = Limits()) -> PacketHeader:
    """Parses and validates the fixed header and section table (no CRC check, no payload)."""
    total = packet_length(data, limits)
    version = data[4]
    head = _HEAD if version == VERSION else _HEAD_V2
    if len(data) < head.size:
        raise TruncatedPacket(f"packet truncated: {len(data)} bytes, header needs {head.size}")
    if version == VERSION:
        (_, _, ftype, direction, quality, _, stream_id, index, mhash, mid, rw, rh, rf, tw, th, tf,
         lo, hi, dig_ref, dig_dep, rcodec, rqp, tcodec, tqp, terr, nsec) = head.unpack_from(data)
    else:
        (_, _, ftype, direction, quality, _, stream_id, index, mhash, mid, rw, rh, rf, tw, th, tf,
         lo, hi, dig_ref, dig_dep, rcodec, rqp, nsec) = head.unpack_from(data)
        tcodec, tqp, terr = THERMAL_CODECS["learned"], 0, NO_MAX_ERROR
    if ftype not in FRAME_TYPES:
        raise CorruptPacket(f"unknown frame type {ftype}")
    if direction not in _inv(DIRECTION_CODES):
        raise CorruptPacket(f"unknown direction code {direction}")
    if rf not in _inv(RGB_FORMATS) or tf not in _inv(THERMAL_FORMATS):
        raise CorruptPacket(f"unknown pixel format codes {rf}/{tf}")
    for name, w, h in (("RGB", rw, rh), ("thermal", tw, th)):
        if not (0 < w <= limits.max_width and 0 < h <= limits.max_height):
            raise LimitExceeded(f"{name} size {w}x{h} is outside the limits "
                                f"(1..{limits.max_width} x 1..{limits.max_height})")
    if rcodec not in _inv(REFERENCE_CODECS):
        raise CorruptPacket(f"unknown reference codec code {rcodec}")
    if tcodec not in _inv(THERMAL_CODECS):
        raise CorruptPacket(f"unknown thermal codec code {tcodec}")
    layout = section_layout(_inv(REFERENCE_CODECS)[rcodec], FRAME_TYPES[ftype], _inv(THERMAL_CODECS)[tcodec])
    if layout is None:
        raise CorruptPacket(f"reference codec {_inv(REFERENCE_CODECS)[rcodec]} with thermal codec "
                            f"{_inv(THERMAL_CODECS)[tcodec]} is not a profile")
    expected = len(layout)
    if nsec != expected:
        raise CorruptPacket(f"{FRAME_TYPES[ftype]} frame has {nsec} sections, expected {expected}")
    if nsec > limits.max_sections:
        raise CorruptPacket(f"packet has {nsec} sections (1..{limits.max_sections} allowed)")
    table_end = head.size + nsec * _LEN.size
    if len(data) < table_end:
        raise TruncatedPacket(f"packet truncated in its section table ({len(data)} bytes)")
    lens = [_LEN.unpack_from(data, head.size + i * _LEN.size)[0] for i in range(nsec)]
    if table_end + sum(lens) + _CRC.size != total:
        raise CorruptPacket("section lengths do not add up to the packet length")
    try:
        model_id = mid.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise CorruptPacket("model id is not ASCII") from None
    return PacketHeader(
        frame_type=ftype, direction=_inv(DIRECTION_CODES)[direction], quality=quality,
        stream_id=stream_id, frame_index=index, model_hash=mhash.to_bytes(8, "little"),
        model_id=model_id, rgb_size=(rh, rw), rgb_format=_inv(RGB_FORMATS)[rf],
        thermal_size=(th, tw), thermal_format=_inv(THERMAL_FORMATS)[tf], thermal_range=(lo, hi),
        index_digests=(dig_ref, dig_dep), reference_codec=_inv(REFERENCE_CODECS)[rcodec], reference_qp=rqp,
        thermal_codec=_inv(THERMAL_CODECS)[tcodec], thermal_qp=tqp, thermal_max_error=terr, version=version,
        section_lengths=lens, total_length=total,
    )


class Packet(NamedTuple):
    """A parsed packet: what :func:`read_packet` returns, and what the decoders take, so that a
    packet is parsed once and handed on (``header, sections = read_packet(data)`` still unpacks)."""

    header: PacketHeader
    sections: list[bytes]


def read_packet(data: bytes, limits: Limits = Limits()) -> Packet:
    """Validates a whole packet (header, lengths, CRC) and returns it parsed: its header and
    sections. The one parse of a packet; a :class:`Packet` passed in is returned as it is."""
    if isinstance(data, Packet):
        return data
    h = read_header(data, limits)
    if len(data) < h.total_length:
        raise TruncatedPacket(f"packet truncated: {len(data)} of {h.total_length} bytes")
    if len(data) > h.total_length:
        raise CorruptPacket(f"{len(data) - h.total_length} trailing bytes after the packet")
    body = memoryview(data)[: h.total_length - _CRC.size]
    (crc,) = _CRC.unpack_from(data, h.total_length - _CRC.size)
    if zlib.crc32(body) != crc:
        raise CorruptPacket("CRC32 mismatch: the packet is corrupt")
    pos = (_HEAD if h.version == VERSION else _HEAD_V2).size + len(h.section_lengths) * _LEN.size
    sections = []
    for n in h.section_lengths:
        sections.append(bytes(body[pos: pos + n]))
        pos += n
    return Packet(h, sections)


# -- stream files: packets back to back ------------------------------------------------------

def iter_stream(f, limits: Limits = Limits()):
    """Yields packets (bytes) from a binary file object holding packets back to back."""
    while True:
        prefix = f.read(PREFIX)
        if not prefix:
            return
        total = packet_length(prefix, limits)
        rest = f.read(total - len(prefix))
        if len(rest) < total - len(prefix):
            raise TruncatedPacket(f"stream truncated: last packet has {len(prefix) + len(rest)} of {total} bytes")
        yield prefix + rest


def scan_stream(data: bytes, limits: Limits = Limits()):
    """Yields ``(offset, packet)`` or ``(offset, PacketError)`` over a stream file's bytes, and
    never stops at damage: a packet whose length prefix is unreadable is reported, and reading goes
    on at the next ``MMCP`` magic (a damaged payload does not move the framing: its CRC fails on
    read; a damaged length field is caught when no magic follows where it says the next packet
    starts). A damaged packet is yielded as its bytes, so that the reader reports it with its
    frame index where the header still parses."""
    pos, n = 0, len(data)
    while pos < n:
        try:
            total = packet_length(data[pos:pos + PREFIX], limits)
            if pos + total > n:
                raise TruncatedPacket(f"stream truncated: last packet has {n - pos} of {total} bytes")
        except PacketError as exc:
            yield pos, exc
            nxt = data.find(MAGIC, pos + 1)
            if nxt < 0:
                return
            pos = nxt
            continue
        end = pos + total
        if end != n and data[end:end + len(MAGIC)] != MAGIC:   # a damaged length: frame by the next magic
            nxt = data.find(MAGIC, pos + 1)
            end = nxt if nxt >= 0 else n
        yield pos, data[pos:end]
        pos = end
