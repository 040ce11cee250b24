"""The outputs of ``bag decode`` other than Foxglove's (mm_compress_ros.bag.foxglove): a raw-image
bag (:class:`BagSink`), PNG frames with an index (:class:`FramesSink`) and a side-by-side review
video (:class:`VideoSink`, rendered by :func:`side_by_side`).

A sink takes ``other(conn, ts, raw)`` for each message that is not an encoded frame (the bag sink
copies it through) and ``frame(ts, msg, pair, n, packet)`` for each decoded pair (``msg`` the
EncodedFrame, ``pair`` the DecodedPair, ``n`` its index among the decoded, ``packet`` the parsed
Packet); ``close()`` where it has one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.encoded_frame import decoded_image
from ..io.ros_image import stamp_to_ns, to_rgb
from .bagio import BagError, make_image
from .types import IMAGE, typestore


class BagSink:
    def __init__(self, w, reader, skip_ids, rgb_topic, thermal_topic):
        self.w = w
        self.copies = {c.id: w.add_copy(c) for c in reader.connections if c.id not in skip_ids}
        self.rgb = w.add_typed(rgb_topic, IMAGE)
        self.th = w.add_typed(thermal_topic, IMAGE)
        self.store = typestore()

    def other(self, conn, ts, raw):
        self.w.write(self.copies[conn.id], ts, raw)

    def frame(self, ts, msg, pair, n, packet=None):
        """The decoded images with their inputs' headers and encodings (mm_compress_ros.io.encoded_frame)."""
        for conn, modality in ((self.rgb, "rgb"), (self.th, "thermal")):
            self.w.write_msg(conn, ts, make_image(self.store, *decoded_image(msg, pair, modality)))


class FramesSink:
    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "rgb").mkdir()
        (folder / "thermal").mkdir()
        self.index = open(folder / "frames.csv", "w")
        self.index.write("index,sequence,frame_type,rgb_stamp_ns,rgb_frame_id,rgb_encoding,"
                         "thermal_stamp_ns,thermal_frame_id,thermal_encoding\n")

    def other(self, conn, ts, raw):
        pass

    def frame(self, ts, msg, pair, n, packet=None):
        from ..io.frames import write_rgb, write_thermal

        write_rgb(self.folder / "rgb" / f"{n:04d}.png", to_rgb(pair.rgb, pair.rgb_format))
        write_thermal(self.folder / "thermal" / f"{n:04d}.png", pair.thermal)
        self.index.write(f"{n},{msg.sequence},{pair.frame_type},{stamp_to_ns(msg.header.stamp)},"
                         f"{msg.header.frame_id},{msg.rgb_encoding},{stamp_to_ns(msg.thermal_stamp)},"
                         f"{msg.thermal_frame_id},{msg.thermal_encoding}\n")

    def close(self):
        self.index.close()


def thermal_to_gray8(th: np.ndarray) -> np.ndarray:
    """8-bit view of a thermal frame for review (16-bit: stretched over the frame's range)."""
    if th.dtype == np.uint8:
        return th
    lo, hi = int(th.min()), int(th.max())
    return ((th.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1))).round().astype(np.uint8)


def side_by_side(rgb: np.ndarray, thermal: np.ndarray) -> np.ndarray:
    """RGB | thermal (gray as RGB), thermal scaled to the RGB height, even width and height."""
    import cv2

    gray = thermal_to_gray8(thermal)
    h = rgb.shape[0]
    if gray.shape[0] != h:
        w = max(1, round(gray.shape[1] * h / gray.shape[0]))
        gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
    frame = np.concatenate([rgb, np.repeat(gray[:, :, None], 3, axis=2)], axis=1)
    ph, pw = frame.shape[0] % 2, frame.shape[1] % 2
    if ph or pw:
        frame = np.pad(frame, ((0, ph), (0, pw), (0, 0)))
    return np.ascontiguousarray(frame)


class VideoSink:
    def __init__(self, path: Path, fps: float | None, codec: str):
        self.path, self.fps, self.codec = path, fps, codec
        self.frames: list[np.ndarray] = []  # buffered until the frame rate is known
        self.stamps: list[int] = []
        self.container = self.stream = None

    def other(self, conn, ts, raw):
        pass

    def _open(self, first: np.ndarray):
        import av
        from fractions import Fraction

        fps = self.fps
        if not fps:
            d = np.diff(self.stamps)
            d = d[d > 0]
            fps = 1e9 / float(np.median(d)) if d.size else 10.0
        fps = min(max(fps, 1.0), 120.0)
        self.container = av.open(str(self.path), mode="w", format="mp4")
        codec = self.codec
        if codec == "auto":
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=Fraction(round(fps * 1000), 1000))
        self.stream.width, self.stream.height = first.shape[1], first.shape[0]
        self.stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self.stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            self.stream.bit_rate = 8_000_000
        self.fps_used, self.codec_used = fps, codec

    def _write(self, frame: np.ndarray):
        import av

        for p in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self.container.mux(p)

    def frame(self, ts, msg, pair, n, packet=None):
        img = side_by_side(to_rgb(pair.rgb, pair.rgb_format), pair.thermal)
        if self.container is None:
            self.frames.append(img)
            self.stamps.append(stamp_to_ns(msg.header.stamp))
            if len(self.frames) < 16 and not self.fps:
                return
            self._open(self.frames[0])
            for f in self.frames:
                self._write(f)
            self.frames = []
            return
        if img.shape[:2] != (self.stream.height, self.stream.width):
            raise BagError(f"frame size changed mid-stream ({img.shape[1]}x{img.shape[0]}); "
                           "write PNG frames (--frames) instead")
        self._write(img)

    def close(self):
        if self.container is None and self.frames:
            self._open(self.frames[0])
            for f in self.frames:
                self._write(f)
        if self.container is not None:
            for p in self.stream.encode():
                self.container.mux(p)
            self.container.close()
