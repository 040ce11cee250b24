"""Foxglove / Lichtblick view of a stream without re-encoding (``bag decode --foxglove``).

A packet (docs/bitstream.md) holds one layer per camera. A layer coded by a standard low-delay
video codec is one Annex B access unit per packet (a ``video`` section; key frames start with their
parameter sets, and both layers' key frames coincide). Foxglove and Lichtblick decode such units
themselves (WebCodecs in the browser) when they arrive as ``foxglove_msgs/msg/CompressedVideo``,
one frame per message, so every such layer is passed through exactly as it was coded:

* the RGB layer when the reference codec is h264 / h265 (hybrid and standard profiles);
* the thermal layer when the thermal codec is h264 / h265 and the thermal is 8-bit (standard
  profile: luma with flat chroma, 4:2:0, which every player decodes). 16-bit thermal is coded by
  H.265 at 12 bits 4:0:0 with a count mapping that no viewer knows, so it is not passed through.

A layer that is not such a video (learned thermal of the hybrid profile, 16-bit thermal, lossless
thermal), which only this package can decode, goes out decoded as ``sensor_msgs/msg/Image``. A
stream whose reference (RGB) layer is coded by the learned codec (the learned profile) has no video
to pass through and is refused.

Topics: ``<modality image topic>/compressed_video`` for a video layer, the modality's image topic
for a decoded one. :func:`layer_videos` is ROS-free (decoder_node uses it too);
:class:`FoxgloveWriter` writes the MCAP file and :class:`FoxgloveSink` is the sink that
:func:`mm_compress_ros.bag.decode.decode_bag` writes through.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.encoded_frame import decoded_image, modality_header
from .bagio import BagError, BagWriter, iter_messages, make_header, make_image, topics_of
from .types import COMPRESSED_VIDEO, ENCODED_FRAME, IMAGE, typestore

VIDEO_FORMATS = ("h264", "h265")      # layer codecs that are a video; CompressedVideo.format
VIDEO_SUFFIX = "/compressed_video"    # video topic = the modality's image topic + this
REFERENCE = {"thermal_given_rgb": "rgb", "rgb_given_thermal": "thermal"}  # direction -> reference
MODALITIES = ("rgb", "thermal")

# NAL unit types. H.264: SPS 7, PPS 8, IDR slice 5. H.265: VPS 32, SPS 33, PPS 34, IRAP 16..23.
_PARAMETER_SETS = {"h264": {7: "SPS", 8: "PPS"}, "h265": {32: "VPS", 33: "SPS", 34: "PPS"}}
_KEY_PICTURES = {"h264": {5}, "h265": set(range(16, 24))}


def _other(modality: str) -> str:
    return "thermal" if modality == "rgb" else "rgb"


def layer_formats(header) -> dict[str, str]:
    """modality -> ``h264``/``h265`` for each layer of packets with ``header`` that a viewer plays
    as it is (an 8-bit H.264/H.265 stream); the other modalities are absent."""
    from ..codec.packet import SIXTEEN_BIT

    ref = REFERENCE[header.direction]
    out = {}
    for role, modality, codec in (("ref", ref, header.reference_codec), ("dep", _other(ref), header.thermal_codec)):
        if codec not in VIDEO_FORMATS:
            continue
        # the standard thermal layer codes 16-bit thermal at 12 bits (4:0:0, a count mapping)
        if role == "dep" and modality == "thermal" and header.thermal_format in SIXTEEN_BIT:
            continue
        out[modality] = codec
    return out


def layer_videos(packet) -> tuple[object, dict[str, tuple[str, bytes]]]:
    """(header, {modality: (format, access unit)}) of a packet: every layer that is an 8-bit
    H.264/H.265 stream (:func:`layer_formats`), with its Annex B access unit; an empty dict when
    none is (learned profile). ``packet``: its bytes, or the parsed
    :class:`mm_compress_ros.codec.packet.Packet` (not parsed again). Raises
    :class:`mm_compress_ros.codec.packet.PacketError` for a malformed packet."""
    from ..codec.packet import read_packet

    header, sections = read_packet(packet)
    formats = layer_formats(header)
    ref = REFERENCE[header.direction]
    out = {}
    for (role, name), data in zip(header.layout, sections):
        modality = ref if role == "ref" else _other(ref)
        if name == "video" and modality in formats:
            out[modality] = (formats[modality], data)
    return header, out


def nal_unit_types(data: bytes, fmt: str) -> list[int]:
    """The NAL unit types of an Annex B byte stream, in order."""
    types, i = [], 0
    while (j := data.find(b"\x00\x00\x01", i)) >= 0 and j + 3 < len(data):
        b = data[j + 3]
        types.append((b >> 1) & 0x3F if fmt == "h265" else b & 0x1F)
        i = j + 3
    return types


def key_frame_problem(data: bytes, fmt: str) -> str | None:
    """What a key frame's access unit lacks for a viewer to start decoding at it, or None."""
    types = set(nal_unit_types(data, fmt))
    missing = [name for t, name in _PARAMETER_SETS[fmt].items() if t not in types]
    if missing:
        return f"no {'/'.join(missing)}"
    if not types & _KEY_PICTURES[fmt]:
        return "no IDR picture" if fmt == "h264" else "no IRAP picture"
    return None


