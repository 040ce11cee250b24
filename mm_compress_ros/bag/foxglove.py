"""Foxglove / Lichtblick view of a hybrid stream without re-encoding (``bag decode --foxglove``).

In the hybrid profile (packet format 2, ``reference_codec`` h264 or h265) the reference modality
of every packet is one Annex B access unit of a standard low-delay video codec (section 0; key
frames start with their parameter sets). Foxglove and Lichtblick decode such units themselves when
they arrive as ``foxglove_msgs/msg/CompressedVideo``, one frame per message, so the reference layer
is passed through exactly as it was coded. The dependent modality, which only this package can
decode, goes out as ``sensor_msgs/msg/Image``. A stream whose reference layer is coded by the
learned codec has no video to pass through and is refused.

The helpers here are ROS-free (decoder_node uses them too); :class:`FoxgloveSink` is the sink
that :func:`mm_compress_ros.bag.transcode.decode_bag` writes through.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..io.encoded_frame import decoded_image, modality_header
from .bagio import BagError, BagWriter, iter_messages, make_header, make_image, topics_of
from .types import COMPRESSED_VIDEO, ENCODED_FRAME, IMAGE, typestore

VIDEO_FORMATS = ("h264", "h265")      # reference codecs with a video layer; CompressedVideo.format
VIDEO_SUFFIX = "/compressed_video"    # video topic = the reference modality's image topic + this
REFERENCE = {"thermal_given_rgb": "rgb", "rgb_given_thermal": "thermal"}  # direction -> reference

# NAL unit types. H.264: SPS 7, PPS 8, IDR slice 5. H.265: VPS 32, SPS 33, PPS 34, IRAP 16..23.
_PARAMETER_SETS = {"h264": {7: "SPS", 8: "PPS"}, "h265": {32: "VPS", 33: "SPS", 34: "PPS"}}
_KEY_PICTURES = {"h264": {5}, "h265": set(range(16, 24))}


def reference_video(packet: bytes) -> tuple[object, str | None, bytes | None]:
    """(header, format, access unit) of a packet: format ``h264``/``h265`` and the reference
    modality's Annex B access unit, or (header, None, None) when the learned codec coded it."""
    from ..codec.packet import read_packet

    header, sections = read_packet(packet)
    if header.reference_codec not in VIDEO_FORMATS:
        return header, None, None
    return header, header.reference_codec, sections[0]


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


class FoxgloveWriter:
    """One MCAP file (``target``, *.mcap) for Foxglove / Lichtblick: a CompressedVideo topic with
    one access unit per message and an Image topic (and copies of other topics). rosbags writes a
    bag folder beside ``target``; its .mcap file (which carries the bag metadata itself) becomes
    ``target`` on :meth:`close`."""

    def __init__(self, target: Path):
        if target.suffix != ".mcap":
            raise BagError(f"--foxglove writes one MCAP file: name it *.mcap, not {target.name}")
        self.target = target
        self.bag = target.parent / f".{target.stem}.bag"
        self.w = BagWriter(self.bag, "mcap")
        self.store = self.w.store
        self.format = None
        self.video = self.image = None
        self.video_topic = self.image_topic = None
        self.video_messages = 0

    def open(self, fmt: str, video_topic: str, image_topic: str):
        self.video = self.w.add_typed(video_topic, COMPRESSED_VIDEO)
        self.image = self.w.add_typed(image_topic, IMAGE)
        self.format, self.video_topic, self.image_topic = fmt, video_topic, image_topic

    def write_video(self, ts: int, au: bytes, key: bool, stamp, frame_id: str, what: str = "") -> None:
        """One access unit of ``self.format``; a key frame must carry its parameter sets."""
        if key and (why := key_frame_problem(au, self.format)):
            raise BagError(f"{what}the key frame's {self.format} access unit has {why}; a viewer could not "
                           "start decoding there")
        msg = self.store.types[COMPRESSED_VIDEO](
            timestamp=make_header(self.store, stamp, "").stamp, frame_id=frame_id,
            data=np.frombuffer(au, dtype=np.uint8), format=self.format)
        self.w.write_msg(self.video, ts, msg)
        self.video_messages += 1

    def write_image(self, ts: int, image) -> None:
        self.w.write_msg(self.image, ts, image)

    def close(self):
        self.w.close()
        (self.bag / f"{self.bag.name}.mcap").replace(self.target)
        shutil.rmtree(self.bag)

    def summary(self) -> dict:
        return {"video_topic": self.video_topic, "image_topic": self.image_topic, "format": self.format,
                "video_messages": self.video_messages}


class FoxgloveSink(FoxgloveWriter):
    """decode_bag's sink for ``--foxglove``: per decoded frame the packet's access unit as a
    CompressedVideo (the reference modality's capture stamp and frame_id) on
    ``<reference topic>/compressed_video`` and the decoded dependent modality as an Image on its
    topic (original header and encoding); all other topics copied through. Refuses a stream whose
    reference layer is learned before anything is decoded."""

    def __init__(self, target: Path, reader, conns, skip_ids, rgb_topic: str, thermal_topic: str, path=""):
        first = _first_header(reader, conns, path)
        if first is not None and first.reference_codec not in VIDEO_FORMATS:
            raise no_video_error(first.direction)
        super().__init__(target)
        self.topics = {"rgb": rgb_topic, "thermal": thermal_topic}
        self.present = topics_of(reader)
        self.copies = {c.id: self.w.add_copy(c) for c in reader.connections if c.id not in skip_ids}
        self.direction = None

    def other(self, conn, ts, raw):
        self.w.write(self.copies[conn.id], ts, raw)

    def frame(self, ts, msg, pair, n):
        header, fmt, au = reference_video(msg.data.tobytes())
        if fmt is None:
            raise no_video_error(header.direction)
        if self.direction is None:
            ref = REFERENCE[header.direction]
            topics = (self.topics[ref] + VIDEO_SUFFIX, self.topics["thermal" if ref == "rgb" else "rgb"])
            for t in topics:
                if t in self.present:
                    raise BagError(f"the bag already has a topic {t}; name the decoded topics with "
                                   "--rgb-topic / --thermal-topic")
            self.open(fmt, *topics)
            self.direction = header.direction
        elif (fmt, header.direction) != (self.format, self.direction):
            raise BagError(f"sequence {msg.sequence}: the stream changed from {self.format}/{self.direction} "
                           f"to {fmt}/{header.direction}; one video topic holds one stream")
        stamp, frame_id = modality_header(msg, REFERENCE[header.direction])
        self.write_video(ts, au, header.frame_type_name == "key", stamp, frame_id, f"sequence {msg.sequence}: ")
        dependent = "thermal" if REFERENCE[header.direction] == "rgb" else "rgb"
        self.write_image(ts, make_image(self.store, *decoded_image(msg, pair, dependent)))
