"""Lossless 16-bit (radiometric, ``mono16``) thermal frames: FFV1 level 1 through PyAV (libavcodec).

Which codec and why (``benchmarks/lossless16.py``, results in ``docs/results/lossless16.json``):
every encoder of this PyAV 18.1 build (libavcodec 62.28) that takes 16-bit gray was measured, and
each was checked to decode back every value exactly:

    ==========================================  =====  =====  =====  ========  ===========
    bits per pixel (lower is better)            real   m3svd  road   vs PNG    enc/dec ms
    ==========================================  =====  =====  =====  ========  ===========
    FFV1 level 1, range_tab, context 0 (this)   4.18   4.75   5.67   0.686     13.7 / 17.7
    FFV1 level 3 (default slices, CRC)          4.20   4.80   5.81   0.695     13.7 / 17.6
    JPEG-LS (jpegls)                            4.30   4.86   5.71   0.700     15.2 / 15.5
    JPEG 2000 (jpeg2000, dwt53)                 4.45   5.05   5.96   0.728     58 / 61
    FFVHuff (pred median, context 1)            4.85   4.97   6.16   0.735     8.9 / 4.9
    x265 lossless, gray12 on v - min (<=12 b)   4.35   5.53   7.17   0.804     193 / 19
    PNG (OpenCV level 3, compressed_image_tr.)  5.76   6.92   8.56   1.000     22.5 / 6.5
    PNG (libavcodec, pred mixed)                5.80   6.96   8.56   1.005     63 / 6.2
    TIFF deflate (libavcodec)                   7.09   8.66   10.52  1.243     52 / 4.1
    ==========================================  =====  =====  =====  ========  ===========

    real: the real RAW16 frame (640x512, 171,175 bytes); m3svd: synthetic 14-bit sequences from
    the 5 m3svd_seq sequences, 20 frames each (640x480); road: two synthetic 14-bit RoadScene
    stills (odd sizes). "vs PNG": bytes relative to OpenCV PNG level 3, averaged over data sets.
    Times: median per 640x480/512 frame, one core of the development machine.

FFV1 is the smallest on every data set; its options were measured too: ``level`` 1 (one slice,
the frame header in the packet, no extradata) beats ``level`` 3 (at least 4 slices for 640 px
wide frames, and 200 bytes of extradata the decoder needs); ``context`` 0 beats 1 (the large
context model does not fill up in one frame); the custom state-transition table (``coder``
range_tab, which FFV1 forces above 8 bits anyway) beats range_def. Pre-steps, measured:

* ``v - min`` in the smallest gray9/10/12/14 format: the same size (FFV1 codes prediction
  residuals, not values), so not used;
* temporal differencing, ``(v - previous) mod 2**16``: 3.6 % smaller on the synthetic m3svd
  sequences (4.58 bpp; centred by 2**15 only 1.2 %), and keeping the coder state across frames
  0.7 %; both make a frame depend on the one before, so neither is used (a lost packet would
  break every later frame, and a late joiner could not start). The synthetic sequences' temporal
  statistics come from 8-bit clips, so the 3.6 % is not a measurement on a real radiometric camera;
* FFV1 version 4 (experimental) with its value remap (``remap_mode`` dualrle): larger, and with
  the range_tab coder it does not decode exactly here.

Packet layout (one self-contained frame; any packet decodes on its own)::

    b"L16" | version (1 byte, 1) | height (uint16 LE) | width (uint16 LE) | CRC-32 (uint32 LE) | FFV1 frame

The CRC-32 (zlib) covers everything before and after it: FFV1 level 1 has no checksum of its own
(a truncated FFV1 frame decodes here without any error, into wrong values), and a lossless stream
must not turn damaged data into plausible wrong temperatures. The header
costs 12 bytes (under 0.01 % of a 640x512 frame). Frame sizes 1..65535 px each way, odd included.

The PyAV encoder and decoder contexts are kept and reused while the frame size stays the same
(measured: 14.6 ms encode / 18.4 ms decode per 640x480 frame, against
16.6 / 19.4 ms with fresh contexts for every frame). This module never imports rclpy or torch.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import av
import numpy as np

from mm_compress_ros.codec.videocodec import VideoCodecError

CODEC = "ffv1"
PIX_FMT = "gray16le"
OPTIONS = {"level": "1", "coder": "range_tab", "context": "0"}
MAGIC = b"L16"
VERSION = 1
_HEADER = struct.Struct("<3sBHHI")  # magic, version, height, width, crc32
HEADER_SIZE = _HEADER.size
MAX_SIDE = 65535


def _crc(head: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(head)) & 0xFFFFFFFF


def _plane_view(frame: av.VideoFrame, h: int, w: int) -> np.ndarray:
    plane = frame.planes[0]
    return np.frombuffer(plane, dtype="<u2").reshape(h, plane.line_size // 2)[:, :w]


class Lossless16Encoder:
    """``encode(img)``: ``HxW uint16`` -> one self-contained packet (bytes)."""

    def __init__(self) -> None:
        self._ctx = None
        self._size: tuple[int, int] | None = None
        self._pts = 0

    def _context(self, h: int, w: int):
        if self._ctx is None or self._size != (h, w):
            try:
                ctx = av.CodecContext.create(CODEC, "w")
                ctx.width, ctx.height, ctx.pix_fmt = w, h, PIX_FMT
                ctx.time_base = Fraction(1, 30)
                ctx.gop_size = 1            # every frame a key frame: coder state reset per frame
                ctx.thread_count = 1
                ctx.options = dict(OPTIONS)
                ctx.open()
            except av.error.FFmpegError as e:
                raise VideoCodecError(f"lossless16: cannot open the {CODEC} encoder for {w}x{h}: {e}") from None
            self._ctx, self._size, self._pts = ctx, (h, w), 0
        return self._ctx

    def encode(self, img: np.ndarray) -> bytes:
        img = np.asarray(img)
        if img.ndim != 2 or img.dtype != np.uint16:
            raise ValueError(f"lossless16: expected an HxW uint16 frame, got {img.dtype} {img.shape}")
        h, w = img.shape
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
            raise ValueError(f"lossless16: frame size {w}x{h} outside 1..{MAX_SIDE}")
        ctx = self._context(h, w)
        frame = av.VideoFrame(w, h, PIX_FMT)
        _plane_view(frame, h, w)[:] = img
        frame.pts = self._pts
        self._pts += 1
        try:
            packets = ctx.encode(frame)
        except av.error.FFmpegError as e:
            self._ctx = None
            raise VideoCodecError(f"lossless16: {CODEC} encoding failed: {e}") from None
        if len(packets) != 1:
            self._ctx = None
            raise VideoCodecError(f"lossless16: {CODEC} gave {len(packets)} packets for one frame")
        payload = bytes(packets[0])
        head = struct.pack("<3sBHH", MAGIC, VERSION, h, w)
        return head + struct.pack("<I", _crc(head, payload)) + payload


class Lossless16Decoder:
    """``decode(data, (H, W))`` -> ``HxW uint16``; VideoCodecError (one line) on anything else."""

    def __init__(self) -> None:
        self._ctx = None
        self._size: tuple[int, int] | None = None

    def _context(self, h: int, w: int):
        if self._ctx is None or self._size != (h, w):
            ctx = av.CodecContext.create(CODEC, "r")
            ctx.width, ctx.height = w, h    # FFV1 does not carry the frame size
            ctx.thread_type = "NONE"         # frame threading would hold the frame back
            ctx.thread_count = 1
            self._ctx, self._size = ctx, (h, w)
        return self._ctx

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        h, w = (int(v) for v in size)
        data = bytes(data)
        if len(data) <= HEADER_SIZE:
            raise VideoCodecError(f"lossless16: packet of {len(data)} bytes is too short")
        magic, version, ph, pw, crc = _HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise VideoCodecError(f"lossless16: not a lossless16 v{VERSION} packet "
                                  f"(starts with {data[:4].hex()})")
        if (ph, pw) != (h, w):
            raise VideoCodecError(f"lossless16: packet holds a {pw}x{ph} frame, expected {w}x{h}")
        payload = data[HEADER_SIZE:]
        if _crc(data[:HEADER_SIZE - 4], payload) != crc:
            raise VideoCodecError(f"lossless16: CRC mismatch ({len(data)} bytes): the packet is damaged")
        ctx = self._context(h, w)
        packet = av.Packet(payload)
        packet.is_keyframe = True   # every packet is one (gop 1); some decoders treat unflagged ones as inter
        try:
            frames = ctx.decode(packet)
        except av.error.FFmpegError as e:
            self._ctx = None
            raise VideoCodecError(f"lossless16: {CODEC} decoding failed: {e}") from None
        if len(frames) != 1:
            self._ctx = None
            raise VideoCodecError(f"lossless16: packet decoded to {len(frames)} frames, expected 1")
        frame = frames[0]
        if (frame.height, frame.width) != (h, w) or frame.format.name != PIX_FMT:
            self._ctx = None
            raise VideoCodecError(f"lossless16: decoded a {frame.width}x{frame.height} "
                                  f"{frame.format.name} frame, expected {w}x{h} {PIX_FMT}")
        return _plane_view(frame, h, w).copy()


def encode_lossless16(img: np.ndarray) -> bytes:
    """One frame with a fresh encoder (use :class:`Lossless16Encoder` for a stream)."""
    return Lossless16Encoder().encode(img)


def decode_lossless16(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """One packet with a fresh decoder (use :class:`Lossless16Decoder` for a stream)."""
    return Lossless16Decoder().decode(data, size)