def no_video_error(direction: str) -> BagError:
    return BagError(f"the stream's reference layer ({REFERENCE.get(direction, 'rgb').upper()}) is coded by the "
                    "learned codec (reference codec 'learned'): there is no H.264/H.265 video to pass through "
                    "to Foxglove; write a raw-image bag (OUT_BAG) instead")


def _first_header(reader, conns, path):
    """The header of the first packet on ``conns`` that parses (None if none does)."""
    from ..codec.packet import PacketError, read_header

    store = typestore()
    for _, _, raw in iter_messages(reader, conns, path=path):
        try:
            return read_header(store.deserialize_cdr(raw, ENCODED_FRAME).data.tobytes())
        except PacketError:
            continue
    return None


@dataclass
class _Topic:
    conn: object
    topic: str
    format: str | None = None      # video: h264 / h265
    encoding: str | None = None    # image: the first image's encoding
    messages: int = 0


class FoxgloveWriter:
    """One MCAP file (``target``, *.mcap) for Foxglove / Lichtblick: per modality either a
    CompressedVideo topic with one access unit per message (:meth:`add_video`) or an Image topic
    (:meth:`add_image`), and copies of other topics. rosbags writes a bag folder beside ``target``;
    its .mcap file (which carries the bag metadata itself) becomes ``target`` on :meth:`close`."""

    def __init__(self, target: Path):
        if target.suffix != ".mcap":
            raise BagError(f"--foxglove writes one MCAP file: name it *.mcap, not {target.name}")
        self.target = target
        self.bag = target.parent / f".{target.stem}.bag"
        self.w = BagWriter(self.bag, "mcap")
        self.store = self.w.store
        self.videos: dict[str, _Topic] = {}   # modality -> its CompressedVideo topic
        self.images: dict[str, _Topic] = {}   # modality -> its Image topic

    def add_video(self, modality: str, topic: str, fmt: str) -> None:
        if fmt not in VIDEO_FORMATS:
            raise BagError(f"{fmt!r} is not a video format a viewer decodes; use one of {VIDEO_FORMATS}")
        self.videos[modality] = _Topic(self.w.add_typed(topic, COMPRESSED_VIDEO), topic, format=fmt)

    def add_image(self, modality: str, topic: str) -> None:
        self.images[modality] = _Topic(self.w.add_typed(topic, IMAGE), topic)

    def write_video(self, modality: str, ts: int, au: bytes, key: bool, stamp, frame_id: str, what: str = "") -> None:
        """One access unit of the modality's video topic; a key frame must carry its parameter sets."""
        t = self.videos[modality]
        if key and (why := key_frame_problem(au, t.format)):
            raise BagError(f"{what}the key frame's {t.format} access unit of the {modality} layer has {why}; a "
                           "viewer could not start decoding there")
        msg = self.store.types[COMPRESSED_VIDEO](
            timestamp=make_header(self.store, stamp, "").stamp, frame_id=frame_id,
            data=np.frombuffer(au, dtype=np.uint8), format=t.format)
        self.w.write_msg(t.conn, ts, msg)
        t.messages += 1

    def write_image(self, modality: str, ts: int, image) -> None:
        t = self.images[modality]
        self.w.write_msg(t.conn, ts, image)
        t.encoding = t.encoding or image.encoding
        t.messages += 1

    def close(self):
        self.w.close()
        (self.bag / f"{self.bag.name}.mcap").replace(self.target)
        shutil.rmtree(self.bag)

    def summary(self) -> dict:
        """``videos`` {topic: {modality, format, messages}}, ``images`` {topic: {modality, encoding,
        messages}} and the message totals."""
        return {"videos": {t.topic: {"modality": m, "format": t.format, "messages": t.messages}
                           for m, t in self.videos.items()},
                "images": {t.topic: {"modality": m, "encoding": t.encoding, "messages": t.messages}
                           for m, t in self.images.items()},
                "video_messages": sum(t.messages for t in self.videos.values()),
                "image_messages": sum(t.messages for t in self.images.values())}


