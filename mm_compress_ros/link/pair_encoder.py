"""One RGB + thermal stream as encoder_node and ``bag encode`` code it: pairs of image messages in,
packets out. ROS-free (the messages are read through their sensor_msgs/Image fields, rclpy's or
rosbags' alike).

:class:`PairEncoder` wraps a :class:`~mm_compress_ros.codec.stream.StreamEncoder` (the only
key-frame decider: the pair encoder asks it, and says why) and makes the per-pair decisions that
both adapters share (docs/reliability.md, "Bad input at the nodes"):

- the gap is the stream's own (:class:`~mm_compress_ros.codec.keyframes.StampRhythm`): more
  than 3 frame intervals of the stream, at least 1 s (a 10 Hz stream: 1 s; a camera throttled to 1 Hz: 3 s), or
  ``max_gap_ns`` when given;
- a pair stamped at or before the last encoded one, less than the gap back (it completed late,
  out of order: a newer pair was encoded already): skipped, counted as ``stale``;
- stamps further back (a clock reset: bag loop, sim time, driver restart): the stream restarts
  with a key frame and goes on with the new stamps, counted in ``clock_resets``;
- stamps more than the gap ahead of the last encoded pair: a key frame (the previous frame is a
  poor reference after a gap);
- encodings the codec cannot take: skipped, counted as ``unsupported``;
- another input size or encoding than the last encoded pair's: a key frame;
- ``resize`` (width, height): the RGB image is scaled to it and the thermal image by the same
  factors, which keeps the two cameras' relative geometry (the cross-modal alignment);
- a key frame on :meth:`PairEncoder.request_key_frame` (safe to call from another thread).

Every decision comes back as a :class:`Note` (kind and a one-line text) in the pair's
:class:`PairResult`; the adapters log, count or ignore them. An exception out of
:meth:`PairEncoder.encode` (malformed image data, an image smaller than 16x16) leaves the stream
state and the counts as they were.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..codec.stream import StreamEncoder
from ..codec.zoo import LoadedModel
from ..io.encoded_frame import input_frames, unsupported_encodings
from ..io.ros_image import stamp_to_ns
from .notes import Note

# Note kinds: stale | unsupported (the pair was skipped) | clock_reset | stamp_jump | input_changed


@dataclass
class PairResult:
    notes: list[Note] = field(default_factory=list)
    packet: bytes | None = None        # None: the pair was skipped (a stale or unsupported note says why)
    frame_type: str | None = None      # "key" or "predicted"
    sequence: int = -1                 # 0, 1, 2, ... over the encoded pairs, without gaps
    codec: str = ""                    # model id, or the standard profile's codecs (e.g. h264+h264)
    quality: int = 0                   # the quality level the pair was coded at
    encode_ms: float = 0.0             # the codec's time for this pair


@dataclass
class PairCounts:
    pairs: int = 0           # encoded
    key_frames: int = 0
    stale: int = 0
    clock_resets: int = 0
    unsupported: int = 0


def resize_pair(rgb: np.ndarray, thermal: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """RGB scaled to ``size`` (width, height), thermal by the same factors (at least 16x16)."""
    import cv2

    fx, fy = size[0] / rgb.shape[1], size[1] / rgb.shape[0]
    tsize = (max(16, round(thermal.shape[1] * fx)), max(16, round(thermal.shape[0] * fy)))
    return (cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
            cv2.resize(thermal, tsize, interpolation=cv2.INTER_AREA))


def _describe(sig: tuple) -> str:
    return f"rgb {sig[0]}x{sig[1]} {sig[4]}, thermal {sig[2]}x{sig[3]} {sig[5]}"


class PairEncoder:
    """Codes pairs of images (objects with the sensor_msgs/Image fields) into packets.

    ``stream_args`` go to :class:`~mm_compress_ros.codec.stream.StreamEncoder` (quality, gop,
    reference_codec, encoder, ...); ``resize`` is (width, height) of the coded RGB image, or None
    for the input size; ``max_gap_ns``: a fixed gap that ends the GOP, or None (default) for the
    stream's own rhythm (:class:`~mm_compress_ros.codec.keyframes.StampRhythm`). The stamps, the
    input description and the key-frame requests go to the stream, which decides the key frames;
    this object keeps no stream state of its own besides the counts."""

    def __init__(self, model: LoadedModel, *, resize: tuple[int, int] | None = None,
                 max_gap_ns: int | None = None, **stream_args):
        if resize is not None and (len(resize) != 2 or min(resize) < 16):
            raise ValueError(f"resize must be (width, height), each at least 16, got {resize}")
        self.stream = StreamEncoder(model, max_gap_ns=max_gap_ns, **stream_args)
        self.resize = None if resize is None else (int(resize[0]), int(resize[1]))
        self.max_gap_ns = max_gap_ns
        self.counts = PairCounts()

    def request_key_frame(self) -> None:
        """The next encoded pair is a key frame (safe to call from another thread)."""
        self.stream.request_key_frame()

    def _stamp_note(self, stamp: int, step: str) -> Note | None:
        """What a pair's capture stamp says against the last encoded pair's (None: nothing)."""
        last = self.stream.rhythm.last
        if step in ("first", "next"):
            return None
        if step == "jump":
            return Note("stamp_jump", f"capture stamps jumped {(stamp - last) / 1e9:.1f} s ahead of the last "
                                      "encoded pair: key frame")
        if step == "reset":
            return Note("clock_reset", f"capture stamps went back {(last - stamp) / 1e9:.1f} s (clock reset?): "
                                       "stream restarted with a key frame")
        return Note("stale", f"capture stamps went back {(last - stamp) / 1e6:.0f} ms: pair not newer than "
                             f"the last encoded one skipped ({self.counts.stale + 1} stale so far)")

    def encode(self, rgb_msg, thermal_msg) -> PairResult:
        """Codes one pair, or skips it; :class:`PairResult` says which and why."""
        stamp = stamp_to_ns(rgb_msg.header.stamp)
        note = self._stamp_note(stamp, self.stream.rhythm.classify(stamp))   # the stream takes it when coded
        if note is not None and note.kind == "stale":
            self.counts.stale += 1
            return PairResult([note])
        notes = [] if note is None else [note]
        problem = unsupported_encodings(rgb_msg.encoding, thermal_msg.encoding)
        if problem:
            self.counts.unsupported += 1
            return PairResult([Note("unsupported", problem)])
        rgb, thermal = input_frames(rgb_msg, thermal_msg)
        # the input as it came (before any resize): another one is a key frame, even where the
        # coded frames keep their size
        source = (rgb.shape[1], rgb.shape[0], thermal.shape[1], thermal.shape[0],
                  rgb_msg.encoding, thermal_msg.encoding)
        before = self.stream.last_source
        if self.resize is not None and (rgb.shape[1], rgb.shape[0]) != self.resize:
            rgb, thermal = resize_pair(rgb, thermal, self.resize)
        t0 = time.perf_counter()
        packet = self.stream.encode(rgb, thermal, rgb_format=rgb_msg.encoding,
                                    thermal_format=thermal_msg.encoding, stamp_ns=stamp, source=source)
        c, frame_type = self.counts, self.stream.last_frame_type
        if frame_type == "key" and self.stream.last_key_reason == "input changed":
            notes.append(Note("input_changed", f"input changed from {_describe(before)} to "
                                               f"{_describe(source)}: key frame"))
        result = PairResult(notes, packet, frame_type, c.pairs, self.stream.codec_id, self.stream.quality,
                            (time.perf_counter() - t0) * 1e3)
        c.pairs += 1
        c.key_frames += frame_type == "key"
        c.clock_resets += any(n.kind == "clock_reset" for n in notes)
        return result