class FoxgloveSink(FoxgloveWriter):
    """decode_bag's sink for ``--foxglove``: per decoded frame, each video layer's access unit as a
    CompressedVideo on ``<modality topic>/compressed_video`` (that modality's capture stamp and
    frame_id) and each other modality decoded as an Image on its topic (original header and
    encoding); all other topics copied through. The topics are chosen at the first decoded frame;
    a later frame whose layers differ (another codec, 8-bit thermal turned 16-bit) is refused.
    Refuses a stream whose reference layer is learned before anything is decoded."""

    def __init__(self, target: Path, reader, conns, skip_ids, rgb_topic: str, thermal_topic: str, path=""):
        first = _first_header(reader, conns, path)
        if first is not None and first.reference_codec not in VIDEO_FORMATS:
            raise no_video_error(first.direction)
        super().__init__(target)
        self.topics = {"rgb": rgb_topic, "thermal": thermal_topic}
        self.present = topics_of(reader)
        self.copies = {c.id: self.w.add_copy(c) for c in reader.connections if c.id not in skip_ids}
        self.kinds: dict[str, str] | None = None   # modality -> h264 / h265 / "image"
        self.profile: str | None = None

    def summary(self) -> dict:
        return {"profile": self.profile, **super().summary()}

    def other(self, conn, ts, raw):
        self.w.write(self.copies[conn.id], ts, raw)

    def _open(self, kinds: dict[str, str]) -> None:
        names = {m: self.topics[m] + VIDEO_SUFFIX if k in VIDEO_FORMATS else self.topics[m] for m, k in kinds.items()}
        for t in names.values():
            if t in self.present:
                raise BagError(f"the bag already has a topic {t}; name the decoded topics with "
                               "--rgb-topic / --thermal-topic")
        for m in MODALITIES:
            if kinds[m] in VIDEO_FORMATS:
                self.add_video(m, names[m], kinds[m])
            else:
                self.add_image(m, names[m])
        self.kinds = kinds

    def frame(self, ts, msg, pair, n, packet=None):
        """``packet``: the decoder's parsed packet of ``msg`` (not parsed again), else its bytes."""
        header, videos = layer_videos(packet if packet is not None else msg.data.tobytes())
        if header.reference_codec not in VIDEO_FORMATS:
            raise no_video_error(header.direction)
        kinds = {m: videos[m][0] if m in videos else "image" for m in MODALITIES}
        if self.kinds is None:
            self._open(kinds)
            self.profile = header.profile
        elif kinds != self.kinds:
            changed = [f"{m} from {self.kinds[m]} to {kinds[m]}" for m in MODALITIES if kinds[m] != self.kinds[m]]
            raise BagError(f"sequence {msg.sequence}: the stream's layers changed ({', '.join(changed)}); one "
                           "topic holds one stream")
        key = header.frame_type_name == "key"
        for m in MODALITIES:
            if m in videos:
                stamp, frame_id = modality_header(msg, m)
                self.write_video(m, ts, videos[m][1], key, stamp, frame_id, f"sequence {msg.sequence}: ")
            else:
                self.write_image(m, ts, make_image(self.store, *decoded_image(msg, pair, m)))
